"""Speculative decoding through the user-facing edges: ``mimo-ggml generate
--draft PATH|mtp --draft-block N --stats`` and ``mimo-ggml serve --draft``
(/v1/chat/completions through the real OpenAI client). Each compares with a
plain (non-speculative) session run in the test: greedy output must not
change. The decode loop itself is tested in tests/test_speculative.py."""

from __future__ import annotations

import re

import pytest

import dflash_fixtures as df
import moe_fixtures as mf
from mimo_ggml import TextSession
from mimo_ggml.cli import main
from mimo_ggml.convert.dflash import convert_dflash
from mimo_ggml.convert.mimo2 import convert_mimo2

GEOMETRY = mf.Geometry(hidden=64, layers=4, pattern=(0, 1, 1, 0), moe=(0, 1, 1, 1), heads=4, kv_full=1, kv_swa=2)
PROMPT = "the quick brown fox jumps"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(target GGUF with a tokenizer and 3 MTP blocks, DFlash drafter GGUF made for it)."""
    root = tmp_path_factory.mktemp("spec_frontends")
    mf.write_synthetic_checkpoint(root / "target", GEOMETRY, linear="bf16", experts="bf16", mtp_layers=3,
                                  extras=False, seed=7, config_extra={"sliding_window": 8, "sliding_window_size": 8})
    mf.write_tokenizer(root / "target")
    target = root / "target.gguf"
    convert_mimo2(root / "target", target, dtype="f32")
    df.write_dflash_checkpoint(root / "drafter", target_layer_ids=(0, 2, 3), block_size=4, window=16,
                               mask_token_id=290)
    drafter = root / "drafter.gguf"
    convert_dflash(root / "drafter", drafter, dtype="f32")
    return target, drafter


def plain_text(target, prompt=PROMPT, n=13):
    with TextSession(target, device="cpu", n_threads=1, kv_type="f32") as s:
        return s.generate(prompt, max_tokens=n).text


@pytest.mark.parametrize("kind", ["mtp", "dflash"])
def test_cli_generate_with_draft_prints_plain_text_and_acceptance(models, kind, capsys):
    target, drafter = models
    draft = "mtp" if kind == "mtp" else str(drafter)
    assert main(["generate", "-m", str(target), "-p", PROMPT, "-n", "13", "-t", "1", "--device", "cpu",
                 "--kv-type", "f32", "--draft", draft, "--draft-block", "4", "--stats"]) == 0
    out = capsys.readouterr()
    assert out.out == plain_text(target) + "\n"
    m = re.search(r"\[draft: (\d+) verify passes, (\d+)/(\d+) drafts accepted, mean accepted length ([0-9.]+)", out.err)
    assert m, out.err
    rounds, accepted, proposed, mean = int(m[1]), int(m[2]), int(m[3]), float(m[4])
    # 13 tokens: the first from the prompt pass, the other 12 from the rounds
    assert rounds >= 4 and proposed >= rounds and 0 <= accepted <= proposed
    assert mean == pytest.approx(12 / rounds, abs=0.01)


def test_cli_draft_errors_come_before_the_model_loads(models, tmp_path, capsys, monkeypatch):
    from mimo_ggml import _core

    target, _ = models
    loads = []
    monkeypatch.setattr(_core, "TextModel", lambda *a, **k: loads.append(a))  # a load would be recorded
    missing = tmp_path / "nope.gguf"
    assert main(["generate", "-m", str(target), "-p", "x", "--draft", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "--draft" in err and str(missing) in err and "convert dflash" in err
    assert loads == []  # nothing was loaded
    assert main(["generate", "-m", str(target), "-p", "x", "--draft", "mtp", "--draft-block", "1"]) == 2
    assert "--draft-block" in capsys.readouterr().err
    assert loads == []


def test_server_chat_uses_the_drafter(models, tmp_path):
    openai = pytest.importorskip("openai")
    from server_helpers import ServerProcess

    target, _ = models
    srv = ServerProcess(["--text-model", str(target), "--draft", "mtp", "--draft-block", "3", "--device", "cpu",
                         "-t", "1", "--kv-type", "f32"], tmp_path)
    try:
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0, timeout=120)
        messages = [{"role": "user", "content": PROMPT}]
        got = c.chat.completions.create(model="mimo", messages=messages, max_tokens=11)
        with TextSession(target, device="cpu", n_threads=1, kv_type="f32") as s:
            want = s.chat(messages, max_tokens=11)
        assert got.choices[0].message.content == want.text
        assert got.usage.completion_tokens == want.completion_tokens
        # the server's sessions drafted: llama.cpp-style acceptance figures ride along
        t = got.model_extra["timings"]
        assert t["draft_rounds"] >= 1 and 0 <= t["draft_n_accepted"] <= t["draft_n"]
        assert t["draft_n"] >= t["draft_rounds"]  # up to 2 drafts per verify pass of 3
    finally:
        srv.stop()
