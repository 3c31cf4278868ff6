"""Finding model files: a GGUF path, a folder, or a Hugging Face repo id
resolved through the local Hugging Face cache (spec gguf-compat.md §3).

The ASR language model and the audio tokenizer are two files. Given the LM,
the tokenizer is looked up next to it by CrispASR's names, so a folder laid
out as CrispASR's downloads works unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelNotFoundError, UnsupportedModelError

ASR_ARCH = "mimo_asr"
TOKENIZER_ARCH = "mimo_tokenizer"
ASR_REPO = "cstr/mimo-asr-GGUF"
TOKENIZER_REPO = "cstr/mimo-tokenizer-GGUF"
# preference order inside a folder
LM_NAMES = ("mimo-asr-q4_k.gguf", "mimo-asr-f16.gguf", "mimo-asr.gguf")
TOKENIZER_NAMES = ("mimo-tokenizer-q4_k.gguf", "mimo-tokenizer.gguf", "mimo-audio-tokenizer.gguf")


def _architecture(path: Path) -> str:
    from . import _core

    return _core.gguf_architecture(str(path))


def _looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "/", "~")) and not text.endswith(".gguf")


def _from_hub(repo_id: str, patterns: list[str], download: bool) -> Path:
    """A snapshot folder of repo_id from the local cache (downloaded first if
    allowed and online)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelNotFoundError(
            f"{repo_id!r} is not a local path, and resolving Hugging Face repo ids needs huggingface_hub "
            "(pip install 'mimo-ggml[hub]'); or pass the path of a downloaded .gguf file"
        ) from None
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except Exception:
        if not download or offline:
            raise ModelNotFoundError(
                f"{repo_id} is not in the local Hugging Face cache and downloading is "
                f"{'disabled (HF_HUB_OFFLINE)' if offline else 'not allowed (download=False)'}; "
                f"download it first, e.g. `huggingface-cli download {repo_id} --include '{patterns[0]}'`, "
                "or pass the path of the .gguf file"
            ) from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:
        raise ModelNotFoundError(f"could not download {repo_id}: {exc}") from None


def _pick(folder: Path, names: tuple[str, ...], glob: str) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob(glob))
    return found[0] if found else None


def find_asr_model(model: str | os.PathLike, *, download: bool = True) -> Path:
    """The ``mimo_asr`` LM GGUF for a path, folder or repo id."""
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.is_file():
        found = path
    elif path.is_dir():
        found = _pick(path, LM_NAMES, "mimo-asr*.gguf")
        if found is None:
            found = next((p for p in sorted(path.glob("*.gguf")) if _architecture(p) == ASR_ARCH), None)
        if found is None:
            raise ModelNotFoundError(
                f"no MiMo-ASR GGUF in {path} (looked for {', '.join(LM_NAMES)} and any mimo_asr *.gguf); "
                f"download one from {ASR_REPO} or convert with `mimo-ggml convert asr`"
            )
    elif _looks_like_repo_id(text):
        # the published repo holds F16 and Q4_K files; fetch only the Q4_K one
        patterns = ["mimo-asr-q4_k.gguf"] if text == ASR_REPO else ["*.gguf"]
        return find_asr_model(_from_hub(text, patterns, download), download=download)
    else:
        raise ModelNotFoundError(f"model not found: {text} (expected a .gguf file, a folder or a Hugging Face repo id)")
    arch = _architecture(found)
    if arch == TOKENIZER_ARCH:
        raise UnsupportedModelError(
            f"{found} is the audio-tokenizer file; pass the MiMo-ASR language model as the model "
            "and this file as tokenizer="
        )
    if arch != ASR_ARCH:
        raise UnsupportedModelError(f"{found} has architecture {arch!r}; a MiMo-V2.5-ASR GGUF ({ASR_ARCH!r}) is needed")
    return found


def is_hub_reference(model: str | os.PathLike) -> bool:
    """True when ``model`` names a Hugging Face repo rather than a local path."""
    text = os.fspath(model)
    return not Path(text).expanduser().exists() and _looks_like_repo_id(text)


def find_audio_tokenizer(
    lm_path: Path, tokenizer: str | os.PathLike | None = None, *, download: bool = True, lm_from_hub: bool = False
) -> Path:
    """The ``mimo_tokenizer`` GGUF: the explicit path, else next to the LM
    file by CrispASR's names, else (for an LM taken from the Hub) from the
    tokenizer's own repo in the Hub cache."""
    if tokenizer is not None:
        text = os.fspath(tokenizer)
        path = Path(text).expanduser()
        if path.is_dir():
            found = _pick(path, TOKENIZER_NAMES, "mimo-tokenizer*.gguf")
        elif path.is_file():
            found = path
        elif _looks_like_repo_id(text):
            found = _pick(_from_hub(text, ["*.gguf"], download), TOKENIZER_NAMES, "mimo-tokenizer*.gguf")
        else:
            found = None
        if found is None:
            raise ModelNotFoundError(f"audio tokenizer not found: {text}")
    else:
        found = _pick(lm_path.parent, TOKENIZER_NAMES, "mimo-tokenizer*.gguf")
        if found is None and lm_from_hub:
            # an LM from the Hub cache: its tokenizer lives in its own repo
            found = _pick(_from_hub(TOKENIZER_REPO, ["mimo-tokenizer-q4_k.gguf"], download), TOKENIZER_NAMES,
                          "mimo-tokenizer*.gguf")
        if found is None:
            raise ModelNotFoundError(
                f"no audio tokenizer next to {lm_path} (looked for {', '.join(TOKENIZER_NAMES)}); "
                f"download mimo-tokenizer-q4_k.gguf from {TOKENIZER_REPO} into {lm_path.parent}, "
                "or pass tokenizer=PATH"
            )
    arch = _architecture(found)
    if arch == ASR_ARCH:
        raise UnsupportedModelError(f"{found} is the MiMo-ASR language model, not the audio tokenizer (swapped paths?)")
    if arch != TOKENIZER_ARCH:
        raise UnsupportedModelError(f"{found} has architecture {arch!r}; an audio tokenizer ({TOKENIZER_ARCH!r}) is needed")
    return found
