"""Tiny random Qwen2 checkpoints in the Hugging Face layout (built with
transformers on CPU torch) and their conversion to our GGUF layout."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from mimo_ggml.convert.asr import convert_asr

TINY_QWEN2 = dict(
    vocab_size=320,
    hidden_size=256,  # head_dim 32: the smallest that a q8_0 KV cache allows
    intermediate_size=512,
    num_hidden_layers=3,
    num_attention_heads=8,
    num_key_value_heads=2,  # GQA 4:1 as in the real model
    max_position_embeddings=512,
    rope_theta=640000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    use_sliding_window=False,
)


def make_tiny_qwen2(folder: Path, seed: int = 0) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(**TINY_QWEN2, attn_implementation="eager")).eval()
    # larger-than-default weights so logits spread and greedy ties are rare
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.08)
            elif "bias" in name:
                p.normal_(0.0, 0.05)
            else:
                p.uniform_(0.8, 1.2)
    model.save_pretrained(folder, safe_serialization=True)
    return model


def convert(folder: Path, out: Path, *, dtype: str = "f32", fuse_qkv: bool = True) -> Path:
    return convert_asr(folder, out, dtype=dtype, fuse_qkv=fuse_qkv)


def generate(lm, prompt, max_new_tokens: int, *, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
             seed: int = 0, stop=(), banned=()) -> list[int]:
    """Evaluate ``prompt`` on a LanguageModel, then sample up to
    ``max_new_tokens`` ids through the native decode loop (a stop id, when
    one ends the run, is included)."""
    gen = lm._native.generator(list(prompt), max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                               seed=seed, stop=list(stop), banned=list(banned))
    out = []
    while (step := gen.next()) is not None:
        out.append(step[0])
    return out
