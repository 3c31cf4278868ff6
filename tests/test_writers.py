"""Tests of mimo_ggml.results and mimo_ggml.writers: every format is parsed
back here and compared with the Transcription it came from."""

from __future__ import annotations

import io
import json
import re

import pytest

from mimo_ggml.errors import InvalidArgumentError
from mimo_ggml.results import Segment, Transcription
from mimo_ggml.writers import (
    FORMATS,
    WRITERS,
    format_timestamp,
    format_transcription,
    write_json,
    write_srt,
    write_transcription,
    write_txt,
    write_vtt,
)


def _sample() -> Transcription:
    segs = [
        Segment(0, 0.0, 11.0, "And so, my fellow Americans, ask not what your country can do for you.",
                tokens=[1597, 773, 11], finish_reason="stop", language="en", avg_logprob=-0.2, no_speech_prob=0.01),
        Segment(1, 11.0, 59.9996, "第二段：你好，世界。", tokens=[1, 2], finish_reason="stop", language="zh",
                avg_logprob=-0.4, no_speech_prob=0.05, temperature=0.5),
        Segment(2, 59.9996, 3725.25, " line one\n\nline two --> arrow ", tokens=[], finish_reason="length", language="en",
                avg_logprob=-1.5, no_speech_prob=0.7, seek=7),
        Segment(3, 3725.25, 3726.0, "   ", tokens=[], finish_reason="stop", language=None, avg_logprob=-3.0,
                no_speech_prob=1.0),
    ]
    return Transcription(
        text="And so, my fellow Americans, ask not what your country can do for you. 第二段：你好，世界。 line one\n\nline two --> arrow",
        language="en",
        duration=3726.0,
        segments=segs,
        timings={"decode_audio": 0.0125, "tokenizer": 1.5, "lm_prefill": 0.25, "lm_decode": 3.0},
    )


def _seconds(ts: str, marker: str) -> float:
    m = re.fullmatch(r"(\d{2,}):(\d{2}):(\d{2})" + re.escape(marker) + r"(\d{3})", ts)
    assert m, ts
    h, mi, s, ms = map(int, m.groups())
    assert mi < 60 and s < 60
    return h * 3600 + mi * 60 + s + ms / 1000


def _words(text: str) -> str:
    # what a segment's cues must hold together: its text, "-->" defused, whitespace-insensitive
    return "".join(text.replace("-->", "->").split())


def _parse_srt(text: str):
    assert text.endswith("\n")
    cues = []
    for n, block in enumerate(text.strip("\n").split("\n\n"), start=1):
        lines = block.split("\n")
        assert lines[0] == str(n)
        start, arrow, end = lines[1].split(" ")
        assert arrow == "-->"
        cues.append((_seconds(start, ","), _seconds(end, ","), "\n".join(lines[2:])))
    return cues


def _parse_vtt(text: str):
    header, _, body = text.partition("\n\n")
    assert header == "WEBVTT"
    cues = []
    for block in body.strip("\n").split("\n\n"):
        lines = block.split("\n")
        start, arrow, end = lines[0].split(" ")
        assert arrow == "-->"
        cues.append((_seconds(start, "."), _seconds(end, "."), "\n".join(lines[1:])))
    return cues


def _assert_cues(parsed, t):
    """Cues are ordered, inside their segment's span, wrapped (<= 2 lines of
    <= 42 columns), share each segment's span without gaps in proportion to
    their length, and hold exactly the segment's text."""
    from mimo_ggml.writers import _width

    i = 0
    prev_end = 0.0
    for seg in t.segments:
        if not seg.text.strip():
            continue
        mine = []
        while i < len(parsed) and _words("".join(c[2] for c in mine)) != _words(seg.text):
            mine.append(parsed[i])
            i += 1
        assert _words("".join(c[2] for c in mine)) == _words(seg.text)
        assert mine[0][0] == pytest.approx(seg.start, abs=1e-3) and mine[-1][1] == pytest.approx(seg.end, abs=1e-3)
        span = seg.end - seg.start
        weights = [sum(_width(ln) for ln in c[2].split("\n")) for c in mine]
        for k, (s, e, txt) in enumerate(mine):
            assert s >= prev_end - 1e-3 and e >= s
            if k:
                assert s == pytest.approx(mine[k - 1][1], abs=1e-3)  # no gaps inside a segment
            assert e - s == pytest.approx(span * weights[k] / sum(weights), abs=2e-3)
            lines = txt.split("\n")
            assert 1 <= len(lines) <= 2 and all(1 <= _width(ln) <= 42 for ln in lines), txt
            prev_end = e
    assert i == len(parsed)


def test_format_timestamp():
    assert format_timestamp(0.0) == "00:00:00.000"
    assert format_timestamp(11.0, ",") == "00:00:11,000"
    assert format_timestamp(59.9996) == "00:01:00.000"  # rounds to the millisecond
    assert format_timestamp(3725.25) == "01:02:05.250"
    assert format_timestamp(-0.2) == "00:00:00.000"
    assert format_timestamp(100 * 3600 + 0.001) == "100:00:00.001"
    with pytest.raises(InvalidArgumentError):
        format_timestamp(float("nan"))


def test_srt_structure():
    t = _sample()
    text = format_transcription(t, "srt")
    _assert_cues(_parse_srt(text), t)
    assert "-->" not in text.replace(" --> ", "")  # only in timing lines


def test_vtt_structure():
    t = _sample()
    text = format_transcription(t, "vtt")
    assert text.startswith("WEBVTT\n\n")
    _assert_cues(_parse_vtt(text), t)


def test_json_round_trip():
    t = _sample()
    data = json.loads(format_transcription(t, "json"))
    assert set(data) == {"task", "text", "language", "duration", "segments", "timings", "language_probability",
                         "partial"}
    assert data["timings"] == t.timings
    assert Transcription.from_dict(data) == t
    assert Transcription.from_dict(t.to_dict()) == t
    assert "第二段" in format_transcription(t, "json")  # UTF-8, not \u escapes


def test_json_non_finite_becomes_null():
    t = Transcription(text="x", timings={"a": float("inf")})
    assert json.loads(format_transcription(t, "json"))["timings"] == {"a": None}


def test_txt():
    t = _sample()
    want = [s.text.strip() for s in t.segments if s.text.strip()]
    assert format_transcription(t, "txt") == "".join(w + "\n" for w in want)
    assert format_transcription(Transcription(text="  only text "), "txt") == "only text\n"


def test_no_segments_gives_one_cue():
    t = Transcription(text="hello there", language="en", duration=2.5)
    assert _parse_srt(format_transcription(t, "srt")) == [(0.0, 2.5, "hello there")]
    assert _parse_vtt(format_transcription(t, "vtt")) == [(0.0, 2.5, "hello there")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_to_path_text_and_binary_files(tmp_path, fmt):
    t = _sample()
    want = format_transcription(t, fmt)
    path = tmp_path / f"out.{fmt}"
    WRITERS[fmt](t, path)
    assert path.read_bytes() == want.encode("utf-8")
    WRITERS[fmt](t, str(path))
    assert path.read_bytes() == want.encode("utf-8")
    sio = io.StringIO()
    WRITERS[fmt](t, sio)
    assert sio.getvalue() == want
    bio = io.BytesIO()
    WRITERS[fmt](t, bio)
    assert bio.getvalue() == want.encode("utf-8")
    with open(path, "wb") as f:
        write_transcription(t, f, fmt)
    assert path.read_bytes() == want.encode("utf-8")


def test_writers_table_and_errors():
    assert WRITERS == {"txt": write_txt, "srt": write_srt, "vtt": write_vtt, "json": write_json}
    t = _sample()
    assert format_transcription(t, ".SRT") == format_transcription(t, "srt")
    with pytest.raises(InvalidArgumentError, match="txt, srt, vtt, json"):
        format_transcription(t, "docx")
    with pytest.raises(InvalidArgumentError):
        format_transcription("not a transcription", "txt")
    with pytest.raises(InvalidArgumentError):
        write_txt(t, 42)
    with pytest.raises(InvalidArgumentError):
        Transcription.from_dict({"language": "en"})


def test_segment_to_dict_plain_types():
    import numpy as np

    seg = Segment(np.int64(0), np.float32(0.5), np.float64(1.0), "x", tokens=list(np.array([1, 2])))
    d = seg.to_dict()
    json.dumps(d)  # numpy scalars converted
    assert d == {"id": 0, "seek": 50, "start": 0.5, "end": 1.0, "text": "x", "tokens": [1, 2], "temperature": 0.0,
                 "avg_logprob": 0.0, "compression_ratio": pytest.approx(1 / 9), "no_speech_prob": 0.0,
                 "finish_reason": "stop", "language": None, "language_probability": None}


def _long_sample() -> Transcription:
    en = ("So the committee met again on Tuesday, and after a long discussion about the budget, the schedule "
          "and the people who would have to do the work, it decided to postpone everything until spring. "
          "Nobody was happy. Supercalifragilisticexpialidociousnessandthensomemorelettersthatneverend ends it.")
    zh = "今天天气很好，我们一起去公园散步吧。公园里有很多人，有的在跑步，有的在下棋，还有的在唱歌跳舞，非常热闹。"
    segs = [Segment(0, 0.5, 14.5, en, avg_logprob=-0.25, no_speech_prob=0.02, language="en"),
            Segment(1, 15.0, 15.0, "Zero length.", language="en"),
            Segment(2, 16.25, 29.0, zh, avg_logprob=-0.5, no_speech_prob=0.1, language="zh"),
            Segment(3, 29.0, 30.0, "Short one.", avg_logprob=-0.1, no_speech_prob=0.3, language="en")]
    return Transcription(text=" ".join(s.text for s in segs), language="en", duration=31.0, segments=segs,
                         language_probability=0.93)


@pytest.mark.parametrize("make", [_sample, _long_sample])
def test_cues_parse_with_srt_and_webvtt(make, tmp_path):
    """Independent parsers (srt, webvtt-py) read our files back: wrapped,
    ordered cues whose text is the segments' text."""
    import srt
    import webvtt

    t = make()
    subs = list(srt.parse(format_transcription(t, "srt")))
    assert [s.index for s in subs] == list(range(1, len(subs) + 1))
    parsed = [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in subs]
    ours = _parse_srt(format_transcription(t, "srt"))
    assert [c[2] for c in parsed] == [c[2] for c in ours]
    assert [c[:2] for c in parsed] == [pytest.approx(c[:2], abs=1e-9) for c in ours]
    _assert_cues(parsed, t)
    path = tmp_path / "x.vtt"
    write_vtt(t, path)
    vtt = [(_seconds(c.start, "."), _seconds(c.end, "."), c.text) for c in webvtt.read(str(path))]
    assert [v[2] for v in vtt] == [p[2] for p in parsed]
    for (s, e, _), (ps, pe, _) in zip(vtt, parsed):
        assert s == pytest.approx(ps, abs=1e-6) and e == pytest.approx(pe, abs=1e-6)
    assert len(parsed) > len([s for s in t.segments if s.text.strip()]) or make is _sample


def test_wrap_text_rules():
    from mimo_ggml.writers import _width, wrap_text

    lines = wrap_text("one two three four five six seven eight nine ten eleven twelve", width=20)
    assert lines == ["one two three four", "five six seven eight", "nine ten eleven", "twelve"]
    zh = wrap_text("你好，世界。" * 6, width=10)
    assert all(_width(ln) <= 10 for ln in zh) and "".join(zh) == "你好，世界。" * 6
    assert not any(ln[0] in "，。" for ln in zh)  # closing punctuation never starts a line
    assert wrap_text("a" * 50, width=20) == ["a" * 20, "a" * 20, "a" * 10]
    assert wrap_text("line one\n\n  line two --> x ", width=42) == ["line one", "line two -> x"]
    assert wrap_text("   ") == []
    with pytest.raises(InvalidArgumentError):
        wrap_text("x", width=0)


def test_verbose_json_validates_against_openai():
    """to_dict() is OpenAI's verbose_json (TranscriptionVerbose) with our extras."""
    from openai.types.audio import TranscriptionVerbose

    t = _long_sample()
    data = json.loads(format_transcription(t, "json"))
    v = TranscriptionVerbose.model_validate(data)
    assert v.language == "en" and v.duration == 31.0 and len(v.segments) == 4
    seg = v.segments[0]
    assert seg.seek == 50 and seg.temperature == 0.0 and seg.avg_logprob == -0.25 and seg.no_speech_prob == 0.02
    import zlib

    raw = t.segments[0].text.encode("utf-8")
    assert seg.compression_ratio == pytest.approx(len(raw) / len(zlib.compress(raw)))
    assert data["language_probability"] == 0.93 and data["partial"] is False
    back = Transcription.from_dict(data)
    assert back.segments[1].avg_logprob == 0.0 and back.segments[1].no_speech_prob == 0.0  # unmeasured: 0.0
    back.segments[1].avg_logprob = back.segments[1].no_speech_prob = None
    assert back == t
    # language is a string even when unknown
    assert Transcription(text="").to_dict()["language"] == ""
    TranscriptionVerbose.model_validate(Transcription(text="", duration=1.0).to_dict())


def test_repetitive_text_has_a_high_compression_ratio():
    loop = Segment(0, 0, 1, "the the the the the the the the the the the the the the the the the the")
    normal = Segment(0, 0, 1, "A normal sentence has no long repeated stretches in it.")
    assert loop.compression_ratio > 2.4 > normal.compression_ratio


def test_partial_is_marked():
    t = _long_sample()
    t.partial = True
    vtt = format_transcription(t, "vtt")
    assert vtt.startswith("WEBVTT\n\nNOTE partial transcript") and "00:00:30.000" in vtt.split("\n\n")[1]
    assert json.loads(format_transcription(t, "json"))["partial"] is True
    assert format_transcription(t, "txt") == "".join(s.text + "\n" for s in t.segments)
    import webvtt

    assert len(webvtt.from_buffer(io.StringIO(vtt)).captions) == len(_parse_vtt(vtt.split("\n\n", 2)[0] + "\n\n"
                                                                              + vtt.split("\n\n", 2)[2]))


def test_atomic_write_keeps_old_content_on_failure(tmp_path, monkeypatch):
    from mimo_ggml import writers

    path = tmp_path / "out.json"
    path.write_text("old", encoding="utf-8")

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writers.os, "fsync", boom)
    with pytest.raises(OSError, match="No space"):
        write_json(_sample(), path)
    assert path.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary file left
