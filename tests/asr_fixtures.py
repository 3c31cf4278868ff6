"""Tiny random-weight MiMo-V2.5-ASR checkpoints in the official HF layout.

``make_tiny_asr_checkpoint`` writes ``config.json`` (top-level Qwen2 keys
plus the MiMo audio keys, with the per-channel lists as dash-joined strings
as the official config spells them), ``model.safetensors`` (float32, numpy
API) with the real module tree scaled down — Qwen2 LM (``model.*``,
``lm_head``), speech embeddings, input local transformer, group downcast and
the TTS-only parts (``hidden_states_downcast``, ``local_transformer.*``,
``local_transformer_lm_heads.*``) — and ``tokenizer.json``: a small
byte-level BPE in Hugging Face ``tokenizers`` format (256 GPT-2 byte tokens,
merges learned from a fixed English text, then the 30 MiMo special tokens of
spec asr.md §8.4 as added tokens; ids above them up to ``vocab_size`` are
left free, like the real vocabulary's padding rows).

``tiny_asr_files(root)`` builds everything the end-to-end tests need in one
go (see its docstring); conftest.py registers it as a session fixture.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from text_vocab import MIMO_SPECIAL_TOKENS

SPEECH_VOCAB = [1025, 1025, 129, 129, 129, 129, 129, 129]
EMPTY_IDS = [1024, 1024, 128, 128, 128, 128, 128, 128]

TINY_ASR = dict(
    vocab_size=512,
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=3,
    num_attention_heads=8,
    num_key_value_heads=2,  # head_dim 32, GQA 4:1 as in the real model
    rope_theta=640000.0,
    rms_norm_eps=1e-6,
    max_position_embeddings=8192,
)
TINY_AUDIO = dict(
    input_local_layers=2,
    input_local_dim=64,
    input_local_attn_heads=4,
    input_local_head_dim=16,  # the real head size
    input_local_intermediate_size=128,
    local_layers=1,  # TTS side (never run for ASR)
)

# Text the tiny BPE learns its merges from: the prompt strings of spec §8.2
# and some ordinary English, so common English byte pairs merge.
_CORPUS = """\
<|im_start|>user
Please transcribe this audio file
<|im_end|>
<|im_start|>assistant
<think>

</think>
<english> <chinese>
And so, my fellow Americans, ask not what your country can do for you. Ask what you can do for your country.
The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore.
This is a small test of the speech recognition system, and it should transcribe the audio into text.
Please speak clearly into the microphone; the model listens to every word that you say.
We are testing the tokenizer with a few sentences of English text, then the transcription of the file.
There is nothing in the world that is more important than the things that we do for each other.
It was the best of times, it was the worst of times, it was the age of wisdom.
I think that the weather will be better tomorrow, and then we can go to the park with the children.
"""


# ---------------------------------------------------------------------------
# tokenizer.json
# ---------------------------------------------------------------------------


def _byte_chars() -> list[str]:
    """GPT-2 byte -> printable character, indexed by byte value."""
    keep = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    out, shift = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + shift))
            shift += 1
    return out


def _pre_tokenize(text: str) -> list[str]:
    """Qwen2 regex split + byte-level mapping, via the tokenizers library."""
    from tokenizers import Regex, pre_tokenizers

    from mimo_ggml.text_tokenizer import QWEN2_SPLIT_PATTERN

    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False),
    ])
    return [piece for piece, _ in pre.pre_tokenize_str(text)]


def learn_bpe(text: str, n_merges: int) -> tuple[list[str], list[tuple[str, str]]]:
    """(base tokens, merges): the 256 byte tokens in byte order followed by
    every merged token, merges in rank order. Deterministic: the most
    frequent pair wins, ties to the lexicographically smallest pair."""
    chars = _byte_chars()
    tokens = list(chars)
    known = set(tokens)
    # special-token strings are split out before BPE, so they teach nothing
    for s in MIMO_SPECIAL_TOKENS:
        text = text.replace(s, " ")
    words = Counter(tuple(piece) for piece in _pre_tokenize(text))
    merges: list[tuple[str, str]] = []
    while len(merges) < n_merges:
        pairs: Counter = Counter()
        for w, n in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        joined = best[0] + best[1]
        if joined not in known:
            known.add(joined)
            tokens.append(joined)
        new_words: Counter = Counter()
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] += n
        words = new_words
    return tokens, merges


def tokenizer_json(vocab_size: int, n_merges: int = 200) -> dict:
    """A Qwen2-style tokenizer.json whose specials start right after the BPE tokens."""
    from mimo_ggml.text_tokenizer import QWEN2_SPLIT_PATTERN

    base, merges = learn_bpe(_CORPUS, n_merges)
    if len(base) + len(MIMO_SPECIAL_TOKENS) > vocab_size:
        raise ValueError(f"{len(base)} BPE + {len(MIMO_SPECIAL_TOKENS)} special tokens exceed vocab_size {vocab_size}")
    first = len(base)
    added = [
        {"id": first + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, s in enumerate(MIMO_SPECIAL_TOKENS)
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT_PATTERN}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(base)},
            "merges": [[a, b] for a, b in merges],
        },
    }


# ---------------------------------------------------------------------------
# config.json + model.safetensors
# ---------------------------------------------------------------------------


def tiny_asr_config(lm: dict | None = None, audio: dict | None = None, *, full_attention: bool = True,
                    first_special: int | None = None) -> dict:
    lm = {**TINY_ASR, **(lm or {})}
    audio = {**TINY_AUDIO, **(audio or {})}
    cfg = {
        "architectures": ["MiMoAudioForCausalLM"],
        "model_type": "qwen2",
        "hidden_act": "silu",
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": lm["num_hidden_layers"],
        "tie_word_embeddings": False,
        "rope_scaling": None,
        "torch_dtype": "float32",
        **lm,
        # MiMo audio keys (top level; the converter also reads an audio_config dict)
        "tokenizer_version": "v1",
        "audio_channels": 8,
        "group_size": 4,
        "speech_vocab_size": "-".join(map(str, SPEECH_VOCAB)),
        "speech_zeroemb_idx": "-".join(map(str, EMPTY_IDS)),
        "delay_pattern": "0-1-2-3-4-5-6-7",
        "input_local_layers": audio["input_local_layers"],
        "input_local_dim": audio["input_local_dim"],
        "input_local_attn_heads": audio["input_local_attn_heads"],
        "input_local_head_dim": audio["input_local_head_dim"],
        "input_local_intermediate_size": audio["input_local_intermediate_size"],
        "input_local_hidden_dropout": 0.1,
        "input_full_attention": full_attention,
        "local_dim": audio["input_local_dim"],
        "local_layers": audio["local_layers"],
        "local_attn_heads": audio["input_local_attn_heads"],
        "local_ffn_dim": audio["input_local_intermediate_size"],
        "local_attn_dropout": 0.1,
    }
    if first_special is not None:
        cfg["bos_token_id"] = first_special  # <|endoftext|>
        cfg["eos_token_id"] = first_special + 2  # <|im_end|>
    return cfg


def _block(t: dict, rng, prefix: str, d: int, n_head: int, n_kv: int, hd: int, ff: int, *, qk_gain: float) -> None:
    def mat(rows, cols, gain=1.0):
        return (rng.standard_normal((rows, cols)) * gain / np.sqrt(cols)).astype(np.float32)

    def vec(n, scale=0.05, base=0.0):
        return (base + scale * rng.standard_normal(n)).astype(np.float32)

    t[f"{prefix}input_layernorm.weight"] = rng.uniform(0.8, 1.2, d).astype(np.float32)
    t[f"{prefix}self_attn.q_proj.weight"] = mat(n_head * hd, d, qk_gain)
    t[f"{prefix}self_attn.q_proj.bias"] = vec(n_head * hd)
    t[f"{prefix}self_attn.k_proj.weight"] = mat(n_kv * hd, d, qk_gain)
    t[f"{prefix}self_attn.k_proj.bias"] = vec(n_kv * hd)
    t[f"{prefix}self_attn.v_proj.weight"] = mat(n_kv * hd, d)
    t[f"{prefix}self_attn.v_proj.bias"] = vec(n_kv * hd)
    t[f"{prefix}self_attn.o_proj.weight"] = mat(d, n_head * hd, 0.7)
    t[f"{prefix}post_attention_layernorm.weight"] = rng.uniform(0.8, 1.2, d).astype(np.float32)
    t[f"{prefix}mlp.gate_proj.weight"] = mat(ff, d)
    t[f"{prefix}mlp.up_proj.weight"] = mat(ff, d)
    t[f"{prefix}mlp.down_proj.weight"] = mat(d, ff, 0.7)


def tiny_asr_tensors(cfg: dict, seed: int = 0, *, audio: bool = True, tts: bool = True,
                     quiet_ids: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """Random float32 weights under the official HF names.

    quiet_ids: lm_head rows set to zero (the vocabulary's padding rows, as
    in an untrained model) so that they never win the argmax by chance.
    """
    rng = np.random.default_rng(seed)
    V, H, F = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = H // nh
    t: dict[str, np.ndarray] = {}
    t["model.embed_tokens.weight"] = (rng.standard_normal((V, H)) * 0.5).astype(np.float32)
    for i in range(cfg["num_hidden_layers"]):
        _block(t, rng, f"model.layers.{i}.", H, nh, nkv, hd, F, qk_gain=1.5)
    t["model.norm.weight"] = rng.uniform(0.8, 1.2, H).astype(np.float32)
    # logits with a spread of ~8 units: top-2 margins below 1e-2 are rare
    # (~0.3 % of steps), so greedy ids can be compared exactly
    head = (rng.standard_normal((V, H)) * 8.0 / np.sqrt(H)).astype(np.float32)
    head[list(quiet_ids)] = 0.0
    t["lm_head.weight"] = head
    if not audio:
        return t

    d = cfg["input_local_dim"]
    ah, ahd, aff = cfg["input_local_attn_heads"], cfg["input_local_head_dim"], cfg["input_local_intermediate_size"]
    vocab = [int(v) for v in cfg["speech_vocab_size"].split("-")]
    gs = cfg["group_size"]
    for c, n in enumerate(vocab):
        # every row random, the empty-id row included: it must be masked, not looked up
        t[f"speech_embeddings.{c}.weight"] = (rng.standard_normal((n, d)) * 0.4).astype(np.float32)
    for i in range(cfg["input_local_layers"]):
        _block(t, rng, f"input_local_transformer.layers.{i}.", d, ah, ah, ahd, aff, qk_gain=1.3)
    t["input_local_transformer.norm.weight"] = rng.uniform(0.8, 1.2, d).astype(np.float32)
    t["speech_group_downcast.weight"] = (rng.standard_normal((H, gs * d)) * 0.5 / np.sqrt(gs * d)).astype(np.float32)
    if tts:  # present in the real checkpoint, never run for ASR
        ld = cfg["local_dim"]
        t["hidden_states_downcast.weight"] = (rng.standard_normal((ld, H)) / np.sqrt(H)).astype(np.float32)
        for i in range(cfg["local_layers"]):
            _block(t, rng, f"local_transformer.layers.{i}.", ld, cfg["local_attn_heads"], cfg["local_attn_heads"],
                   ld // cfg["local_attn_heads"], cfg["local_ffn_dim"], qk_gain=1.0)
        t["local_transformer.norm.weight"] = rng.uniform(0.8, 1.2, ld).astype(np.float32)
        for c, n in enumerate(vocab):
            t[f"local_transformer_lm_heads.{c}.weight"] = (rng.standard_normal((n, ld)) / np.sqrt(ld)).astype(np.float32)
    return t


def make_tiny_asr_checkpoint(
    folder,
    *,
    seed: int = 0,
    lm: dict | None = None,
    audio: dict | None = None,
    full_attention: bool = True,
    with_audio: bool = True,
    tts: bool = True,
    n_merges: int = 200,
    drop: tuple[str, ...] = (),
) -> Path:
    """Write a tiny MiMo-V2.5-ASR checkpoint (config.json, model.safetensors,
    tokenizer.json) into ``folder`` and return its path.

    lm / audio override entries of TINY_ASR / TINY_AUDIO; full_attention is
    the config's ``input_full_attention``; with_audio=False gives a plain
    Qwen2 checkpoint (an LM-only conversion); ``drop`` removes tensors by
    exact name (to test missing-tensor errors).
    """
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = int({**TINY_ASR, **(lm or {})}["vocab_size"])
    tj = tokenizer_json(vocab_size, n_merges)
    first_special = tj["added_tokens"][0]["id"]
    cfg = tiny_asr_config(lm, audio, full_attention=full_attention, first_special=first_special)
    # the padding rows (no token behind them) get silent head rows
    quiet = tuple(range(first_special + len(MIMO_SPECIAL_TOKENS), vocab_size))
    tensors = tiny_asr_tensors(cfg, seed=seed, audio=with_audio, tts=tts, quiet_ids=quiet)
    for name in drop:
        del tensors[name]
    (folder / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    (folder / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False, indent=1), encoding="utf-8")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


# ---------------------------------------------------------------------------
# everything the end-to-end tests need
# ---------------------------------------------------------------------------

TOKENIZER_DIMS = dict(d_model=128, layers=4, heads=2, ffn=256)  # head_dim 64 as in the real tokenizer; skip layer 3


def tiny_asr_files(tmp_root) -> dict:
    """Build the tiny ASR checkpoint, a tiny audio-tokenizer checkpoint and
    their GGUF conversions. Returns a dict of paths:

    - ``ckpt``: the HF ASR checkpoint folder (config.json, model.safetensors, tokenizer.json)
    - ``tokenizer_ckpt``: the HF MiMo-Audio-Tokenizer checkpoint folder
    - ``models``: the folder holding the three GGUF files (so the tokenizer
      is discovered next to either LM file)
    - ``f32_fused`` / ``f32_split``: ``mimo-asr-f32.gguf`` (fused QKV) and
      ``mimo-asr-f32-split.gguf`` (separate Q/K/V), F32 matrices
    - ``tokenizer``: ``mimo-tokenizer.gguf``, F32 weights and codebooks
    """
    from mimo_ggml.convert.asr import convert_asr
    from mimo_ggml.convert.audio_tokenizer import convert_audio_tokenizer
    from tokenizer_fixtures import make_tiny_tokenizer_checkpoint

    root = Path(tmp_root)
    ckpt = make_tiny_asr_checkpoint(root / "asr_hf", seed=0)
    tok_ckpt = make_tiny_tokenizer_checkpoint(root / "tokenizer_hf", seed=3, **TOKENIZER_DIMS)
    models = root / "models"
    models.mkdir(parents=True, exist_ok=True)
    return {
        "ckpt": ckpt,
        "tokenizer_ckpt": tok_ckpt,
        "models": models,
        "f32_fused": convert_asr(ckpt, models / "mimo-asr-f32.gguf", dtype="f32", fuse_qkv=True),
        "f32_split": convert_asr(ckpt, models / "mimo-asr-f32-split.gguf", dtype="f32", fuse_qkv=False),
        "tokenizer": convert_audio_tokenizer(tok_ckpt, models / "mimo-tokenizer.gguf", dtype="f32",
                                             codebook_dtype="f32"),
    }
