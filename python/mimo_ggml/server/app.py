"""The Starlette application (:func:`create_app`) and :func:`serve`.

Request flow: metrics → API key → body limit → route. A route checks its
fields (schemas), reserves a place in its model's pool (429 when full),
decodes audio outside the pool (400 on bad audio), then runs the work on a
session in the pool's threads while a watcher turns a client disconnect
into a cancel. Streams are server-sent events. The models load in a thread
after the port opens (``/health`` says "loading" until then); on SIGTERM or
SIGINT uvicorn stops accepting connections, lets in-flight requests finish,
and the lifespan closes the pools.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..audio import TARGET_SAMPLE_RATE, load_audio
from ..errors import AudioError, GenerationCancelled, InvalidArgumentError, MimoError
from . import schemas
from .metrics import Metrics
from .options import ServerConfig
from .pool import CancelToken, Lease, QueueFull, SessionPool
from .runtime import AsrRuntime, TextRuntime, join_segments

__all__ = ["create_app", "serve"]

log = logging.getLogger("mimo_ggml.server")
STATIC = Path(__file__).with_name("static")
PROTECTED = ("/v1/", "/metrics", "/ui/")  # need the API key when one is set
ROUTES = ("/", "/health", "/metrics", "/v1/models", "/v1/audio/transcriptions", "/v1/chat/completions",
          "/v1/completions", "/ui/subtitles")
CLIENT_GONE = 499  # status recorded for requests whose client disconnected


class UploadTooLarge(Exception):
    pass


@dataclass
class Served:
    """One loaded model and the pool of sessions on it."""

    kind: str  # "asr" | "text"
    runtime: Any
    pool: SessionPool
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class State:
    config: ServerConfig
    metrics: Metrics = field(default_factory=Metrics)
    status: str = "loading"  # loading | ready | error
    error: Optional[str] = None
    asr: Optional[Served] = None
    text: Optional[Served] = None
    server: Any = None  # the uvicorn.Server, told to exit when loading fails

    def served(self, kind: str) -> Served:
        if self.status == "loading":
            raise schemas.ApiError(503, "the models are still loading; retry shortly", type="server_error",
                                   code="model_loading", headers={"Retry-After": "2"})
        if self.status != "ready":
            raise schemas.ApiError(503, f"the server failed to load its models: {self.error}", type="server_error")
        served = self.asr if kind == "asr" else self.text
        if served is None:
            flag = "-m ASR_MODEL" if kind == "asr" else "--text-model MODEL"
            what = "speech-recognition" if kind == "asr" else "text"
            raise schemas.ApiError(404, f"this server has no {what} model; start it with {flag}",
                                   code="model_not_found", param="model")
        return served


# ---------------------------------------------------------------------------
# loading


def _load(state: State, loop: asyncio.AbstractEventLoop) -> None:
    """Runs in a thread: open the runtimes and their sessions."""
    cfg = state.config
    opened: list[tuple[str, Any, list]] = []
    try:
        threads = cfg.session_threads
        if cfg.asr_model:
            log.info("loading %s (%d session%s)", cfg.asr_model, cfg.sessions, "s" * (cfg.sessions > 1))
            rt = AsrRuntime(cfg.asr_model, cfg.tokenizer, device=cfg.device, devices=cfg.devices,
                            layer_split=cfg.layer_split, n_threads=threads,
                            kv_type=cfg.kv_type, n_ctx=cfg.n_ctx, max_clip_s=cfg.max_clip_s, vad=cfg.vad,
                            max_segment_s=cfg.max_segment_s)
            opened.append(("asr", rt, []))
            opened[-1][2].extend(rt.open_session() for _ in range(cfg.sessions))
        if cfg.text_model:
            log.info("loading %s (%d session%s)", cfg.text_model, cfg.sessions, "s" * (cfg.sessions > 1))
            rt = TextRuntime(cfg.text_model, device=cfg.device, devices=cfg.devices, layer_split=cfg.layer_split,
                             n_threads=threads, kv_type=cfg.kv_type,
                             n_ctx=cfg.text_n_ctx, draft=cfg.text_draft, draft_block=cfg.text_draft_block)
            opened.append(("text", rt, []))
            opened[-1][2].extend(rt.open_session() for _ in range(cfg.sessions))
    except BaseException as exc:  # noqa: BLE001 - reported through /health and the exit status
        for _, rt, sessions in opened:
            for s in sessions:
                s.close()
            rt.close()
        loop.call_soon_threadsafe(_failed, state, f"{type(exc).__name__}: {exc}")
        return
    loop.call_soon_threadsafe(_ready, state, opened)


def _ready(state: State, opened) -> None:
    for kind, rt, sessions in opened:
        served = Served(kind, rt, SessionPool(kind, sessions, state.config.max_queue))
        setattr(state, kind, served)
        pool = served.pool
        state.metrics.pools[kind] = lambda pool=pool: (pool.size, pool.busy, pool.waiting, pool.cancelled_queued)
        log.info("%s model %s ready: %d session(s) on one copy of the weights", kind, rt.id, pool.size)
    state.status = "ready"


def _failed(state: State, message: str) -> None:
    state.status, state.error = "error", message
    log.error("loading failed: %s", message)
    if state.server is not None:
        state.server.should_exit = True


def _lifespan(state: State):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        loop = asyncio.get_running_loop()
        loader = threading.Thread(target=_load, args=(state, loop), name="mimo-load", daemon=True)
        loader.start()
        try:
            yield
        finally:
            # uvicorn has let in-flight requests finish before this runs
            await loop.run_in_executor(None, loader.join)
            await asyncio.sleep(0)  # let a _ready scheduled by the loader run
            for served in (state.asr, state.text):
                if served is not None:
                    await loop.run_in_executor(None, served.pool.close)
                    served.runtime.close()
            log.info("stopped")

    return lifespan


# ---------------------------------------------------------------------------
# middleware (plain ASGI, so streams pass through untouched)


def _route_of(path: str) -> str:
    if path.startswith("/static/"):
        return "/static"
    if path.startswith("/v1/models/"):
        return "/v1/models"
    return path if path in ROUTES else "other"


class MetricsMiddleware:
    def __init__(self, app, state: State):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def send_(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_)
        except (asyncio.CancelledError, OSError):
            status["code"] = CLIENT_GONE
            raise
        finally:
            code = scope.get("mimo.status", status["code"])
            self.state.metrics.observe_request(scope["method"], _route_of(scope["path"]), code,
                                               time.perf_counter() - start)


def _header(scope, name: bytes) -> Optional[str]:
    for k, v in scope.get("headers", ()):
        if k.lower() == name:
            return v.decode("latin-1")
    return None


async def _drain(receive, limit: int) -> None:
    """Read and drop the rest of a request body (up to ``limit`` bytes), so the
    client sees our early answer instead of a reset connection."""
    seen = 0
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _drain_limit(max_upload: int) -> int:
    return 4 * max_upload + (16 << 20)


async def _send_error(send, status: int, body: dict, headers: Optional[dict] = None) -> None:
    response = JSONResponse(body, status_code=status, headers=headers)
    await response({"type": "http"}, None, send)


class ApiKeyMiddleware:
    def __init__(self, app, api_key: Optional[str], max_upload: int):
        self.app, self.key, self.max_upload = app, api_key, max_upload

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.key or not scope["path"].startswith(PROTECTED):
            return await self.app(scope, receive, send)
        auth = _header(scope, b"authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.key.encode()):
            return await self.app(scope, receive, send)
        message = ("missing API key: send 'Authorization: Bearer KEY'" if not auth
                   else "incorrect API key provided")
        length = _header(scope, b"content-length")
        if length and length.isdigit() and int(length) <= _drain_limit(self.max_upload):
            await _drain(receive, int(length))
        await _send_error(send, 401, schemas.error_body(message, "invalid_request_error", None, "invalid_api_key"),
                          {"WWW-Authenticate": "Bearer"})


class BodyLimitMiddleware:
    """413 for bodies over the limit: at once from Content-Length, else as
    the bytes arrive (the route sees UploadTooLarge)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = _header(scope, b"content-length")
        if length and length.isdigit() and int(length) > self.max:
            if int(length) <= _drain_limit(self.max):
                await _drain(receive, int(length))
            return await _send_error(send, 413, _too_large(self.max))
        seen = 0

        async def receive_():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max:
                    if message.get("more_body", False):
                        await _drain(receive, _drain_limit(self.max))
                    raise UploadTooLarge()
            return message

        await self.app(scope, receive_, send)


def _too_large(limit: int) -> dict:
    return schemas.error_body(f"the request body is larger than the server's limit of {limit / (1 << 20):g} MiB",
                              "invalid_request_error", "file", "request_too_large")


# ---------------------------------------------------------------------------
# helpers


def _json_error(status: int, body: dict, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


async def _on_api_error(request: Request, exc: schemas.ApiError):
    return _json_error(exc.status, exc.body(), exc.headers)


async def _on_queue_full(request: Request, exc: QueueFull):
    request.app.state.mimo.metrics.rejected[(exc.pool, "queue_full")] += 1
    return _json_error(429, schemas.error_body(str(exc), "rate_limit_exceeded", None, "queue_full"),
                       {"Retry-After": str(exc.retry_after)})


async def _on_too_large(request: Request, exc: UploadTooLarge):
    return _json_error(413, _too_large(request.app.state.mimo.config.max_upload_bytes))


async def _on_http_error(request: Request, exc: HTTPException):
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return _json_error(exc.status_code, schemas.error_body(str(exc.detail), kind), getattr(exc, "headers", None))


async def _on_invalid(request: Request, exc: InvalidArgumentError):
    return _json_error(400, schemas.error_body(str(exc)))


async def _on_mimo_error(request: Request, exc: MimoError):
    log.exception("request failed", exc_info=exc)
    return _json_error(500, schemas.error_body(f"{type(exc).__name__}: {exc}", "server_error"))


@contextlib.asynccontextmanager
async def _watch_disconnect(request: Request, cancel: CancelToken):
    """While the body runs, a client that disconnects sets ``cancel``
    (the request body has been read, so the next message is the disconnect)."""

    async def watch():
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                cancel.set()
                return

    task = asyncio.ensure_future(watch())
    try:
        yield
    finally:
        task.cancel()


def _counting(state: State, pool: str, fn: Callable[[Any], Any], loop) -> Callable[[Any], Any]:
    """``fn`` that records in the metrics when its work was cancelled."""

    def work(session):
        try:
            return fn(session)
        except GenerationCancelled:
            loop.call_soon_threadsafe(_count_cancel, state, pool)
            raise

    return work


def _count_cancel(state: State, pool: str) -> None:
    state.metrics.cancelled[pool] += 1  # stopped while running; the pool counts those stopped in the queue


async def _run(request: Request, state: State, pool: str, lease: Lease, fn: Callable[[Any, CancelToken], Any]):
    """``fn(session, cancel)`` on the pool, a client disconnect setting
    ``cancel``; None if the client went away."""
    cancel = CancelToken()
    loop = asyncio.get_running_loop()
    async with _watch_disconnect(request, cancel):
        try:
            return await lease.run(_counting(state, pool, lambda s: fn(s, cancel), loop), cancel)
        except GenerationCancelled:
            if not cancel.is_set():
                raise
            request.scope["mimo.status"] = CLIENT_GONE
            return None


class _LeasedStream(StreamingResponse):
    """An SSE response that gives back its queue place and cancels its work
    however the response ends (even if it never started iterating)."""

    def __init__(self, content, lease: Lease, cancel: CancelToken):
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._lease, self._cancel = lease, cancel

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._cancel.set()
            self._lease.close()


def _sse(obj: Any) -> str:
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    return f"data: {data}\n\n"


# ---------------------------------------------------------------------------
# routes


async def index(request: Request):
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def health(request: Request):
    state: State = request.app.state.mimo
    body: dict = {"status": "ok" if state.status == "ready" else state.status}
    if state.error:
        body["error"] = state.error
    for served in (state.asr, state.text):
        if served is not None:
            body.setdefault("models", []).append(
                {"id": served.runtime.id, "kind": served.kind, "sessions": served.pool.size,
                 "busy": served.pool.busy, "queued": served.pool.waiting})
    return JSONResponse(body, status_code=200 if state.status == "ready" else 503)


async def metrics(request: Request):
    state: State = request.app.state.mimo
    return PlainTextResponse(state.metrics.render(state.status == "ready"),
                             media_type="text/plain; version=0.0.4; charset=utf-8")


def _model_entries(state: State) -> list[tuple[str, int]]:
    return [(s.runtime.id, s.created) for s in (state.asr, state.text) if s is not None]


async def list_models(request: Request):
    state: State = request.app.state.mimo
    if state.status == "loading":
        state.served("asr")  # raises the 503
    return JSONResponse(schemas.models_list(_model_entries(state)))


async def get_model(request: Request):
    state: State = request.app.state.mimo
    mid = request.path_params["model"]
    for entry in schemas.models_list(_model_entries(state))["data"]:
        if entry["id"] == mid:
            return JSONResponse(entry)
    raise schemas.ApiError(404, f"the model {mid!r} does not exist", param="model", code="model_not_found")


async def transcriptions(request: Request):
    state: State = request.app.state.mimo
    served = state.served("asr")
    form = await request.form(max_files=1, max_fields=64)
    try:
        req = schemas.parse_transcription_form(form)
        data = await req.upload.read()
    finally:
        await form.close()
    lease = served.pool.reserve()
    streaming = False
    try:
        try:
            wave = await run_in_threadpool(load_audio, data)
        except AudioError as exc:
            raise schemas.ApiError(400, str(exc), param="file", code="invalid_audio") from None
        if req.stream:
            cancel = CancelToken()
            response = _LeasedStream(_transcription_events(state, served, lease, cancel, wave, req), lease, cancel)
            streaming = True  # the response gives the place back
            return response

        def work(session, cancel):
            return served.runtime.transcribe(session, wave, language=req.language, cancel=cancel.event)

        result = await _run(request, state, "asr", lease, work)
    finally:
        if not streaming:
            lease.close()
    if result is None:
        return Response(status_code=CLIENT_GONE)
    _count_transcription(state, result.duration, result.segments)
    return _transcription_response(result, req.response_format)


def _count_transcription(state: State, duration: float, segments) -> None:
    state.metrics.audio_seconds += float(duration)
    state.metrics.tokens[("asr", "completion")] += sum(len(s.tokens) for s in segments)


def _transcription_response(result, fmt: str) -> Response:
    from ..writers import format_transcription

    if fmt == "json":
        return JSONResponse(schemas.transcription_json(result.text, result.duration))
    if fmt == "verbose_json":
        return JSONResponse(schemas.transcription_verbose(result))
    if fmt == "text":
        return PlainTextResponse(result.text + "\n")
    media = {"srt": "application/x-subrip", "vtt": "text/vtt"}[fmt]
    return Response(format_transcription(result, fmt), media_type=f"{media}; charset=utf-8")


async def _transcription_events(state: State, served: Served, lease: Lease, cancel: CancelToken, wave, req):
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def on_segment(seg):
        loop.call_soon_threadsafe(queue.put_nowait, seg)

    def work(session):
        return served.runtime.transcribe_stream(session, wave, language=req.language, cancel=cancel.event,
                                                on_segment=on_segment)

    task = asyncio.ensure_future(lease.run(_counting(state, "asr", work, loop), cancel))
    task.add_done_callback(lambda _t: queue.put_nowait(None))
    sent_any = False
    try:
        seen = []
        while (seg := await queue.get()) is not None:
            seen.append(seg)
            if not seg.text:
                continue
            lang, _ = join_segments(seen, req.language)
            joiner = "" if lang == "zh" or not sent_any else " "
            sent_any = True
            yield _sse(schemas.transcript_delta(joiner + seg.text))
        try:
            segments, _lang, text = task.result()
        except MimoError as exc:
            yield _sse(schemas.error_body(f"{type(exc).__name__}: {exc}", "server_error"))
            return
        _count_transcription(state, len(wave) / TARGET_SAMPLE_RATE, segments)
        yield _sse(schemas.transcript_done(text))
    finally:
        if not task.done():
            task.cancel()


async def _body_json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise schemas.ApiError(400, f"the request body is not valid JSON: {exc}", param="body") from None


async def chat_completions(request: Request):
    state: State = request.app.state.mimo
    served = state.served("text")
    req = schemas.parse_chat(await _body_json(request))
    try:
        prompt = served.runtime.render(req.messages)
    except InvalidArgumentError as exc:
        raise schemas.ApiError(400, str(exc), param="messages") from None
    return await _generate(request, state, served, req, prompt, chat=True)


async def completions(request: Request):
    state: State = request.app.state.mimo
    served = state.served("text")
    req = schemas.parse_completion(await _body_json(request))
    return await _generate(request, state, served, req, req.prompt, chat=False)


async def _generate(request: Request, state: State, served: Served, req, prompt, *, chat: bool):
    runtime = served.runtime
    params = dict(max_tokens=req.max_tokens or runtime.n_ctx, **req.sampling())
    id_ = schemas.new_id("chatcmpl" if chat else "cmpl")
    created = int(time.time())
    lease = served.pool.reserve()
    if not req.stream:
        try:
            def work(session, cancel):
                return runtime.generate(session, prompt, cancel=cancel.event, **params)

            result = await _run(request, state, "text", lease, work)
        except InvalidArgumentError as exc:
            raise schemas.ApiError(400, str(exc)) from None
        finally:
            lease.close()
        if result is None:
            return Response(status_code=CLIENT_GONE)
        _count_generation(state, result)
        body = (schemas.chat_completion if chat else schemas.text_completion)(id_, runtime.id, result, created)
        return JSONResponse(body)

    # streamed: wait until the generation has started, so that errors in the
    # request (a prompt longer than the context...) are still a plain 400
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = CancelToken()
    started = object()

    def work(session):
        return runtime.generate(session, prompt, cancel=cancel.event,
                                on_start=lambda: loop.call_soon_threadsafe(queue.put_nowait, started),
                                on_piece=lambda piece: loop.call_soon_threadsafe(queue.put_nowait, piece), **params)

    task = asyncio.ensure_future(lease.run(_counting(state, "text", work, loop), cancel))
    task.add_done_callback(lambda _t: queue.put_nowait(None))
    try:
        async with _watch_disconnect(request, cancel):
            first = await queue.get()
    except BaseException:
        task.cancel()
        lease.close()
        raise
    if first is None:  # ended before starting: an error in the request, or the client left
        lease.close()
        try:
            task.result()
        except GenerationCancelled:
            request.scope["mimo.status"] = CLIENT_GONE
            return Response(status_code=CLIENT_GONE)
        except InvalidArgumentError as exc:
            raise schemas.ApiError(400, str(exc)) from None
        queue.put_nowait(None)  # it did finish: the stream ends at once
    return _LeasedStream(_generation_events(state, runtime.id, id_, created, queue, task, req, chat), lease, cancel)


def _count_generation(state: State, result) -> None:
    state.metrics.tokens[("text", "prompt")] += int(result.prompt_tokens)
    state.metrics.tokens[("text", "completion")] += int(result.completion_tokens)


async def _generation_events(state: State, model: str, id_: str, created: int, queue: asyncio.Queue, task, req,
                             chat: bool):
    try:
        if chat:
            yield _sse(schemas.chat_chunk(id_, model, created, {"role": "assistant", "content": ""}))
        while (piece := await queue.get()) is not None:
            if chat:
                yield _sse(schemas.chat_chunk(id_, model, created, {"content": piece}))
            else:
                yield _sse(schemas.completion_chunk(id_, model, created, piece))
        try:
            result = task.result()
        except MimoError as exc:
            yield _sse(schemas.error_body(f"{type(exc).__name__}: {exc}", "server_error"))
            return
        _count_generation(state, result)
        if chat:
            yield _sse(schemas.chat_chunk(id_, model, created, {}, result.finish_reason))
        else:
            yield _sse(schemas.completion_chunk(id_, model, created, "", result.finish_reason))
        if req.include_usage:
            make = schemas.chat_chunk if chat else schemas.completion_chunk
            yield _sse(make(id_, model, created, usage_=schemas.usage(result)))
        yield _sse("[DONE]")
    finally:
        if not task.done():
            task.cancel()


async def subtitles(request: Request):
    """The web page's downloads: a verbose_json body rendered as srt or vtt
    by the same writers the command line uses."""
    from ..results import Transcription
    from ..writers import format_transcription

    fmt = request.query_params.get("format", "srt")
    if fmt not in ("srt", "vtt"):
        raise schemas.ApiError(400, "format must be srt or vtt", param="format")
    try:
        t = Transcription.from_dict(await _body_json(request))
    except InvalidArgumentError as exc:
        raise schemas.ApiError(400, str(exc), param="body") from None
    media = {"srt": "application/x-subrip", "vtt": "text/vtt"}[fmt]
    return Response(format_transcription(t, fmt), media_type=f"{media}; charset=utf-8")


# ---------------------------------------------------------------------------


def create_app(config: ServerConfig) -> Starlette:
    """The ASGI application for ``config``; the models load when it starts."""
    from starlette.middleware import Middleware

    state = State(config)
    routes = [
        Route("/", index),
        Route("/health", health),
        Route("/metrics", metrics),
        Route("/v1/models", list_models),
        Route("/v1/models/{model:path}", get_model),
        Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/ui/subtitles", subtitles, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(MetricsMiddleware, state=state),
            Middleware(ApiKeyMiddleware, api_key=config.api_key, max_upload=config.max_upload_bytes),
            Middleware(BodyLimitMiddleware, max_bytes=config.max_upload_bytes),
        ],
        exception_handlers={
            schemas.ApiError: _on_api_error,
            QueueFull: _on_queue_full,
            UploadTooLarge: _on_too_large,
            HTTPException: _on_http_error,
            InvalidArgumentError: _on_invalid,
            MimoError: _on_mimo_error,
        },
        lifespan=_lifespan(state),
    )
    app.state.mimo = state
    return app


def serve(config: ServerConfig) -> int:
    """Run the server until SIGINT/SIGTERM; 0, or 2 when the models failed to load."""
    import uvicorn

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if config.log_level == "debug" else logging.INFO)
    log.propagate = False
    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level=config.log_level,
                                           lifespan="on", timeout_graceful_shutdown=None))
    app.state.mimo.server = server
    server.run()
    return 2 if app.state.mimo.status == "error" else 0
