"""The server's settings: :class:`ServerConfig`, its command-line flags
(:func:`add_arguments`, shared by ``mimo-ggml serve`` and
``python -m mimo_ggml.server``) and :func:`run`.

Importing this module needs no server dependency; :func:`run` imports the
ASGI stack and says how to install it when it is missing.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..arguments import cli_devices

API_KEY_ENV = "MIMO_GGML_API_KEY"


@dataclass
class ServerConfig:
    """Everything ``serve`` needs. ``sessions`` and ``max_queue`` apply to
    each served model (the ASR model and the text model have a pool each).
    ``threads`` is the CPU threads of each session (None: the cores divided
    among the sessions)."""

    asr_model: Optional[str] = None
    tokenizer: Optional[str] = None
    text_model: Optional[str] = None
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: Optional[str] = None
    sessions: int = 1
    max_queue: int = 8
    max_upload_mb: float = 100.0
    device: str = "auto"
    devices: Optional[list] = None      # several devices (--rpc): the layers split over them
    layer_split: Optional[list] = None  # their shares (None: equal)
    threads: Optional[int] = None
    kv_type: str = "f16"
    n_ctx: int = 4096
    text_n_ctx: int = 4096
    text_draft: Optional[str] = None  # speculative decoding for the text model: a DFlash GGUF or "mtp"
    text_draft_block: int = 8
    max_clip_s: float = 60.0
    vad: bool = True
    max_segment_s: Optional[float] = None  # None: the library's default
    log_level: str = "info"

    def __post_init__(self) -> None:
        if not self.asr_model and not self.text_model:
            raise ValueError("nothing to serve: give an ASR model (-m) and/or a text model (--text-model)")
        for name in ("sessions", "n_ctx", "text_n_ctx"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.text_draft is not None and not self.text_model:
            raise ValueError("--draft needs a text model (--text-model)")
        if not 2 <= self.text_draft_block <= 64:
            raise ValueError(f"draft_block must be between 2 and 64, got {self.text_draft_block}")
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be 0 or more, got {self.max_queue}")
        if not self.max_upload_mb > 0:
            raise ValueError(f"max_upload_mb must be positive, got {self.max_upload_mb}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.max_clip_s and self.max_clip_s < 2.0:
            raise ValueError(f"max_clip_s must be at least 2 seconds (0: one pass), got {self.max_clip_s}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def session_threads(self) -> int:
        if self.threads is not None:
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.sessions)


def is_loopback(host: str) -> bool:
    if host.strip().lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, api_key: Optional[str]) -> Optional[str]:
    """The warning printed when the server would listen beyond this machine
    without an API key (None when there is nothing to warn about)."""
    if api_key or is_loopback(host):
        return None
    return (f"warning: listening on {host} without an API key: anyone who can reach this address can use the "
            f"models; pass --api-key KEY or set {API_KEY_ENV}")


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``serve`` flags (``-v`` comes from the caller's parser)."""
    p.add_argument("-m", "--model", help="mimo_asr GGUF file, folder or Hugging Face repo id (speech recognition)")
    p.add_argument("--tokenizer", help="audio-tokenizer GGUF (default: next to the ASR model)")
    p.add_argument("--text-model", help="mimo2 GGUF file (chat and text completions)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    p.add_argument("--api-key", default=None,
                   help=f"require 'Authorization: Bearer KEY' on /v1 and /metrics (default: ${API_KEY_ENV})")
    p.add_argument("--sessions", type=int, default=1, help="sessions per model: requests run in parallel (default 1)")
    p.add_argument("--max-queue", type=int, default=8,
                   help="requests that may wait for a session per model; more get 429 (default 8)")
    p.add_argument("--max-upload-mb", type=float, default=100.0, help="largest request body in MiB (default 100)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda:0, metal, ...")
    p.add_argument("-t", "--threads", type=int, default=None,
                   help="CPU threads per session (default: the cores divided among the sessions)")
    p.add_argument("--kv-type", default="f16", choices=("f16", "q8_0", "f32"))
    p.add_argument("--n-ctx", type=int, default=4096, help="ASR context positions per session")
    p.add_argument("--text-n-ctx", type=int, default=4096, help="text-model context positions per session")
    p.add_argument("--draft", metavar="PATH|mtp", default=None,
                   help="speculative decoding for the text model: a DFlash drafter GGUF (mimo-ggml convert dflash) "
                        "or 'mtp' (the model's own MTP blocks)")
    p.add_argument("--draft-block", type=int, default=8,
                   help="tokens per verify pass with --draft (default 8; MTP: at most its blocks + 1)")
    p.add_argument("--max-clip", type=float, default=60.0,
                   help="without the VAD: split longer audio at pauses into clips of at most this many seconds "
                        "(0: one pass)")
    p.add_argument("--no-vad", action="store_true",
                   help="decode the whole audio in clips cut at pauses instead of the speech the VAD finds")
    p.add_argument("--max-segment", type=float, default=None,
                   help="longest speech segment with the VAD, in seconds (default 15)")
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        asr_model=args.model, tokenizer=args.tokenizer, text_model=args.text_model, host=args.host, port=args.port,
        api_key=args.api_key if args.api_key is not None else (os.environ.get(API_KEY_ENV) or None),
        sessions=args.sessions, max_queue=args.max_queue, max_upload_mb=args.max_upload_mb,
        **cli_devices(args.device, getattr(args, "rpc", None), getattr(args, "layer_split", None)),
        threads=args.threads, kv_type=args.kv_type, n_ctx=args.n_ctx, text_n_ctx=args.text_n_ctx,
        text_draft=args.draft, text_draft_block=args.draft_block,
        max_clip_s=args.max_clip, vad=not args.no_vad, max_segment_s=args.max_segment, log_level="debug" if getattr(args, "verbose", False) else "info",
    )


def run(config: ServerConfig) -> int:
    """Serve until SIGINT/SIGTERM (in-flight requests finish first); the exit status."""
    try:
        from .app import serve
    except ImportError as exc:
        print(f"mimo-ggml: error: the server needs its extra ({exc.name or exc}): "
              "pip install 'mimo-ggml[server]'", file=sys.stderr)
        return 2
    for path in (config.asr_model, config.text_model, config.tokenizer, config.text_draft):
        # a missing local file fails now, not after the port is open (hub ids are looked up when loading)
        if path and path.endswith(".gguf") and not Path(path).exists():
            print(f"mimo-ggml: error: model file not found: {path}", file=sys.stderr)
            return 2
    warning = exposure_warning(config.host, config.api_key)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    return serve(config)


def run_from_args(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"mimo-ggml: error: {exc}", file=sys.stderr)
        return 2
    return run(config)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m mimo_ggml.server``."""
    p = argparse.ArgumentParser(prog="python -m mimo_ggml.server",
                                description="OpenAI-compatible server for MiMo speech recognition and text models.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logs, native (ggml) logs included")
    add_arguments(p)
    args = p.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    return run_from_args(args)
