"""Information about this build and machine: ggml version, devices, CPU features."""

from __future__ import annotations

from . import _core


def system_info() -> dict:
    """Return a dict with ``ggml_version``, ``ggml_commit``, ``devices`` (name,
    description, type, memory), ``features`` (per ggml backend, e.g. the CPU's
    AVX2/FMA/F16C flags) and ``default_threads``."""
    return _core.system_info()
