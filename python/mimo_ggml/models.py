"""Finding model files: a GGUF path, a folder, or a Hugging Face repo id
resolved through the local Hugging Face cache (spec gguf-compat.md §3).

The ASR language model and the audio tokenizer are two files. Given the LM,
the tokenizer is looked up next to it by CrispASR's names, so a folder laid
out as CrispASR's downloads works unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from .errors import ModelNotFoundError, UnsupportedModelError

ASR_ARCH = "mimo_asr"
TOKENIZER_ARCH = "mimo_tokenizer"
ASR_REPO = "cstr/mimo-asr-GGUF"
TOKENIZER_REPO = "cstr/mimo-tokenizer-GGUF"
# the default model (Q4_K) and the files fetched from the two published repos
DEFAULT_MODEL = ASR_REPO
ASR_REPO_FILE = "mimo-asr-q4_k.gguf"
TOKENIZER_REPO_FILE = "mimo-tokenizer-q4_k.gguf"
# preference order inside a folder
LM_NAMES = ("mimo-asr-q4_k.gguf", "mimo-asr-f16.gguf", "mimo-asr.gguf")
TOKENIZER_NAMES = ("mimo-tokenizer-q4_k.gguf", "mimo-tokenizer.gguf", "mimo-audio-tokenizer.gguf")


def _architecture(path: Path) -> str:
    from . import _core

    return _core.gguf_architecture(str(path))


def _looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "/", "~")) and not text.endswith(".gguf")


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` forbids any network access."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise ModelNotFoundError(
            "resolving Hugging Face repo ids needs huggingface_hub (pip install huggingface_hub); "
            "or pass the path of a downloaded file"
        ) from None
    return huggingface_hub


def _patterns(repo_id: str, kind: str) -> list[str]:
    """What to fetch from a repo: the Q4_K file of the published repos, any GGUF otherwise."""
    if repo_id == ASR_REPO and kind == "model":
        return [ASR_REPO_FILE]
    if repo_id == TOKENIZER_REPO and kind == "tokenizer":
        return [TOKENIZER_REPO_FILE]
    return ["*.gguf"]


def download_hint(repo_id: str, patterns: list[str]) -> str:
    """The command that fetches ``patterns`` of ``repo_id`` into the cache."""
    if len(patterns) == 1 and not any(ch in patterns[0] for ch in "*?["):
        return f"hf download {repo_id} {patterns[0]}"
    return f"hf download {repo_id} " + " ".join(f"--include '{p}'" for p in patterns)


def _snapshot_root(file: str, filename: str) -> Path:
    """The snapshot folder of a downloaded file (filename may hold folders)."""
    return Path(file).parents[len(Path(filename).parts) - 1]


def _cached_snapshot(repo_id: str, patterns: list[str]) -> Path | None:
    """The cached snapshot folder of repo_id holding ``patterns``, or None (no network)."""
    hub = _hub()
    try:
        if len(patterns) == 1 and not any(ch in patterns[0] for ch in "*?["):
            return _snapshot_root(hub.hf_hub_download(repo_id, patterns[0], local_files_only=True), patterns[0])
        folder = Path(hub.snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except Exception:
        return None
    return folder if any(any(folder.glob(p)) for p in patterns) else None


def _download_snapshot(repo_id: str, patterns: list[str]) -> Path:
    """Download ``patterns`` of repo_id into the cache (huggingface_hub shows a progress bar)."""
    hub = _hub()
    try:
        if len(patterns) == 1 and not any(ch in patterns[0] for ch in "*?["):
            return _snapshot_root(hub.hf_hub_download(repo_id, patterns[0]), patterns[0])
        return Path(hub.snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:
        raise ModelNotFoundError(
            f"could not download {repo_id}: {exc}; fetch it with `{download_hint(repo_id, patterns)}` "
            "or pass the path of the file"
        ) from None


def _not_cached_error(missing: list[tuple[str, list[str]]], download: bool) -> ModelNotFoundError:
    why = "disabled (HF_HUB_OFFLINE is set)" if hub_offline() else "not allowed (download=False)"
    what = " and ".join(r for r, _ in missing)
    hints = " and ".join(f"`{download_hint(r, p)}`" for r, p in missing)
    return ModelNotFoundError(
        f"{what} {'is' if len(missing) == 1 else 'are'} not in the local Hugging Face cache and downloading is "
        f"{why}; download first with {hints}, or pass the paths of the .gguf files"
    )


def _from_hub(repo_id: str, patterns: list[str], download: bool) -> Path:
    """A snapshot folder of repo_id from the local cache (downloaded first if
    allowed and online)."""
    found = _cached_snapshot(repo_id, patterns)
    if found is not None:
        return found
    if not download or hub_offline():
        raise _not_cached_error([(repo_id, patterns)], download)
    return _download_snapshot(repo_id, patterns)


def hub_file(repo_id: str, filename: str, *, download: bool = True, required: bool = True) -> Path | None:
    """One file of a Hub repo: from the cache, else downloaded when allowed
    and online. Missing and not fetchable: ModelNotFoundError, or None when
    not ``required``."""
    try:
        return _from_hub(repo_id, [filename], download) / filename
    except ModelNotFoundError:
        if required:
            raise
        return None


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
        return find_asr_model(_from_hub(text, _patterns(text, "model"), download), download=download)
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
            found = _pick(_from_hub(text, _patterns(text, "tokenizer"), download), TOKENIZER_NAMES,
                          "mimo-tokenizer*.gguf")
        else:
            found = None
        if found is None:
            raise ModelNotFoundError(f"audio tokenizer not found: {text}")
    else:
        found = _pick(lm_path.parent, TOKENIZER_NAMES, "mimo-tokenizer*.gguf")
        if found is None and lm_from_hub:
            # an LM from the Hub cache: its tokenizer lives in its own repo
            found = _pick(_from_hub(TOKENIZER_REPO, _patterns(TOKENIZER_REPO, "tokenizer"), download),
                          TOKENIZER_NAMES, "mimo-tokenizer*.gguf")
        if found is None:
            raise ModelNotFoundError(
                f"no audio tokenizer next to {lm_path} (looked for {', '.join(TOKENIZER_NAMES)}); "
                f"download {TOKENIZER_REPO_FILE} from {TOKENIZER_REPO} into {lm_path.parent} "
                f"(`hf download {TOKENIZER_REPO} {TOKENIZER_REPO_FILE} --local-dir {lm_path.parent}`), "
                "or pass tokenizer=PATH"
            )
    arch = _architecture(found)
    if arch == ASR_ARCH:
        raise UnsupportedModelError(f"{found} is the MiMo-ASR language model, not the audio tokenizer (swapped paths?)")
    if arch != TOKENIZER_ARCH:
        raise UnsupportedModelError(f"{found} has architecture {arch!r}; an audio tokenizer ({TOKENIZER_ARCH!r}) is needed")
    return found


def resolve_asr_files(
    model: str | os.PathLike = DEFAULT_MODEL,
    tokenizer: Optional[str | os.PathLike] = None,
    *,
    download: bool = True,
) -> tuple[Path, Path]:
    """(ASR LM GGUF, audio-tokenizer GGUF) for a model and an optional tokenizer.

    Every Hugging Face repo involved is looked up in the local cache before
    anything is downloaded, so one message names everything missing (with
    the ``hf download`` commands that fetch it); when downloading is allowed
    the missing files are then fetched, each with a progress bar.
    """
    model_text = os.fspath(model)
    model_hub = is_hub_reference(model_text)
    tok_text = None if tokenizer is None else os.fspath(tokenizer)
    tok_hub = tok_text is not None and is_hub_reference(tok_text)
    # the repos to take from the Hub, and which of them the cache lacks
    wanted: list[tuple[str, list[str]]] = []
    if model_hub:
        wanted.append((model_text, _patterns(model_text, "model")))
    if tok_hub:
        wanted.append((tok_text, _patterns(tok_text, "tokenizer")))
    elif tok_text is None and model_hub:
        # the tokenizer may sit in the model's own snapshot (CrispASR's layout); else its own repo
        snap = _cached_snapshot(model_text, _patterns(model_text, "model"))
        if snap is None or _pick(snap, TOKENIZER_NAMES, "mimo-tokenizer*.gguf") is None:
            wanted.append((TOKENIZER_REPO, _patterns(TOKENIZER_REPO, "tokenizer")))
    folders: dict[str, Path] = {}
    missing = []
    for repo, patterns in wanted:
        found = _cached_snapshot(repo, patterns)
        if found is None:
            missing.append((repo, patterns))
        else:
            folders[repo] = found
    if missing:
        if not download or hub_offline():
            raise _not_cached_error(missing, download)
        for repo, patterns in missing:
            folders[repo] = _download_snapshot(repo, patterns)
    lm = find_asr_model(folders[model_text] if model_hub else model_text, download=download)
    if tok_text is not None:
        tok = find_audio_tokenizer(lm, folders[tok_text] if tok_hub else tok_text, download=download)
    elif model_hub and TOKENIZER_REPO in folders and _pick(lm.parent, TOKENIZER_NAMES, "mimo-tokenizer*.gguf") is None:
        tok = find_audio_tokenizer(lm, folders[TOKENIZER_REPO], download=download)
    else:
        tok = find_audio_tokenizer(lm, None, download=download)
    return lm, tok
