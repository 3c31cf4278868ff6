"""mimo-ggml: Xiaomi MiMo models on ggml, from Python.

Pure-Python parts (audio input, text tokenizer, writers, converters) import
without loading the native core; the names that need it are resolved on first
use, so ``import mimo_ggml.audio`` stays cheap.
"""

from __future__ import annotations

import logging
from importlib import import_module

from .errors import (
    AudioError,
    BackendError,
    GenerationCancelled,
    InvalidArgumentError,
    MimoError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedModelError,
)

__version__ = "0.1.0"

# quiet by default: native and Python logs reach the application only if it
# configures logging
logging.getLogger("mimo_ggml").addHandler(logging.NullHandler())

# name -> module that defines it; loaded on first attribute access
_LAZY = {
    "system_info": "mimo_ggml.system",
    "LanguageModel": "mimo_ggml.lm",
    "AsrModel": "mimo_ggml.session",
    "Session": "mimo_ggml.session",
    "AsrAdapter": "mimo_ggml.adapter",
    "Transcription": "mimo_ggml.results",
    "Segment": "mimo_ggml.results",
    "AudioTokenizer": "mimo_ggml.audio_tokenizer",
    "TextModel": "mimo_ggml.text",
    "TextSession": "mimo_ggml.text",
    "DraftModel": "mimo_ggml.text",
    "GenerationResult": "mimo_ggml.text",
}

__all__ = [
    "AudioError",
    "BackendError",
    "GenerationCancelled",
    "InvalidArgumentError",
    "MimoError",
    "ModelLoadError",
    "ModelNotFoundError",
    "UnsupportedModelError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mimo_ggml' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
