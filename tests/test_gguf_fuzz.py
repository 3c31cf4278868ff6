"""A fixed-seed slice of the GGUF fuzzer (tests/fuzz/gguf_fuzz.py): mutants
of the three fixture files go through every public constructor and a short
inference in worker subprocesses. No mutant may crash or hang a worker, and
every refusal must be a mimo_ggml.errors.MimoError subclass. (On the code
before the loader was hardened, this slice had 7 crashing seeds.)

The long run is a command (see README, "Fuzzing"):
    python tests/fuzz/gguf_fuzz.py --mutants 20000 --jobs 2
"""

from __future__ import annotations

import collections

import pytest

from fuzz.fixtures import build_mimo2
from fuzz.gguf_fuzz import TARGETS, fuzz, table

SLICE = 300  # mutants, 100 per file kind, seeds 0..299
CLI_SLICE = 90
LIBRARY_TARGETS = [name for name, *_ in TARGETS if name != "cli info"]


@pytest.fixture(scope="module")
def fuzz_fixtures(tiny_asr, tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf_fuzz")
    return {"asr": tiny_asr["f32_fused"], "tokenizer": tiny_asr["tokenizer"], "mimo2": build_mimo2(root)}


def test_fuzz_slice(fuzz_fixtures):
    res = fuzz(fuzz_fixtures, SLICE, jobs=2, timeout=60.0, only=LIBRARY_TARGETS)
    records = res["records"]
    verdicts = collections.Counter(r["verdict"] for r in records)
    report = table(records)
    assert len(records) == SLICE, report
    assert verdicts["crash"] == 0 and verdicts["hang"] == 0 and verdicts["untyped"] == 0, report
    assert verdicts["harness-error"] == 0, report
    # the slice exercises both sides: files that load (and run) and files that are refused
    assert verdicts["accepted"] > 20 and verdicts["rejected"] > 100, report
    for r in records:
        for rec in r.get("result", {}).values():
            for stage in ("load", "infer"):
                outcome = rec.get(stage)
                assert outcome is None or outcome == "ok" or outcome.endswith("Error"), (r["seed"], rec)


def test_fuzz_slice_cli_info(fuzz_fixtures):
    res = fuzz(fuzz_fixtures, CLI_SLICE, jobs=2, timeout=60.0, only=["cli info"])
    verdicts = collections.Counter(r["verdict"] for r in res["records"])
    assert verdicts["crash"] == 0 and verdicts["hang"] == 0, table(res["records"])
    assert verdicts["untyped"] == 0, table(res["records"])
