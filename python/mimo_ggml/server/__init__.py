"""``mimo-ggml serve``: an OpenAI-compatible HTTP server for the MiMo models.

Modules:

- :mod:`.options` — the command-line flags and :class:`ServerConfig` (no
  server dependencies, so ``mimo-ggml --help`` works without the extra);
- :mod:`.runtime` — the one adapter between the server and the mimo_ggml
  Python API (model loading, sessions, cancellation);
- :mod:`.pool` — N sessions per model behind a bounded queue;
- :mod:`.schemas` — request parsing and the OpenAI response shapes;
- :mod:`.metrics` — counters and gauges in the Prometheus text format;
- :mod:`.app` — the Starlette application and ``serve()``;
- ``static/`` — the web page served at ``/``.

Needs the ``[server]`` extra: ``pip install 'mimo-ggml[server]'``.
"""

from __future__ import annotations

from .options import ServerConfig, add_arguments, main

__all__ = ["ServerConfig", "add_arguments", "main", "create_app", "serve"]


def __getattr__(name: str):
    if name in ("create_app", "serve"):
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module 'mimo_ggml.server' has no attribute {name!r}")
