"""scikit-build-core metadata provider for mimo-ggml's runtime dependencies.

A source build links the ggml shared libraries of the PyPI package
``libggml-python`` and needs it at run time; a wheel that bundles its own
dispatching ggml (``MIMO_GGML_BUNDLE_GGML=1``) must not pull in that second,
unused copy.
"""

from __future__ import annotations

import os

__all__ = ["dynamic_metadata", "bundling_ggml"]


def bundling_ggml() -> bool:
    return os.environ.get("MIMO_GGML_BUNDLE_GGML", "").strip().lower() in ("1", "on", "true", "yes")


def dynamic_metadata(field, settings=None, project=None):
    if field != "dependencies":
        raise RuntimeError("mimo_build_meta only provides 'dependencies'")
    settings = dict(settings or {})
    unknown = settings.keys() - {"common", "source-build"}
    if unknown:
        raise RuntimeError(f"mimo_build_meta: unknown settings {sorted(unknown)}")
    deps = list(settings.get("common", []))
    if not bundling_ggml():
        deps += list(settings.get("source-build", []))
    return deps


def get_requires_for_dynamic_metadata(settings=None):
    return []
