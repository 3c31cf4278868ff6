"""A fixed-seed slice of the audio fuzzer (tests/fuzz_audio.py): malformed
inputs through Session.transcribe and AudioTokenizer.encode in a worker
subprocess give no crash, no hang past the stated bound, and only
AudioError / FileNotFoundError / InvalidArgumentError. The long run is
`nice -n 10 python tests/fuzz_audio.py --cases 1200`."""

from __future__ import annotations

from fuzz_audio import KINDS, TARGETS, format_table, run_fuzz

SLICE = 120
CASE_TIMEOUT_S = 20.0


def test_fuzz_slice(tiny_asr, tmp_path):
    result = run_fuzz(str(tiny_asr["f32_fused"]), str(tiny_asr["tokenizer"]), seed=2026, indices=list(range(SLICE)),
                      case_timeout=CASE_TIMEOUT_S, scratch=tmp_path)
    print(format_table(result))
    assert not result["crashes"], result["crashes"]
    assert not result["hangs"], result["hangs"]
    assert not result["bad"], result["bad"][:5]
    assert len(result["records"]) == SLICE * len(TARGETS)
    assert {r["kind"] for r in result["records"]} == set(KINDS)
    # the slice exercises the rejections, not only inputs that happen to decode
    rejected = sum(r["outcome"] == "raised" for r in result["records"])
    assert rejected > SLICE // 2


def test_the_harness_catches_crashes_and_hangs(tiny_asr, tmp_path):
    result = run_fuzz(str(tiny_asr["f32_fused"]), str(tiny_asr["tokenizer"]), seed=1, indices=list(range(8)),
                      case_timeout=3.0, scratch=tmp_path,
                      extra_env={"FUZZ_AUDIO_SELFTEST_CRASH": "2", "FUZZ_AUDIO_SELFTEST_HANG": "5"})
    assert [(c["index"], c["target"]) for c in result["crashes"]] == [(2, "transcribe")]
    assert result["crashes"][0]["returncode"] < 0  # SIGABRT
    assert [(h["index"], h["target"]) for h in result["hangs"]] == [(5, "transcribe")]
    done = sorted({r["index"] for r in result["records"]})
    assert done == [0, 1, 3, 4, 6, 7]  # the others still ran
