"""``mimo-ggml serve`` as its users meet it: the real server started as a
subprocess on 127.0.0.1 with the tiny random-weight models, stopped by its
PID, and spoken to with the real ``openai`` client (plus plain HTTP where a
test needs the raw bytes or a dropped connection). Results are compared with
``Session.transcribe`` / ``TextSession.generate`` run in this process with
the same settings; subtitles are read back with ``srt`` and ``webvtt-py``;
the web page runs in headless Chromium.
"""

from __future__ import annotations

import concurrent.futures as cf
import http.client
import json
import math
import os
import re
import signal
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import openai
import pytest
import soundfile as sf
import srt
import webvtt
from openai.types.audio import TranscriptionVerbose

from mimo_ggml import Session, TextSession
from mimo_ggml.audio import load_audio
from mimo_ggml.chat import format_chat
from mimo_ggml.errors import AudioError
from mimo_ggml.server import schemas
from mimo_ggml.server.options import ServerConfig, config_from_args, exposure_warning
from mimo_ggml.writers import format_transcription
from server_helpers import (Chromium, ServerProcess, chromium_binary, http_get, metric, multipart_head, multipart_tail,
                            tiny_text_model)
from test_transcribe import speechlike

KEY = "sk-test-5f1c"
MAX_CLIP = 4.0  # short clips, so a few seconds of audio make several segments
TEXT_CTX = 2048
UPLOAD_MB = 2
# the synthetic test audio is no speech to a VAD: these tests decode it all in clips
SERVER_FLAGS = ["--device", "cpu", "-t", "1", "--kv-type", "f32", "--max-clip", str(MAX_CLIP), "--no-vad",
                "--text-n-ctx", str(TEXT_CTX)]


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("server_audio")
    files = {
        "clips": (speechlike(9.0, 16000, seed=1, pauses=(3.0, 6.0)), 16000, "clips.wav"),
        "short": (speechlike(2.5, 24000, seed=2), 24000, "short.flac"),
        "long": (speechlike(30.0, 16000, seed=5, pauses=tuple(range(3, 30, 4))), 16000, "long.wav"),
    }
    out = {}
    for name, (wave, rate, filename) in files.items():
        path = root / filename
        sf.write(path, wave, rate, subtype="PCM_16")
        out[name] = path
    return out


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    return tiny_text_model(tmp_path_factory.mktemp("server_text"))


@pytest.fixture(scope="module")
def server(tiny_asr, text_model, tmp_path_factory):
    args = ["-m", str(tiny_asr["f32_fused"]), "--text-model", str(text_model), "--api-key", KEY,
            "--sessions", "1", "--max-queue", "1", "--max-upload-mb", str(UPLOAD_MB), *SERVER_FLAGS]
    srv = ServerProcess(args, tmp_path_factory.mktemp("server_logs"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def asr_ref(tiny_asr):
    with Session(tiny_asr["f32_fused"], device="cpu", n_threads=1, kv_type="f32") as s:
        yield s


@pytest.fixture(scope="module")
def text_ref(text_model):
    with TextSession(text_model, device="cpu", n_threads=1, kv_type="f32", n_ctx=TEXT_CTX) as s:
        yield s


def reference(asr, path, language="auto"):
    return asr.transcribe(str(path), language=language, max_clip_s=MAX_CLIP, vad=False)


def client(server, key=KEY, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=120, **kw)


def post_json(server, path, body, key=KEY):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {key}"})
    r = conn.getresponse()
    return conn, r


# ---------------------------------------------------------------------------------------------
# models, health


def test_models_and_health(server, tiny_asr, text_model):
    ids = sorted(m.id for m in client(server).models.list())
    assert ids == sorted([Path(tiny_asr["f32_fused"]).stem, Path(text_model).stem])
    status, body = http_get(server.url + "/health")  # open without a key
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok"
    assert {m["kind"] for m in health["models"]} == {"asr", "text"}
    status, body = http_get(server.url + "/")  # the web page, open too
    assert status == 200 and "<title>mimo-ggml" in body


# ---------------------------------------------------------------------------------------------
# transcription


def test_transcription_json_and_text(server, audio, asr_ref):
    c = client(server)
    want = reference(asr_ref, audio["clips"])
    assert len(want.segments) == 3
    with open(audio["clips"], "rb") as f:
        got = c.audio.transcriptions.create(model="whisper-1", file=f)
    assert got.text == want.text
    assert got.usage.type == "duration" and got.usage.seconds == pytest.approx(want.duration)
    with open(audio["short"], "rb") as f:
        text = c.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
    assert text == reference(asr_ref, audio["short"]).text + "\n"
    # a language given by the request reaches the model
    with open(audio["short"], "rb") as f:
        en = c.audio.transcriptions.create(model="whisper-1", file=f, language="en")
    assert en.text == reference(asr_ref, audio["short"], "en").text


def test_transcription_srt_and_vtt(server, audio, asr_ref):
    c = client(server)
    want = reference(asr_ref, audio["clips"])
    with open(audio["clips"], "rb") as f:
        body = c.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt")
    assert body == format_transcription(want, "srt")
    cues = [(c.start.total_seconds(), c.end.total_seconds()) for c in srt.parse(body)]
    spoken = [s for s in want.segments if s.text.strip()]
    assert_cues_cover(cues, spoken)
    with open(audio["clips"], "rb") as f:
        body = c.audio.transcriptions.create(model="whisper-1", file=f, response_format="vtt")
    assert body == format_transcription(want, "vtt")
    captions = webvtt.from_string(body).captions
    assert_cues_cover([(c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000)
                       for c in captions], spoken)


def assert_cues_cover(cues, segments):
    """Cues in order, each inside one segment's span (long segments are split
    into several cues), every segment starting and ending a cue."""
    assert cues == sorted(cues) and len(cues) >= len(segments)
    for start, end in cues:
        assert any(s.start - 5e-4 <= start <= end <= s.end + 5e-4 for s in segments), (start, end)
    for seg in segments:
        assert any(abs(start - seg.start) <= 5e-4 for start, _ in cues)
        assert any(abs(end - seg.end) <= 5e-4 for _, end in cues)


def test_transcription_verbose_json(server, audio, asr_ref):
    c = client(server)
    want = reference(asr_ref, audio["clips"])
    with open(audio["clips"], "rb") as f:
        raw = c.audio.transcriptions.with_raw_response.create(
            model="whisper-1", file=f, response_format="verbose_json", timestamp_granularities=["segment"])
    data = json.loads(raw.text)
    v = TranscriptionVerbose.model_validate(data)  # every field of OpenAI's schema, right types
    assert isinstance(data["language"], str) and data["language"] == schemas.language_name(want.language)
    assert v.text == want.text and v.duration == pytest.approx(want.duration)
    assert v.usage.type == "duration"
    assert len(v.segments) == len(want.segments)
    for got, seg in zip(v.segments, want.segments):
        assert (got.id, got.text, got.tokens) == (seg.id, seg.text, list(seg.tokens))
        assert got.start == pytest.approx(seg.start) and got.end == pytest.approx(seg.end)
        assert got.seek == round(seg.start * 100) and got.temperature == 0.0
        data_ = seg.text.encode()
        assert got.compression_ratio == pytest.approx(len(data_) / len(zlib.compress(data_)) if data_ else 0.0)
        assert math.isfinite(got.avg_logprob) and got.avg_logprob <= 0.0
        if hasattr(seg, "avg_logprob"):
            assert got.avg_logprob == pytest.approx(seg.avg_logprob)
        assert 0.0 <= got.no_speech_prob <= 1.0
    # the client's own parsing of the same call
    with open(audio["clips"], "rb") as f:
        parsed = c.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json")
    assert isinstance(parsed, TranscriptionVerbose) and parsed.text == want.text


def test_transcription_stream(server, audio, asr_ref):
    want = reference(asr_ref, audio["clips"])
    with open(audio["clips"], "rb") as f:
        events = list(client(server).audio.transcriptions.create(model="gpt-4o-transcribe", file=f, stream=True))
    kinds = [e.type for e in events]
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    assert kinds[-1] == "transcript.text.done" and set(kinds[:-1]) == {"transcript.text.delta"}
    assert len(deltas) == sum(1 for s in want.segments if s.text)  # one event per clip as it finishes
    assert "".join(deltas) == want.text
    assert events[-1].text == want.text


def test_transcription_bad_requests(server, audio):
    c = client(server)
    junk = b"this is not an audio file" * 10
    with pytest.raises(AudioError) as expected:
        load_audio(junk)
    with pytest.raises(openai.BadRequestError) as e:
        c.audio.transcriptions.create(model="whisper-1", file=("talk.wav", junk))
    assert e.value.status_code == 400
    # the AudioError's own text (less the address of the in-memory file object it names)
    assert re.sub(" at 0x[0-9a-f]+", "", e.value.body["message"]) == re.sub(" at 0x[0-9a-f]+", "", str(expected.value))
    assert e.value.body["param"] == "file"
    for kwargs, param in [({"language": "fr"}, "language"), ({"response_format": "diarized_json"}, "response_format"),
                          ({"timestamp_granularities": ["word"]}, "timestamp_granularities")]:
        with open(audio["short"], "rb") as f, pytest.raises(openai.BadRequestError) as e:
            c.audio.transcriptions.create(model="whisper-1", file=f, **kwargs)
        assert e.value.body["param"] == param, kwargs


def test_upload_over_the_limit_is_413(server, audio):
    big = np.zeros(int(UPLOAD_MB * 1024 * 1024 / 2) + 8000, dtype=np.int16)
    import io

    buf = io.BytesIO()
    sf.write(buf, big, 16000, format="WAV", subtype="PCM_16")
    with pytest.raises(openai.APIStatusError) as e:
        client(server).audio.transcriptions.create(model="whisper-1", file=("big.wav", buf.getvalue()))
    assert e.value.status_code == 413 and e.value.body["code"] == "request_too_large"
    # a chunked body (no Content-Length) is cut off as it arrives
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    boundary = "mimo-boundary"
    chunks = ([multipart_head(boundary, {"model": "m"}, "big.wav")] + [b"\0" * 65536] * (UPLOAD_MB * 16 + 4)
              + [multipart_tail(boundary)])
    conn.request("POST", "/v1/audio/transcriptions", body=iter(chunks), encode_chunked=True,
                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": f"multipart/form-data; boundary={boundary}",
                          "Transfer-Encoding": "chunked"})
    r = conn.getresponse()
    assert r.status == 413 and json.loads(r.read())["error"]["code"] == "request_too_large"
    conn.close()


def test_api_key_is_required(server, audio):
    with open(audio["short"], "rb") as f, pytest.raises(openai.AuthenticationError) as e:
        client(server, key="wrong").audio.transcriptions.create(model="whisper-1", file=f)
    assert e.value.status_code == 401
    assert e.value.body == {"message": "incorrect API key provided", "type": "invalid_request_error",
                            "param": None, "code": "invalid_api_key"}
    with pytest.raises(openai.AuthenticationError):
        client(server, key="wrong").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    status, body = http_get(server.url + "/v1/models")  # no key at all
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
    assert http_get(server.url + "/metrics")[0] == 401
    assert http_get(server.url + "/metrics", key=KEY)[0] == 200


def test_full_queue_is_429_and_nothing_is_mixed(server, audio, asr_ref):
    """One session and one queue place: of 6 simultaneous long requests, at
    most 2 are taken; the rest get 429 with Retry-After."""
    want = reference(asr_ref, audio["long"]).text
    data = audio["long"].read_bytes()
    c = client(server)

    def one(_):
        try:
            return 200, c.audio.transcriptions.create(model="whisper-1", file=("long.wav", data)).text, None
        except openai.RateLimitError as e:
            return 429, e.body, e.response.headers.get("retry-after")

    with cf.ThreadPoolExecutor(6) as ex:
        results = list(ex.map(one, range(6)))
    codes = [r[0] for r in results]
    assert codes.count(200) >= 1 and codes.count(429) >= 1 and len(codes) == 6, codes
    assert codes.count(200) <= 2 + 1  # a request may slip in as the first one finishes
    for code, payload, retry in results:
        if code == 200:
            assert payload == want
        else:
            assert payload["code"] == "queue_full" and int(retry) >= 1


# ---------------------------------------------------------------------------------------------
# text


def test_chat_completions(server, text_model, text_ref):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the quick brown fox"}]
    from mimo_ggml.chat_template import render_chat

    template = text_ref.model.chat_template
    assert template  # the converter wrote the checkpoint's template
    prompt = text_ref.model.render_chat(messages)
    assert prompt == render_chat(messages, template)  # this fixture's template uses no bos/eos variables
    assert prompt != format_chat(messages)  # the fixture's template is not plain ChatML: it is really used
    c = client(server)
    for sampling in ({}, {"temperature": 0.8, "top_p": 0.9, "seed": 11}):
        want = text_ref.generate(prompt, max_tokens=12, **sampling)
        got = c.chat.completions.create(model="mimo", messages=messages, max_tokens=12, **sampling)
        assert got.choices[0].message.content == want.text
        assert got.choices[0].finish_reason == want.finish_reason
        assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (want.prompt_tokens, want.completion_tokens)
        chunks = list(c.chat.completions.create(model="mimo", messages=messages, max_completion_tokens=12,
                                                stream=True, stream_options={"include_usage": True}, **sampling))
        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text == want.text
        assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == want.finish_reason
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == want.completion_tokens
    # stop strings
    full = text_ref.generate(prompt, max_tokens=12)
    if len(full.text) >= 3:
        stop = full.text[1:3]
        got = c.chat.completions.create(model="mimo", messages=messages, max_tokens=12, stop=[stop])
        assert got.choices[0].message.content == text_ref.generate(prompt, max_tokens=12, stop=[stop]).text


def test_completions(server, text_ref):
    c = client(server)
    want = text_ref.generate("the quick brown fox", max_tokens=10)
    got = c.completions.create(model="mimo", prompt="the quick brown fox", max_tokens=10)
    assert got.choices[0].text == want.text and got.usage.completion_tokens == want.completion_tokens
    pieces = list(c.completions.create(model="mimo", prompt="the quick brown fox", max_tokens=10, stream=True))
    assert "".join(p.choices[0].text for p in pieces) == want.text


def test_chat_bad_requests(server):
    c = client(server)
    for kwargs, param in [({"n": 2}, "n"), ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
                          ({"temperature": 5}, "temperature"),
                          ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
                           "messages[0].content[0]")]:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **kwargs}
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(**body)
        assert e.value.body["param"] == param
    # a prompt longer than the context is a plain 400, streamed or not
    long = " ".join(["fox"] * (TEXT_CTX + 10))
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as e:
            r = c.completions.create(model="m", prompt=long, max_tokens=2, stream=stream)
            list(r) if stream else None
        assert "context" in e.value.body["message"]


# ---------------------------------------------------------------------------------------------
# cancellation, metrics


def _metrics(server) -> str:
    status, body = http_get(server.url + "/metrics", key=KEY)
    assert status == 200
    return body


def _wait_metric(server, name, minimum, timeout=20.0, **labels) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = metric(_metrics(server), name, **labels)
        if value >= minimum:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{name}{labels} stayed below {minimum}:\n{_metrics(server)}")


def test_disconnect_cancels_the_work(server, audio, text_ref, asr_ref):
    # text: a long streamed generation, dropped after two chunks
    assert text_ref.generate("hello", max_tokens=TEXT_CTX).completion_tokens > 1000  # it would run on
    before = metric(_metrics(server), "mimo_ggml_cancelled_total", pool="text", stage="running")
    conn, r = post_json(server, "/v1/completions", {"model": "m", "prompt": "hello", "max_tokens": TEXT_CTX,
                                                    "stream": True})
    assert r.status == 200
    assert r.readline().startswith(b"data: ")
    conn.sock.close()
    conn.close()
    _wait_metric(server, "mimo_ggml_cancelled_total", before + 1, pool="text", stage="running")
    # the session is free again at once
    t0 = time.monotonic()
    assert client(server).completions.create(model="m", prompt="the quick", max_tokens=2).choices[0].text == \
        text_ref.generate("the quick", max_tokens=2).text
    assert time.monotonic() - t0 < 10
    # speech: a streamed 30 s transcription (8 clips) dropped after its first segment
    before = metric(_metrics(server), "mimo_ggml_cancelled_total", pool="asr", stage="running")
    seconds = metric(_metrics(server), "mimo_ggml_audio_seconds_total")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    boundary = "b0undary"
    body = multipart_head(boundary, {"model": "m", "stream": "true"}, "long.wav") + audio["long"].read_bytes() \
        + multipart_tail(boundary)
    conn.request("POST", "/v1/audio/transcriptions", body=body,
                 headers={"Authorization": f"Bearer {KEY}",
                          "Content-Type": f"multipart/form-data; boundary={boundary}"})
    r = conn.getresponse()
    assert r.status == 200
    line = r.readline()
    assert json.loads(line[len(b"data: "):])["type"] == "transcript.text.delta"
    conn.sock.close()
    conn.close()
    _wait_metric(server, "mimo_ggml_cancelled_total", before + 1, pool="asr", stage="running")
    # a whole (not streamed) transcription whose client hangs up while it runs: stopped between tokens
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    body = multipart_head(boundary, {"model": "m"}, "long.wav") + audio["long"].read_bytes() + multipart_tail(boundary)
    conn.request("POST", "/v1/audio/transcriptions", body=body,
                 headers={"Authorization": f"Bearer {KEY}",
                          "Content-Type": f"multipart/form-data; boundary={boundary}"})
    _wait_metric(server, "mimo_ggml_sessions_busy", 1, pool="asr")
    conn.sock.close()
    conn.close()
    _wait_metric(server, "mimo_ggml_cancelled_total", before + 2, pool="asr", stage="running")
    assert metric(_metrics(server), "mimo_ggml_audio_seconds_total") == seconds  # none counted as transcribed


def test_metrics(server, audio, asr_ref, text_ref):
    text = _metrics(server)
    for name in ("mimo_ggml_queue_depth", "mimo_ggml_sessions_busy", "mimo_ggml_sessions"):
        assert metric(text, name, pool="asr") >= 0 and f"# TYPE {name} gauge" in text
    assert metric(text, "mimo_ggml_sessions", pool="asr") == 1
    assert metric(text, "mimo_ggml_ready") == 1
    seconds = metric(text, "mimo_ggml_audio_seconds_total")
    asr_tokens = metric(text, "mimo_ggml_tokens_total", model="asr", kind="completion")
    ok = metric(text, "mimo_ggml_http_requests_total", method="POST", route="/v1/audio/transcriptions", status="200")
    want = reference(asr_ref, audio["clips"])
    with open(audio["clips"], "rb") as f:
        client(server).audio.transcriptions.create(model="whisper-1", file=f)
    gen = client(server).completions.create(model="m", prompt="the quick", max_tokens=3)
    text = _metrics(server)
    assert metric(text, "mimo_ggml_audio_seconds_total") == pytest.approx(seconds + want.duration)
    assert metric(text, "mimo_ggml_tokens_total", model="asr", kind="completion") == \
        asr_tokens + sum(len(s.tokens) for s in want.segments)
    assert metric(text, "mimo_ggml_http_requests_total", method="POST", route="/v1/audio/transcriptions",
                  status="200") == ok + 1
    assert metric(text, "mimo_ggml_tokens_total", model="text", kind="completion") >= gen.usage.completion_tokens


# ---------------------------------------------------------------------------------------------
# lifetime


def test_sigterm_drains_in_flight_requests(tiny_asr, audio, asr_ref, tmp_path):
    srv = ServerProcess(["-m", str(tiny_asr["f32_fused"]), "--sessions", "1", "--max-queue", "2", *SERVER_FLAGS],
                        tmp_path)
    try:
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0, timeout=120)
        data = audio["long"].read_bytes()
        with cf.ThreadPoolExecutor(2) as ex:
            futures = [ex.submit(lambda: c.audio.transcriptions.create(model="m", file=("long.wav", data)).text)
                       for _ in range(2)]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # one running, one queued
                models = json.loads(http_get(srv.url + "/health")[1])["models"][0]
                if models["busy"] == 1 and models["queued"] == 1:
                    break
                time.sleep(0.01)
            else:
                pytest.fail("the two requests were never in flight together")
            os.kill(srv.pid, signal.SIGTERM)
            texts = [f.result(timeout=120) for f in futures]
        assert texts == [reference(asr_ref, audio["long"]).text] * 2
        # uvicorn re-raises the signal once it has drained, so the exit is "terminated by SIGTERM"
        assert srv.proc.wait(30) in (0, -signal.SIGTERM)
        log = srv.log()
        assert "Shutting down" in log and "Application shutdown complete" in log
    finally:
        srv.stop()
    with pytest.raises(openai.APIConnectionError):
        c.models.list()


def test_a_model_that_fails_to_load_ends_the_server(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    srv = ServerProcess(["-m", str(bad), "--device", "cpu"], tmp_path, wait=False)
    assert srv.proc.wait(60) == 2
    assert "loading failed" in srv.log()


def test_cli_serve_and_options(monkeypatch, capsys):
    from mimo_ggml.cli import build_parser, main

    monkeypatch.setenv("MIMO_GGML_API_KEY", "from-env")
    args = build_parser().parse_args(["serve", "-m", "asr.gguf", "--sessions", "3", "--max-queue", "5"])
    cfg = config_from_args(args)
    assert (cfg.host, cfg.port, cfg.sessions, cfg.max_queue, cfg.api_key) == ("127.0.0.1", 8080, 3, 5, "from-env")
    assert exposure_warning("127.0.0.1", None) is None and exposure_warning("localhost", None) is None
    assert exposure_warning("::1", None) is None and exposure_warning("0.0.0.0", "key") is None
    assert "without an API key" in exposure_warning("0.0.0.0", None)
    assert main(["serve", "-m", "/nonexistent/mimo-asr.gguf"]) == 2
    assert "model file not found" in capsys.readouterr().err
    assert main(["serve"]) == 2
    assert "nothing to serve" in capsys.readouterr().err
    with pytest.raises(ValueError):
        ServerConfig(asr_model="a.gguf", sessions=0)

    # the warning is printed before serving
    import mimo_ggml.server.app as app_module

    monkeypatch.setattr(app_module, "serve", lambda config: 0)
    monkeypatch.delenv("MIMO_GGML_API_KEY")
    assert main(["serve", "--text-model", "hub/model", "--host", "0.0.0.0"]) == 0
    assert "without an API key" in capsys.readouterr().err


def test_pool_order_queue_and_cancel():
    """SessionPool alone: a full queue refuses at once, a request cancelled in
    the queue never runs, and a session whose request was cancelled while its
    work runs comes back only when that work returns."""
    import asyncio

    from mimo_ggml.errors import GenerationCancelled
    from mimo_ggml.server.pool import CancelToken, QueueFull, SessionPool

    async def main():
        pool = SessionPool("t", ["s1", "s2"], max_queue=1)
        gate = threading.Event()
        ran = []

        def work(session):
            gate.wait(10)
            ran.append(session)
            return session

        leases = [pool.reserve() for _ in range(3)]
        with pytest.raises(QueueFull) as full:
            pool.reserve()
        assert full.value.retry_after >= 1
        t1 = asyncio.ensure_future(leases[0].run(work))
        t2 = asyncio.ensure_future(leases[1].run(work))
        cancel = CancelToken()
        t3 = asyncio.ensure_future(leases[2].run(work, cancel))
        await asyncio.sleep(0.05)
        assert (pool.busy, pool.waiting) == (2, 1)
        cancel.set()
        with pytest.raises(GenerationCancelled):
            await t3
        assert (pool.waiting, pool.cancelled_queued) == (0, 1)
        t1.cancel()
        await asyncio.sleep(0.05)
        assert pool.busy == 2  # its thread still works on the session
        gate.set()
        assert await t2 in ("s1", "s2")
        await asyncio.sleep(0.05)
        assert pool.busy == 0 and pool._free.qsize() == 2 and sorted(ran) == ["s1", "s2"]
        later = pool.reserve()
        assert await later.run(lambda s: s) in ("s1", "s2")
        pool.close()

    asyncio.run(main())


def test_models_still_loading_answer_503():
    from mimo_ggml.server.app import State

    state = State(ServerConfig(asr_model="a.gguf"))
    with pytest.raises(schemas.ApiError) as e:
        state.served("asr")
    assert (e.value.status, e.value.code, e.value.headers) == (503, "model_loading", {"Retry-After": "2"})
    state.status = "ready"
    with pytest.raises(schemas.ApiError) as e:
        state.served("text")
    assert e.value.status == 404 and "--text-model" in e.value.message


def test_schema_parsing_without_a_server():
    r = schemas.parse_chat({"messages": [{"role": "developer", "content": [{"type": "text", "text": "a"},
                                                                            {"type": "text", "text": "b"}]}],
                            "max_completion_tokens": 5, "max_tokens": 9, "stop": "x", "seed": -1})
    assert r.messages == [{"role": "system", "content": "ab"}] and r.max_tokens == 5 and r.stop == ["x"]
    assert r.seed == (2 ** 32 - 1) and r.temperature == 0.0
    with pytest.raises(schemas.ApiError, match="stop"):
        schemas.parse_chat({"messages": [{"role": "user", "content": "a"}], "stop": ["a"] * 5})
    assert schemas.parse_completion({"prompt": [[1, 2, 3]]}).prompt == [1, 2, 3]
    with pytest.raises(schemas.ApiError, match="prompt"):
        schemas.parse_completion({"prompt": [1, "a"]})
    assert schemas.language_name(None) == "unknown" and schemas.language_name("zh") == "chinese"
    assert schemas.compression_ratio("") == 0.0


# ---------------------------------------------------------------------------------------------
# the web page in a real browser


SCREENSHOT = "/tmp/mimo-ggml-server-page.png"


def test_web_page_in_headless_chromium(server, audio, asr_ref, tmp_path):
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install chromium); the page test needs a real browser")
    want = reference(asr_ref, audio["clips"])
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with Chromium(binary) as browser:
        browser.navigate(server.url + "/")
        browser.wait_for("document.getElementById('health').textContent.startsWith('ready')")
        browser.evaluate(f"document.getElementById('apikey').value = {json.dumps(KEY)}")
        browser.set_file("#file", str(audio["clips"]))
        n = browser.wait_for("document.querySelectorAll('#segments li').length", timeout=60)
        assert n == len(want.segments)
        assert browser.evaluate("document.getElementById('transcript').textContent") == want.text
        times = browser.evaluate("[...document.querySelectorAll('#segments .time')].map(e => e.textContent)")
        assert times[1] == f"00:{want.segments[1].start:06.3f} → 00:{want.segments[1].end:06.3f}"
        assert "3 segments" in browser.evaluate("document.getElementById('meta').textContent")
        browser.screenshot(SCREENSHOT)
        # the download buttons save files the server's writers rendered
        try:
            browser.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
        except RuntimeError:  # older builds take it on the page
            browser.call("Page.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
        for fmt in ("srt", "vtt"):
            browser.evaluate(f"document.getElementById('download-{fmt}').click()")
            path = downloads / f"clips.{fmt}"
            deadline = time.monotonic() + 20
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert path.read_text() == format_transcription(want, fmt)
        # recording from the (fake) microphone sends a WAV of what was recorded
        browser.evaluate("document.getElementById('record').click()")
        browser.wait_for("document.getElementById('record').textContent.includes('Stop')")
        time.sleep(2.0)
        browser.evaluate("document.getElementById('record').click()")
        browser.wait_for("document.getElementById('status').textContent.startsWith('Done') && "
                         "document.getElementById('meta').textContent.includes(' s ·')", timeout=60)
        seconds = float(browser.evaluate("document.getElementById('meta').textContent").split(" s")[0])
        assert 1.0 < seconds < 10.0
        # errors are shown, not swallowed
        browser.evaluate("document.getElementById('apikey').value = 'wrong'")
        browser.set_file("#file", str(audio["short"]))
        msg = browser.wait_for("document.getElementById('status').className === 'error' && "
                               "document.getElementById('status').textContent")
        assert msg == "incorrect API key provided"
    assert Path(SCREENSHOT).stat().st_size > 10_000


# ---------------------------------------------------------------------------------------------
# load: slow, so only with MIMO_GGML_SLOW=1 (bench/server_load.py runs the same with its figures)


@pytest.mark.skipif(not os.environ.get("MIMO_GGML_SLOW"), reason="load test: set MIMO_GGML_SLOW=1 to run")
def test_load_32_clients_x_4_requests(tiny_asr, text_model, tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from server_load import run_load

    report = run_load(tiny_asr["f32_fused"], text_model, tmp_path, clients=32, requests_per_client=4, sessions=4,
                      max_queue=8)
    assert report["wrong"] == 0 and report["lost"] == 0, report
    assert report["ok"] + report["rejected"] == 128 and report["ok"] > 0
