"""First-run model discovery (mimo_ggml.models) with no network: a fake
Hugging Face cache, HF_HUB_OFFLINE=1. Both repos are looked up before
anything would be downloaded, and one message names everything missing with
the `hf download` commands that fetch it."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from mimo_ggml import models
from mimo_ggml.errors import ModelNotFoundError


def cache_repo(home, repo: str, files: dict) -> None:
    """Lay out ``files`` ({name: source path}) as a cached snapshot of ``repo``."""
    folder = home / "hub" / ("models--" + repo.replace("/", "--"))
    commit = "1" * 40
    snap = folder / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, src in files.items():
        shutil.copy(src, snap / name)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(home / "hub"))
    return home


def test_default_model_from_the_cache(hf_home, tiny_asr):
    cache_repo(hf_home, models.ASR_REPO, {models.ASR_REPO_FILE: tiny_asr["f32_fused"]})
    cache_repo(hf_home, models.TOKENIZER_REPO, {models.TOKENIZER_REPO_FILE: tiny_asr["tokenizer"]})
    lm, tok = models.resolve_asr_files()
    assert lm.name == models.ASR_REPO_FILE and "models--cstr--mimo-asr-GGUF" in str(lm)
    assert tok.name == models.TOKENIZER_REPO_FILE and "models--cstr--mimo-tokenizer-GGUF" in str(tok)
    # an explicit local tokenizer beside a cached model
    lm2, tok2 = models.resolve_asr_files(models.ASR_REPO, tiny_asr["tokenizer"])
    assert lm2 == lm and tok2 == tiny_asr["tokenizer"]


def test_one_message_lists_everything_missing(hf_home, tiny_asr):
    with pytest.raises(ModelNotFoundError) as info:
        models.resolve_asr_files()
    msg = str(info.value)
    assert f"hf download {models.ASR_REPO} {models.ASR_REPO_FILE}" in msg
    assert f"hf download {models.TOKENIZER_REPO} {models.TOKENIZER_REPO_FILE}" in msg
    assert "huggingface-cli" not in msg and "HF_HUB_OFFLINE" in msg
    # the model cached, the tokenizer not: only the tokenizer is named
    cache_repo(hf_home, models.ASR_REPO, {models.ASR_REPO_FILE: tiny_asr["f32_fused"]})
    with pytest.raises(ModelNotFoundError) as info:
        models.resolve_asr_files()
    assert models.TOKENIZER_REPO in str(info.value) and f"{models.ASR_REPO} " not in str(info.value)
    with pytest.raises(ModelNotFoundError, match=r"someone/other-GGUF and cstr/mimo-tokenizer-GGUF are not"):
        models.resolve_asr_files("someone/other-GGUF", download=False)


def test_tokenizer_in_the_model_repo_is_used(hf_home, tiny_asr):
    """A repo that holds both files (CrispASR's layout) needs no second repo."""
    cache_repo(hf_home, "someone/mimo-both", {"mimo-asr-f32.gguf": tiny_asr["f32_fused"],
                                             "mimo-tokenizer.gguf": tiny_asr["tokenizer"]})
    lm, tok = models.resolve_asr_files("someone/mimo-both")
    assert lm.parent == tok.parent and tok.name == "mimo-tokenizer.gguf"


def test_local_paths_need_no_hub(tiny_asr):
    lm, tok = models.resolve_asr_files(tiny_asr["models"])
    assert lm.parent == tiny_asr["models"] and tok == tiny_asr["tokenizer"]


def test_cli_first_run_offline_names_both_downloads(tmp_path, tiny_asr):
    import numpy as np
    import soundfile as sf

    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(8000, np.float32), 16000)
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "mimo_ggml", "transcribe", str(wav)], capture_output=True, text=True,
                         timeout=120, env=env, cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert f"hf download {models.ASR_REPO}" in line and f"hf download {models.TOKENIZER_REPO}" in line
