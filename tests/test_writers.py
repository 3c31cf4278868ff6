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
                tokens=[1597, 773, 11], finish_reason="stop", language="en"),
        Segment(1, 11.0, 59.9996, "第二段：你好，世界。", tokens=[1, 2], finish_reason="stop", language="zh"),
        Segment(2, 59.9996, 3725.25, " line one\n\nline two --> arrow ", tokens=[], finish_reason="length", language="en"),
        Segment(3, 3725.25, 3726.0, "   ", tokens=[], finish_reason="stop", language=None),
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


def _expected_cues(t: Transcription):
    # what a cue should hold: non-empty stripped lines, "-->" defused
    out = []
    for seg in t.segments:
        lines = [ln.strip() for ln in seg.text.splitlines() if ln.strip()]
        if lines:
            out.append((seg.start, seg.end, "\n".join(lines).replace("-->", "->")))
    return out


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
    want = _expected_cues(t)
    assert len(parsed) == len(want)
    for (s, e, txt), (ws, we, wtxt) in zip(parsed, want):
        assert s == pytest.approx(ws, abs=5e-4) and e == pytest.approx(we, abs=5e-4)
        assert txt == wtxt


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
    assert set(data) == {"text", "language", "duration", "segments", "timings"}
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
    assert d == {"id": 0, "start": 0.5, "end": 1.0, "text": "x", "tokens": [1, 2],
                 "finish_reason": "stop", "language": None, "avg_logprob": None}
