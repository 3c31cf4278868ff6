"""Tiny DFlash drafter folders written the way the official ``dflash/`` folder is (spec/dflash.md §1).

:func:`write_dflash_checkpoint` writes ``config.json`` in the published
spelling (top-level Qwen3 keys plus a nested ``dflash_config``), one BF16
safetensors file with the official tensor names (no ``model.`` prefix) and an
index, and ``mask_embedding.pt`` through ``torch.save`` (the converter reads
it without torch; the test compares the two).  Weights are random; norms are
1 + noise so they matter.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

WEIGHTS_FILE = "dflash_draft_model.safetensors"


def dflash_config(
    *, hidden, layers, heads, kv_heads, head_dim, ffn, target_layer_ids, target_hidden, block_size, window,
    mask_token_id, rotary_factor, value_scale, sinks, eps, num_target_layers, vocab=300, max_pos=4096,
) -> dict:
    """config.json of a drafter, spelled as MiMo-V2.5-Pro-FP4-DFlash's ``dflash/config.json``."""
    cfg = {
        "architectures": ["DFlashDraftModel"],
        "auto_map": {"AutoModel": "dflash.DFlashDraftModel"},
        "model_type": "qwen3",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "v_head_dim": head_dim,
        "intermediate_size": ffn,
        "partial_rotary_factor": rotary_factor,
        "rope_theta": 10000,
        "rms_norm_eps": eps,
        "sliding_window": window,
        "block_size": block_size,
        "num_target_layers": num_target_layers,
        "vocab_size": vocab,
        "max_position_embeddings": max_pos,
        "hidden_act": "silu",
        "attention_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "bfloat16",
        "dflash_config": {
            "target_layer_ids": list(target_layer_ids),
            "mask_token_id": mask_token_id,
            "block_size": block_size,
            "use_swa": window is not None,
            "swa_window_size": window,
            "attention_sink_bias": sinks,
            "attention_value_scale": value_scale,
            "backbone_rotary_base": 5000000,
            "num_anchors": 4096,
            "loss_decay_gamma": 7.0,
        },
    }
    if window is None:
        del cfg["sliding_window"], cfg["dflash_config"]["swa_window_size"]
    return cfg


def write_mask_embedding(path: Path, embedding: np.ndarray, mask_token_id: int | None, *,
                         as_dict: bool = True, dtype: torch.dtype = torch.bfloat16) -> None:
    """mask_embedding.pt via torch.save: ``{"mask_token_id", "embedding"}`` or a bare tensor."""
    t = torch.from_numpy(np.ascontiguousarray(embedding, dtype=np.float32)).to(dtype)
    obj = {"mask_token_id": mask_token_id, "embedding": t} if as_dict else t
    torch.save(obj, str(path))


def write_dflash_checkpoint(
    folder: Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 1,
    head_dim: int = 16,
    ffn: int = 96,
    target_layer_ids: tuple[int, ...] = (0, 2, 3),
    target_hidden: int = 64,
    block_size: int = 4,
    window: int | None = 16,
    mask_token_id: int = 290,
    rotary_factor: float = 0.5,
    value_scale: float = 0.612,
    sinks: bool = True,
    eps: float = 1e-6,
    seed: int = 0,
    mask_as_dict: bool = True,
    num_target_layers: int | None = None,
    std: float = 0.08,
) -> dict:
    """Write a drafter folder; return the float truth (unrounded) by HF tensor name plus ``"mask_embedding"``.

    The stored tensors are the truth rounded to BF16.  ``num_target_layers``
    defaults to ``max(target_layer_ids) + 1``.  ``target_hidden`` differing
    from ``hidden`` also writes ``target_hidden_size`` (as MiMo-V2.6-Pro does).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_feat = len(target_layer_ids) * target_hidden

    def w(*shape, s=std):
        return (rng.standard_normal(shape) * s).astype(np.float32)

    def norm(n):
        return (1.0 + rng.standard_normal(n) * 0.1).astype(np.float32)

    truth: dict[str, np.ndarray] = {
        "fc.weight": w(hidden, n_feat),
        "hidden_norm.weight": norm(hidden),
        "norm.weight": norm(hidden),
    }
    for il in range(layers):
        p = f"layers.{il}."
        truth.update({
            p + "input_layernorm.weight": norm(hidden),
            p + "post_attention_layernorm.weight": norm(hidden),
            p + "self_attn.q_proj.weight": w(heads * head_dim, hidden),
            p + "self_attn.k_proj.weight": w(kv_heads * head_dim, hidden),
            p + "self_attn.v_proj.weight": w(kv_heads * head_dim, hidden),
            p + "self_attn.o_proj.weight": w(hidden, heads * head_dim),
            p + "self_attn.q_norm.weight": norm(head_dim),
            p + "self_attn.k_norm.weight": norm(head_dim),
            p + "mlp.gate_proj.weight": w(ffn, hidden),
            p + "mlp.up_proj.weight": w(ffn, hidden),
            p + "mlp.down_proj.weight": w(hidden, ffn),
        })
        if sinks:
            truth[p + "self_attn.attention_sink_bias"] = w(heads, s=0.5)
    tensors = {k: torch.from_numpy(v).to(torch.bfloat16).contiguous() for k, v in truth.items()}
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    index = {"metadata": {"total_size": sum(t.numel() * 2 for t in tensors.values())},
             "weight_map": {k: WEIGHTS_FILE for k in tensors}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))

    truth["mask_embedding"] = (rng.standard_normal(hidden) * 0.5).astype(np.float32)
    write_mask_embedding(folder / "mask_embedding.pt", truth["mask_embedding"], mask_token_id, as_dict=mask_as_dict)

    cfg = dflash_config(
        hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, head_dim=head_dim, ffn=ffn,
        target_layer_ids=target_layer_ids, target_hidden=target_hidden, block_size=block_size, window=window,
        mask_token_id=mask_token_id, rotary_factor=rotary_factor, value_scale=value_scale, sinks=sinks, eps=eps,
        num_target_layers=num_target_layers if num_target_layers is not None else max(target_layer_ids) + 1,
    )
    if target_hidden != hidden:
        cfg["target_hidden_size"] = target_hidden
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    return truth
