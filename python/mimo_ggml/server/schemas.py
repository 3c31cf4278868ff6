"""Requests in, OpenAI shapes out.

Owns: checking the fields of ``/v1/audio/transcriptions`` (multipart form),
``/v1/chat/completions`` and ``/v1/completions`` (JSON) with errors that
name the field (:class:`ApiError`, rendered in OpenAI's error shape), and
building every response body field for field as OpenAI's API returns it.

Values OpenAI's schemas require that MiMo-V2.5-ASR has no direct notion of
are filled as follows (README "Server" says the same):

- ``language``: the detected or requested language as OpenAI names it
  (``"english"``, ``"chinese"``), ``"unknown"`` when the model tagged none
  and ``language`` was ``auto``; always a string.
- ``seek``: the segment's start in 10 ms frames (Whisper's unit); each
  segment is one clip decoded on its own.
- ``temperature``: 0.0, the temperature actually used: the ASR decoder is
  greedy whatever the request asks.
- ``avg_logprob``: the segment's ``avg_logprob``, the mean log-probability
  of its tokens under the decoder; 0.0 for a segment without one.
- ``compression_ratio``: UTF-8 length over zlib-compressed length of the
  text, as Whisper computes it (0.0 for an empty segment).
- ``no_speech_prob``: the segment's ``no_speech_prob`` where the runtime
  gives one; otherwise 0.0, no estimate (MiMo-V2.5-ASR has no no-speech
  token to read it from).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import InvalidArgumentError
from ..prompt import normalize_language
from ..results import compression_ratio

__all__ = [
    "ApiError",
    "GenerationRequest",
    "TranscriptionRequest",
    "LANGUAGE_NAMES",
    "RESPONSE_FORMATS",
    "error_body",
    "parse_transcription_form",
    "parse_chat",
    "parse_completion",
    "transcription_json",
    "transcription_verbose",
    "segment_verbose",
    "chat_completion",
    "chat_chunk",
    "text_completion",
    "completion_chunk",
    "usage",
    "transcript_delta",
    "transcript_done",
    "models_list",
    "language_name",
    "compression_ratio",
]

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
LANGUAGE_NAMES = {"en": "english", "zh": "chinese"}
ASR_TEMPERATURE = 0.0  # greedy decoding
MAX_STOP = 4


class ApiError(Exception):
    """A request the server answers with ``status`` and OpenAI's error body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: Optional[str] = None, code: Optional[str] = None, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str = "invalid_request_error", param: Optional[str] = None,
               code: Optional[str] = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param)


def _bool(param: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.strip().lower() in ("true", "1", "yes", "on")
    raise _bad(param, f"'{param}' must be true or false, got {value!r}")


def _number(param: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool):
        raise _bad(param, f"'{param}' must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _bad(param, f"'{param}' must be a number, got {value!r}") from None
    if not (math.isfinite(x) and lo <= x <= hi):
        raise _bad(param, f"'{param}' must be between {lo:g} and {hi:g}, got {value!r}")
    return x


def _int(param: str, value: Any, lo: int, hi: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _bad(param, f"'{param}' must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise _bad(param, f"'{param}' must be {'at least ' + str(lo) if hi is None else f'between {lo} and {hi}'}, "
                          f"got {value}")
    return value


def _language(value: Any) -> str:
    if value is None or value == "":
        return "auto"
    try:
        return normalize_language(value)
    except InvalidArgumentError as exc:
        raise _bad("language", str(exc)) from None


# ---------------------------------------------------------------------------
# /v1/audio/transcriptions


@dataclass
class TranscriptionRequest:
    upload: Any  # starlette UploadFile
    model: str
    language: str  # "auto", "en" or "zh"
    response_format: str
    stream: bool
    prompt: Optional[str] = None  # accepted, not used: MiMo-V2.5-ASR has no context-prompt slot
    temperature: float = 0.0  # accepted, not used: decoding is greedy


def parse_transcription_form(form: Mapping[str, Any]) -> TranscriptionRequest:
    """Check the multipart fields (``form`` is Starlette's FormData)."""
    upload = form.get("file")
    if upload is None:
        raise _bad("file", "'file' is required: the audio file to transcribe")
    if isinstance(upload, str) or not hasattr(upload, "read"):
        raise _bad("file", "'file' must be an uploaded file (multipart/form-data), not a text field")
    fmt = (form.get("response_format") or "json").strip().lower()
    if fmt not in RESPONSE_FORMATS:
        raise _bad("response_format",
                   f"response_format {fmt!r} is not supported; use one of {', '.join(RESPONSE_FORMATS)}")
    stream = _bool("stream", form.get("stream") or "false")
    if stream and fmt not in ("json", "text"):
        raise _bad("stream", "stream=true sends transcript events; use response_format json or text with it")
    grains = [g.strip().lower() for key in ("timestamp_granularities[]", "timestamp_granularities")
              for g in form.getlist(key)] if hasattr(form, "getlist") else []
    for g in grains:
        if g != "segment":
            raise _bad("timestamp_granularities",
                       f"timestamp granularity {g!r} is not supported; this model gives segment times only")
    temperature = form.get("temperature")
    return TranscriptionRequest(
        upload=upload,
        model=str(form.get("model") or ""),
        language=_language(form.get("language")),
        response_format=fmt,
        stream=stream,
        prompt=form.get("prompt") or None,
        temperature=_number("temperature", temperature, 0.0, 1.0) if temperature not in (None, "") else 0.0,
    )


def language_name(code: Optional[str]) -> str:
    if not code:
        return "unknown"
    return LANGUAGE_NAMES.get(code, code)


def _real(value: Any, default: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return default
    return x if math.isfinite(x) else default


def segment_verbose(seg) -> dict:
    """One ``TranscriptionSegment`` from a :class:`mimo_ggml.results.Segment`."""
    return {
        "id": int(seg.id),
        "seek": int(round(float(seg.start) * 100)),
        "start": float(seg.start),
        "end": float(seg.end),
        "text": seg.text,
        "tokens": [int(t) for t in seg.tokens],
        "temperature": ASR_TEMPERATURE,
        "avg_logprob": _real(getattr(seg, "avg_logprob", None), 0.0),
        "compression_ratio": compression_ratio(seg.text),
        "no_speech_prob": _real(getattr(seg, "no_speech_prob", None), 0.0),
    }


def _duration_usage(seconds: float) -> dict:
    return {"type": "duration", "seconds": float(seconds)}


def transcription_json(text: str, duration: float) -> dict:
    return {"text": text, "usage": _duration_usage(duration)}


def transcription_verbose(t) -> dict:
    """``TranscriptionVerbose`` from a :class:`mimo_ggml.results.Transcription`."""
    return {
        "task": "transcribe",
        "language": language_name(t.language),
        "duration": float(t.duration),
        "text": t.text,
        "segments": [segment_verbose(s) for s in t.segments],
        "usage": _duration_usage(t.duration),
    }


def transcript_delta(delta: str) -> dict:
    return {"type": "transcript.text.delta", "delta": delta}


def transcript_done(text: str) -> dict:
    # the runtime does not count the audio's input tokens, so the optional token usage is left out
    return {"type": "transcript.text.done", "text": text}


# ---------------------------------------------------------------------------
# /v1/chat/completions and /v1/completions


@dataclass
class GenerationRequest:
    model: str
    max_tokens: Optional[int]
    temperature: float
    top_p: float
    top_k: int
    seed: int
    stop: list[str]
    stream: bool
    include_usage: bool
    messages: list[dict] = field(default_factory=list)  # chat
    prompt: Any = None  # completions: a string or token ids

    def sampling(self) -> dict:
        """Keyword arguments for ``TextSession.generate`` (max_tokens aside)."""
        return dict(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, seed=self.seed,
                    stop=self.stop or None)


_CHAT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


def _content(i: int, content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise _bad(f"messages[{i}].content[{j}]",
                           f"content part of type {kind!r} is not supported: this model reads text parts only")
            parts.append(part["text"])
        return "".join(parts)
    raise _bad(f"messages[{i}].content", "message content must be a string or a list of text parts")


def _common(body: Mapping[str, Any]) -> dict:
    if not isinstance(body, Mapping):
        raise _bad("body", "the request body must be a JSON object")
    n = body.get("n")
    if n is not None and _int("n", n, 1) != 1:
        raise _bad("n", "only n=1 is supported")
    for name in ("presence_penalty", "frequency_penalty"):
        v = body.get(name)
        if v not in (None, 0, 0.0):
            raise _bad(name, f"'{name}' is not supported (only 0)")
    if body.get("logprobs") not in (None, False, 0) or body.get("top_logprobs") not in (None, 0):
        raise _bad("logprobs", "log-probabilities are not returned by this server")
    if body.get("tools") or body.get("functions"):
        raise _bad("tools", "tool calling is not supported by this server")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, Mapping) and fmt.get("type") == "text"):
        raise _bad("response_format", "only response_format {'type': 'text'} is supported")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stops, list) or len(stops) > MAX_STOP or not all(isinstance(s, str) and s for s in stops):
        raise _bad("stop", f"'stop' must be a non-empty string or a list of at most {MAX_STOP} of them")
    max_tokens = body.get("max_completion_tokens")
    param = "max_completion_tokens"
    if max_tokens is None:
        max_tokens, param = body.get("max_tokens"), "max_tokens"
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, Mapping):
        raise _bad("stream_options", "'stream_options' must be an object")
    seed = body.get("seed")
    top_k = body.get("top_k")
    return dict(
        model=str(body.get("model") or ""),
        max_tokens=None if max_tokens is None else _int(param, max_tokens, 1),
        temperature=_number("temperature", body.get("temperature", 0.0) if body.get("temperature") is not None
                            else 0.0, 0.0, 2.0),
        top_p=_number("top_p", body.get("top_p") if body.get("top_p") is not None else 1.0, 0.0, 1.0),
        top_k=0 if top_k is None else _int("top_k", top_k, 0),
        seed=0 if seed is None else _int("seed", seed, -(2 ** 63), 2 ** 64 - 1) % (2 ** 32),
        stop=list(stops),
        stream=_bool("stream", body.get("stream", False)),
        include_usage=_bool("stream_options.include_usage", stream_options.get("include_usage", False)),
    )


def parse_chat(body: Mapping[str, Any]) -> GenerationRequest:
    common = _common(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "'messages' must be a non-empty list of {'role', 'content'} objects")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise _bad(f"messages[{i}]", "each message must be an object with 'role' and 'content'")
        role = _CHAT_ROLES.get(m.get("role"))
        if role is None:
            raise _bad(f"messages[{i}].role",
                       f"role {m.get('role')!r} is not one of {', '.join(sorted(_CHAT_ROLES))}")
        out.append({"role": role, "content": _content(i, m.get("content"))})
    return GenerationRequest(messages=out, **common)


def parse_completion(body: Mapping[str, Any]) -> GenerationRequest:
    common = _common(body)
    if body.get("echo"):
        raise _bad("echo", "echo is not supported")
    if body.get("suffix"):
        raise _bad("suffix", "suffix is not supported")
    if body.get("best_of") not in (None, 1):
        raise _bad("best_of", "only best_of=1 is supported")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # one prompt in a list
    if isinstance(prompt, str):
        if not prompt:
            raise _bad("prompt", "'prompt' is empty")
    elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        prompt = [int(t) for t in prompt]
    else:
        raise _bad("prompt", "'prompt' must be a string, a list of token ids, or a list holding one of them")
    return GenerationRequest(prompt=prompt, **common)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(result) -> dict:
    return {"prompt_tokens": int(result.prompt_tokens), "completion_tokens": int(result.completion_tokens),
            "total_tokens": int(result.prompt_tokens) + int(result.completion_tokens)}


def with_draft_timings(response: dict, result) -> dict:
    """A speculative generation's acceptance figures, as llama.cpp's server
    reports them (``timings.draft_n`` / ``draft_n_accepted``), plus ours."""
    d = getattr(result, "draft_stats", None)
    if d is not None:
        response["timings"] = {"draft_n": int(d["proposed"]), "draft_n_accepted": int(d["accepted"]),
                               "draft_rounds": int(d["rounds"]),
                               "draft_mean_accepted_length": float(d["mean_accepted_length"])}
    return response


def chat_completion(id_: str, model: str, result, created: Optional[int] = None) -> dict:
    return with_draft_timings({
        "id": id_,
        "object": "chat.completion",
        "created": int(created or time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": result.text, "refusal": None},
            "logprobs": None,
            "finish_reason": result.finish_reason,
        }],
        "usage": usage(result),
        "system_fingerprint": None,
    }, result)


def chat_chunk(id_: str, model: str, created: int, delta: Optional[dict] = None,
               finish_reason: Optional[str] = None, usage_: Optional[dict] = None) -> dict:
    """A ``chat.completion.chunk``; with ``usage_`` the closing usage chunk (no choices)."""
    chunk = {"id": id_, "object": "chat.completion.chunk", "created": created, "model": model,
             "system_fingerprint": None}
    if usage_ is not None:
        chunk["choices"], chunk["usage"] = [], usage_
    else:
        chunk["choices"] = [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}]
    return chunk


def text_completion(id_: str, model: str, result, created: Optional[int] = None) -> dict:
    return with_draft_timings({
        "id": id_,
        "object": "text_completion",
        "created": int(created or time.time()),
        "model": model,
        "choices": [{"index": 0, "text": result.text, "logprobs": None, "finish_reason": result.finish_reason}],
        "usage": usage(result),
        "system_fingerprint": None,
    }, result)


def completion_chunk(id_: str, model: str, created: int, text: str = "", finish_reason: Optional[str] = None,
                     usage_: Optional[dict] = None) -> dict:
    chunk = {"id": id_, "object": "text_completion", "created": created, "model": model,
             "system_fingerprint": None}
    if usage_ is not None:
        chunk["choices"], chunk["usage"] = [], usage_
    else:
        chunk["choices"] = [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}]
    return chunk


def models_list(entries: Sequence[tuple[str, int]]) -> dict:
    return {"object": "list",
            "data": [{"id": mid, "object": "model", "created": created, "owned_by": "mimo-ggml"}
                     for mid, created in entries]}
