"""Converters from the published Hugging Face checkpoints to GGUF, and the
GGUF quantizer.  Shared plumbing lives in :mod:`mimo_ggml.convert.common`."""
