"""The exceptions mimo-ggml raises.

Every error the package raises on purpose derives from :class:`MimoError`.
Where Python already has the right built-in (a missing file, a bad argument)
the error also derives from it, so ``except FileNotFoundError`` and
``except ValueError`` keep working.  The native core raises these same classes
(the bindings look them up here by name), so Python and C++ share one list.
"""

from __future__ import annotations

__all__ = [
    "MimoError",
    "ModelLoadError",
    "ModelNotFoundError",
    "UnsupportedModelError",
    "BackendError",
    "AudioError",
    "InvalidArgumentError",
    "GenerationCancelled",
]


class MimoError(Exception):
    """Base class of every error raised by mimo-ggml."""


class ModelLoadError(MimoError):
    """A model file exists but cannot be used: not GGUF, truncated, a tensor
    missing or of the wrong shape, a metadata key missing or of the wrong type."""


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """The model (or its companion tokenizer file) is not where it was asked for."""


class UnsupportedModelError(ModelLoadError):
    """The file is a valid GGUF of an architecture or version this build does not run."""


class BackendError(MimoError):
    """A compute device could not be found, initialised or used."""


class AudioError(MimoError, ValueError):
    """Audio input that cannot be decoded or is not usable (empty, non-finite, no rate)."""


class InvalidArgumentError(MimoError, ValueError):
    """An argument has a value outside what the call accepts."""


class GenerationCancelled(MimoError):
    """A long native call was stopped because a callback asked it to."""
