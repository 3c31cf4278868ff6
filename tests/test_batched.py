"""Batched decoding: several clips of one input share every LM step (their
rows mixed in one graph, each sequence in its own KV slots, finished clips
replaced by waiting ones) and give exactly the tokens of one-by-one
decoding (F32 KV on the tiny model), for batch sizes 2, 3 and 8 and clips
of mixed lengths; streaming yields every clip in order; cancelling stops."""

from __future__ import annotations

import pytest

from mimo_ggml import AsrModel
from mimo_ggml.errors import GenerationCancelled, InvalidArgumentError
from test_transcribe import speechlike

RATE = 16000


@pytest.fixture(scope="module")
def session(tiny_asr):
    with AsrModel.load(tiny_asr["f32_fused"], device="cpu", n_threads=2) as model:
        with model.session(kv_type="f32") as s:
            yield s


@pytest.fixture(scope="module")
def audio():
    # pauses at uneven places: the 2 s clip limit cuts clips of different lengths
    return speechlike(11.0, RATE, seed=21, pauses=(1.1, 2.4, 3.3, 5.0, 6.0, 8.1, 9.2))


def tokens(result):
    return [(s.start, s.end, s.tokens, s.finish_reason) for s in result.segments]


@pytest.mark.parametrize("batch_size", [2, 3, 8])  # 1 is the one-by-one path itself
def test_batched_equals_one_by_one(session, audio, batch_size):
    kw = dict(language="en", max_clip_s=2.0)
    one = session.transcribe(audio, RATE, **kw, vad=False)
    assert len(one.segments) >= 6 and len({round(s.end - s.start, 1) for s in one.segments}) > 2
    got = session.transcribe(audio, RATE, batch_size=batch_size, **kw, vad=False)
    assert tokens(got) == tokens(one)
    assert got.text == one.text
    assert [s.avg_logprob for s in got.segments] == pytest.approx([s.avg_logprob for s in one.segments], abs=1e-4)


def test_batched_stream_progress_and_cancel(session, audio):
    seen = []
    segs = list(session.transcribe_stream(audio, RATE, language="en", max_clip_s=2.0, max_new_tokens=5,
                                          batch_size=4, progress=lambda d, t: seen.append(d), vad=False))
    assert [s.id for s in segs] == list(range(len(segs))) and all(len(s.tokens) == 5 for s in segs)
    assert seen and seen[-1] == pytest.approx(len(audio) / RATE, rel=1e-3)
    calls = []

    def stop_soon(index, token):
        calls.append(index)
        return len(calls) < 7

    with pytest.raises(GenerationCancelled):
        session.transcribe(audio, RATE, max_clip_s=2.0, batch_size=4, on_token=stop_soon, vad=False)
    assert len(calls) == 7
    # the session is usable afterwards
    assert len(session.transcribe(audio, RATE, max_clip_s=2.0, max_new_tokens=2, batch_size=4, vad=False).segments) == len(segs)
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        session.transcribe(audio, RATE, batch_size=0, vad=False)
