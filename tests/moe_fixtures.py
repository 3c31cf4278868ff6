"""Tiny MiMo-V2 MoE checkpoints written the way their publishers write them.

Each writer makes a Hugging Face folder (hub-style ``config.json`` with the
keys of spec/moe.md §1, safetensors shards, ``model.safetensors.index.json``)
at a scaled-down V2.5 geometry that keeps the real head dims (q/k 192, v 128,
so n_rot = int(192 * 0.334) = 64) and the hybrid pattern [0,1,1,1,1,0]:

* :func:`write_bf16_checkpoint`  - (a) transformers' ``MiMoV2FlashForCausalLM``
  random init saved with ``save_pretrained`` in bf16 (router bias fp32); the
  same folder loads back into transformers as the reference model.
* :func:`write_fp8_checkpoint`   - (b) FP8 E4M3 128x128 block-scaled release:
  fused ``qkv_proj`` stored in ``ckpt_tp = num_key_value_heads`` chunks with
  per-chunk scale tiles, bf16 o_proj/norms/embeddings/sinks, fp32 router.
* :func:`write_awq_checkpoint`   - (c) compressed-tensors pack-quantized int4
  routed experts (symmetric or asymmetric, group size G), bf16 elsewhere.
* :func:`write_mxfp4_checkpoint` - (d) V2.5-Pro-FP4 style: MXFP4 experts
  (uint8 E2M1 pairs + E8M0 scale bytes), FP8 for the other quantised Linears.

Quantised payloads are produced by independent encoders here (torch's
float8_e4m3fn cast, a bit-packing loop written from the compressed-tensors
description), never by the converter's code.  BF16 and FP8 tensors are saved
with ``safetensors.torch`` because numpy has no dtype for them; everything
else could equally go through ``safetensors.numpy``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

HEAD_DIM, V_HEAD_DIM = 192, 128
# omni-tower tensors a text-backbone conversion must skip
SKIP_PREFIX_TENSORS = {
    "visual.blocks.0.attn.qkv.weight": (48, 16),
    "audio_encoder.layers.0.self_attn.q_proj.weight": (16, 16),
    "speech_embeddings.0.weight": (33, 16),
}


@dataclass(frozen=True)
class Geometry:
    hidden: int = 64
    layers: int = 6
    pattern: tuple[int, ...] = (0, 1, 1, 1, 1, 0)
    moe: tuple[int, ...] = (0, 1, 1, 1, 1, 1)
    heads: int = 4
    kv_full: int = 1
    kv_swa: int = 2
    experts: int = 8
    top_k: int = 2
    moe_ffn: int = 32
    ffn: int = 64
    vocab: int = 300
    max_pos: int = 512

    def kv(self, layer: int) -> int:
        return self.kv_swa if self.pattern[layer] else self.kv_full

    def replace(self, **kw) -> "Geometry":
        return dataclasses.replace(self, **kw)


def hub_config(
    g: Geometry,
    *,
    model_type: str = "mimo_v2_flash",
    fused_qkv: bool = False,
    quantization_config: dict | None = None,
    extra: dict | None = None,
) -> dict:
    """config.json as Xiaomi publishes it (spec/moe.md §1), scaled down."""
    cfg = {
        "architectures": ["MiMoV2FlashForCausalLM" if model_type == "mimo_v2_flash" else "MiMoV2ForCausalLM"],
        "model_type": model_type,
        "vocab_size": g.vocab,
        "hidden_size": g.hidden,
        "num_hidden_layers": g.layers,
        "intermediate_size": g.ffn,
        "moe_intermediate_size": g.moe_ffn,
        "num_attention_heads": g.heads,
        "num_key_value_heads": g.kv_full,
        "swa_num_attention_heads": g.heads,
        "swa_num_key_value_heads": g.kv_swa,
        "head_dim": HEAD_DIM,
        "swa_head_dim": HEAD_DIM,
        "v_head_dim": V_HEAD_DIM,
        "swa_v_head_dim": V_HEAD_DIM,
        "partial_rotary_factor": 0.334,
        "rope_theta": 5000000.0 if model_type == "mimo_v2_flash" else 10000000.0,
        "swa_rope_theta": 10000.0,
        "max_position_embeddings": g.max_pos,
        "sliding_window": 128,
        "sliding_window_size": 128,
        "hybrid_layer_pattern": list(g.pattern),
        "hybrid_block_size": None,
        "moe_layer_freq": list(g.moe),
        "add_swa_attention_sink_bias": True,
        "add_full_attention_sink_bias": False,
        "attention_value_scale": 0.707,
        "attention_bias": False,
        "n_routed_experts": g.experts,
        "num_experts_per_tok": g.top_k,
        "n_shared_experts": None,
        "scoring_func": "sigmoid",
        "topk_method": "noaux_tc",
        "n_group": 1,
        "topk_group": 1,
        "norm_topk_prob": True,
        "routed_scaling_factor": None,
        "hidden_act": "silu",
        "layernorm_epsilon": 1e-5,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    if fused_qkv:
        cfg["attention_projection_layout"] = "fused_qkv"
    if quantization_config is not None:
        cfg["quantization_config"] = quantization_config
    if extra:
        cfg.update(extra)
    return cfg


FP8_QUANT_CONFIG = {
    "quant_method": "fp8",
    "fmt": "e4m3",
    "activation_scheme": "dynamic",
    "weight_block_size": [128, 128],
}


def awq_quant_config(group_size: int, symmetric: bool) -> dict:
    return {
        "quant_method": "compressed-tensors",
        "format": "pack-quantized",
        "quantization_status": "compressed",
        "config_groups": {
            "group_0": {
                "format": "pack-quantized",
                "targets": [r"re:.*mlp\.experts\.\d+\.(gate|up|down)_proj$"],
                "weights": {
                    "num_bits": 4,
                    "type": "int",
                    "strategy": "group",
                    "group_size": group_size,
                    "symmetric": symmetric,
                    "dynamic": False,
                    "actorder": None,
                    "observer": "minmax",
                },
                "input_activations": None,
                "output_activations": None,
            }
        },
        "ignore": ["lm_head"],
    }


# ---------------------------------------------------------------------------------------------
# encoders (independent of mimo_ggml)


def bf16(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(torch.bfloat16)


def bf16_round(a: np.ndarray) -> np.ndarray:
    return bf16(a).to(torch.float32).numpy()


def fp8_quantize(w: np.ndarray, block: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-scaled FP8: per 128x128 tile, scale = amax / 448, codes = fp8(w / scale) (torch's RNE cast)."""
    n, k = w.shape
    nb_r, nb_c = -(-n // block), -(-k // block)
    scale = np.ones((nb_r, nb_c), dtype=np.float32)
    for i in range(nb_r):
        for j in range(nb_c):
            amax = np.abs(w[i * block : (i + 1) * block, j * block : (j + 1) * block]).max()
            if amax > 0:
                scale[i, j] = amax / 448.0
    full = np.repeat(np.repeat(scale, block, 0), block, 1)[:n, :k]
    codes = torch.from_numpy((w / full).astype(np.float32)).to(torch.float8_e4m3fn)
    return codes, torch.from_numpy(scale)


def pack_int4_rows(u: np.ndarray) -> np.ndarray:
    """Offset codes u in [0, 15], ``[N, K]`` -> int32 ``[N, ceil(K/8)]``, element 8w+i at bits 4i."""
    n, k = u.shape
    pad = np.zeros((n, -(-k // 8) * 8), dtype=np.int64)
    pad[:, :k] = u
    words = np.zeros((n, pad.shape[1] // 8), dtype=np.int64)
    for i in range(8):
        words |= pad[:, i::8] << (4 * i)
    return words.astype(np.uint32).view(np.int32)


def pack_int4_cols(u: np.ndarray) -> np.ndarray:
    """Zero points u in [0, 15], ``[N, G]`` -> int32 ``[ceil(N/8), G]``, row r at bits 4*(r % 8) of word r // 8."""
    n, g = u.shape
    words = np.zeros((-(-n // 8), g), dtype=np.int64)
    for r in range(n):
        words[r // 8] |= u[r].astype(np.int64) << (4 * (r % 8))
    return words.astype(np.uint32).view(np.int32)


def pack_mxfp4(codes: np.ndarray) -> np.ndarray:
    """E2M1 codes ``[N, K]`` -> HF bytes ``[N, K/2]``: element 2b low nibble, 2b+1 high nibble."""
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# writing


def _save_sharded(folder: Path, shards: dict[str, dict[str, torch.Tensor]], index_meta: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    total = 0
    for fname, tensors in shards.items():
        if not tensors:
            continue
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        save_file(tensors, str(folder / fname), metadata={"format": "pt"})
        for k, v in tensors.items():
            weight_map[k] = fname
            total += v.numel() * v.element_size()
    meta = {"total_size": total, **(index_meta or {})}
    index = {"metadata": meta, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))


def _write_config(folder: Path, cfg: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))


def write_tokenizer(folder: Path) -> dict:
    """A tiny byte-level BPE tokenizer.json (Qwen2 style) + tokenizer_config.json; returns special ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=280, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(["the quick brown fox jumps over the lazy dog " * 4, "MiMo counts 0123456789"], trainer)
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "add_bos_token": False,
                "chat_template": (
                    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                ),
            }
        )
    )
    return {"eos": tok.token_to_id("<|im_end|>"), "pad": tok.token_to_id("<|endoftext|>")}


def write_bf16_checkpoint(
    folder: Path,
    g: Geometry = Geometry(),
    seed: int = 0,
    tokenizer: bool = True,
    dtype: str = "bf16",
    sink_std: float | None = None,
    init_std: float = 0.02,
) -> Path:
    """(a) random-init ``MiMoV2FlashForCausalLM`` -> ``save_pretrained`` (bf16), then the hub-style config.json.

    transformers hard-codes SWA nkv = 2 x nkv and the full-layer rule
    ``i == 0 or (i+1) % 6 == 0``; the geometry must match both (the default does).
    The config transformers wrote is kept as ``config.transformers.json``.
    ``dtype="f32"`` keeps the same layout with float32 weights, so that a
    float32 reference run of the folder is exact (load it with
    ``dtype=torch.float32``).  ``sink_std`` redraws the attention sinks with
    that standard deviation (transformers' init draws them tiny, where they
    hardly move the softmax).  ``init_std`` is transformers' initializer_range
    (larger values give a less degenerate greedy continuation).
    """
    assert dtype in ("bf16", "f32")
    from transformers import MiMoV2FlashConfig, MiMoV2FlashForCausalLM

    assert g.kv_swa == 2 * g.kv_full and list(g.pattern) == [
        int(not (i == 0 or (i + 1) % 6 == 0)) for i in range(g.layers)
    ], "geometry must be one transformers' MiMoV2Flash port can express"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    special = write_tokenizer(folder) if tokenizer else {}
    tcfg = MiMoV2FlashConfig(
        vocab_size=g.vocab, hidden_size=g.hidden, intermediate_size=g.ffn, num_hidden_layers=g.layers,
        num_attention_heads=g.heads, num_key_value_heads=g.kv_full, moe_intermediate_size=g.moe_ffn,
        num_experts_per_tok=g.top_k, n_routed_experts=g.experts, max_position_embeddings=g.max_pos,
        mlp_layer_types=["sparse" if m else "dense" for m in g.moe],
        eos_token_id=special.get("eos"), pad_token_id=special.get("pad"), initializer_range=init_std,
    )
    torch.manual_seed(seed)
    model = MiMoV2FlashForCausalLM(tcfg)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed + 1)
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):  # make norms non-trivial
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("self_attn.sinks") and sink_std is not None:
                p.copy_(sink_std * torch.randn(p.shape, generator=gen))
        if dtype == "bf16":
            model.to(torch.bfloat16)
        for layer in model.model.layers:
            gate = getattr(layer.mlp, "gate", None)
            if gate is not None and hasattr(gate, "e_score_correction_bias"):
                gate.e_score_correction_bias = (0.05 * torch.randn(g.experts, generator=gen)).to(torch.float32)
    model.save_pretrained(str(folder))
    (folder / "config.transformers.json").write_text((folder / "config.json").read_text())
    extra = {"eos_token_id": special.get("eos"), "pad_token_id": special.get("pad")} if special else {}
    if dtype == "f32":
        extra["torch_dtype"] = "float32"
    _write_config(folder, hub_config(g, model_type="mimo_v2_flash", extra=extra or None))
    return folder


def _rng_w(rng: np.random.Generator, *shape: int, std: float = 0.05) -> np.ndarray:
    return (rng.standard_normal(shape) * std).astype(np.float32)


def _fused_rows(q: np.ndarray, k: np.ndarray, v: np.ndarray, nh: int, nkv: int, tp: int) -> list[np.ndarray]:
    """Per-chunk [Q_c | K_c | V_c] blocks of a TP-sharded fused qkv, from head-ordered Q, K, V."""
    qh, kh = nh // tp, nkv // tp
    return [
        np.concatenate(
            [
                q[c * qh * HEAD_DIM : (c + 1) * qh * HEAD_DIM],
                k[c * kh * HEAD_DIM : (c + 1) * kh * HEAD_DIM],
                v[c * kh * V_HEAD_DIM : (c + 1) * kh * V_HEAD_DIM],
            ]
        )
        for c in range(tp)
    ]


def write_synthetic_checkpoint(
    folder: Path,
    g: Geometry,
    *,
    model_type: str = "mimo_v2",
    linear: str = "fp8",  # qkv / dense MLP / (float) experts: "fp8" or "bf16"
    experts: str = "fp8",  # "fp8" | "bf16" | "awq" | "mxfp4"
    fused_qkv: bool = True,
    qkv_layout: str = "tp_chunked",  # how a fused qkv is stored
    tp: int | None = None,
    awq_group: int = 32,
    awq_symmetric: bool = True,
    awq_scales=None,  # optional callable(name, (N, K/G)) -> scales, to force fallback cases
    router_dtype: str = "f32",
    mxfp4_scales: tuple[int, int] = (118, 131),  # E8M0 bytes drawn from [lo, hi)
    extras: bool = True,  # omni tower tensors that the converter must skip (and, by default, MTP layers)
    mtp_layers: int | None = None,  # MTP layers in model_mtp.safetensors; None: 3 with extras, else 0
    config_extra: dict | None = None,
    seed: int = 0,
) -> dict:
    """Write a checkpoint from numpy weights; returns the float "truth" the payloads were encoded from.

    MTP layers (spec/mtp.md §1.1) hold all their tensors: an SWA attention
    (``swa_num_key_value_heads``) whose fused ``qkv_proj`` is chunked over
    ``num_key_value_heads`` ranks whatever ``tp`` is, with FP8 + per-chunk
    ``weight_scale_inv`` when ``linear == "fp8"``; bf16 eh_proj / o_proj /
    norms / sinks; a dense MLP of the ``linear`` kind.
    """
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    tp = tp or g.kv_full
    n_mtp = (3 if extras else 0) if mtp_layers is None else mtp_layers
    H = g.hidden
    main: dict[str, torch.Tensor] = {}
    mtp: dict[str, torch.Tensor] = {}
    truth: dict[str, np.ndarray] = {}

    def linear_weight(name: str, w: np.ndarray, kind: str, out: dict | None = None) -> None:
        out = main if out is None else out
        truth[name] = w
        if kind == "bf16":
            out[name + ".weight"] = bf16(w)
        else:
            codes, scale = fp8_quantize(w)
            out[name + ".weight"] = codes
            out[name + ".weight_scale_inv"] = scale

    def attention_weights(lp: str, nkv: int, chunks_tp: int, out: dict) -> None:
        """q/k/v of one layer as the release stores them; truth keeps the head-ordered {lp}.q/.k/.v."""
        q = _rng_w(rng, g.heads * HEAD_DIM, H)
        k = _rng_w(rng, nkv * HEAD_DIM, H)
        v = _rng_w(rng, nkv * V_HEAD_DIM, H)
        truth.update({f"{lp}.q": q, f"{lp}.k": k, f"{lp}.v": v})
        if fused_qkv and qkv_layout == "tp_chunked":
            chunks = _fused_rows(q, k, v, g.heads, nkv, chunks_tp)
            truth[f"{lp}.self_attn.qkv_proj"] = np.concatenate(chunks)
            if linear == "bf16":
                out[f"{lp}.self_attn.qkv_proj.weight"] = bf16(np.concatenate(chunks))
            else:  # each TP chunk quantised on its own: per-chunk scale tiles
                enc = [fp8_quantize(c) for c in chunks]
                out[f"{lp}.self_attn.qkv_proj.weight"] = torch.cat([e[0] for e in enc])
                out[f"{lp}.self_attn.qkv_proj.weight_scale_inv"] = torch.cat([e[1] for e in enc])
        elif fused_qkv:
            linear_weight(f"{lp}.self_attn.qkv_proj", np.concatenate([q, k, v]), linear, out)
        else:
            for n_, w_ in (("q", q), ("k", k), ("v", v)):
                linear_weight(f"{lp}.self_attn.{n_}_proj", w_, linear, out)

    main["model.embed_tokens.weight"] = bf16(_rng_w(rng, g.vocab, H))
    main["lm_head.weight"] = bf16(_rng_w(rng, g.vocab, H))
    main["model.norm.weight"] = bf16(1 + _rng_w(rng, H, std=0.1))
    for il in range(g.layers):
        lp = f"model.layers.{il}"
        nkv = g.kv(il)
        main[f"{lp}.input_layernorm.weight"] = bf16(1 + _rng_w(rng, H, std=0.1))
        main[f"{lp}.post_attention_layernorm.weight"] = bf16(1 + _rng_w(rng, H, std=0.1))
        attention_weights(lp, nkv, tp, main)
        main[f"{lp}.self_attn.o_proj.weight"] = bf16(_rng_w(rng, H, g.heads * V_HEAD_DIM))  # o_proj: always bf16
        if g.pattern[il]:
            main[f"{lp}.self_attn.attention_sink_bias"] = bf16(_rng_w(rng, g.heads, std=0.5))
        if not g.moe[il]:
            for p, shape in (("gate", (g.ffn, H)), ("up", (g.ffn, H)), ("down", (H, g.ffn))):
                linear_weight(f"{lp}.mlp.{p}_proj", _rng_w(rng, *shape), linear)
            continue
        router = _rng_w(rng, g.experts, H)
        main[f"{lp}.mlp.gate.weight"] = torch.from_numpy(router) if router_dtype == "f32" else bf16(router)
        main[f"{lp}.mlp.gate.e_score_correction_bias"] = torch.from_numpy(_rng_w(rng, g.experts, std=0.1))
        for e in range(g.experts):
            for p, (n_, k_) in (("gate", (g.moe_ffn, H)), ("up", (g.moe_ffn, H)), ("down", (H, g.moe_ffn))):
                name = f"{lp}.mlp.experts.{e}.{p}_proj"
                if experts in ("fp8", "bf16"):
                    linear_weight(name, _rng_w(rng, n_, k_), experts)
                elif experts == "awq":
                    G = awq_group
                    qv = rng.integers(-8, 8, size=(n_, k_))
                    if callable(awq_scales):
                        s = awq_scales(name, (n_, k_ // G))
                    else:
                        s = rng.uniform(1e-3, 5e-2, size=(n_, k_ // G))
                    s = bf16_round(s)  # stored as bf16: the truth must use the stored value
                    main[name + ".weight_packed"] = torch.from_numpy(pack_int4_rows((qv + 8).astype(np.uint8)))
                    main[name + ".weight_scale"] = bf16(s)
                    main[name + ".weight_shape"] = torch.tensor([n_, k_], dtype=torch.int64)
                    z = np.zeros((n_, k_ // G), dtype=np.int64)
                    if not awq_symmetric:
                        z = rng.integers(-8, 8, size=(n_, k_ // G))
                        main[name + ".weight_zero_point"] = torch.from_numpy(pack_int4_cols((z + 8).astype(np.uint8)))
                    truth[name] = ((qv - np.repeat(z, G, 1)) * np.repeat(s, G, 1)).astype(np.float32)
                elif experts == "mxfp4":
                    codes = rng.integers(0, 16, size=(n_, k_)).astype(np.uint8)
                    scales = rng.integers(*mxfp4_scales, size=(n_, k_ // 32)).astype(np.uint8)
                    main[name + ".weight"] = torch.from_numpy(pack_mxfp4(codes))
                    main[name + ".weight_scale"] = torch.from_numpy(scales)
                    mag = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=np.float32)
                    vals = np.where(codes >= 8, -1.0, 1.0) * mag[codes & 7]
                    truth[name] = (vals * np.repeat(2.0 ** (scales.astype(np.float64) - 127), 32, 1)).astype(np.float32)
                else:
                    raise ValueError(experts)

    for k in range(n_mtp):
        mp = f"model.mtp.layers.{k}"
        for norm in ("enorm", "hnorm", "input_layernorm", "pre_mlp_layernorm", "final_layernorm"):
            mtp[f"{mp}.{norm}.weight"] = bf16(1 + _rng_w(rng, H, std=0.1))
        mtp[f"{mp}.eh_proj.weight"] = bf16(_rng_w(rng, H, 2 * H))  # [H, 2H], not FP8 in the releases
        attention_weights(mp, g.kv_swa, g.kv_full, mtp)  # SWA geometry, ckpt_tp = num_key_value_heads
        mtp[f"{mp}.self_attn.o_proj.weight"] = bf16(_rng_w(rng, H, g.heads * V_HEAD_DIM))
        mtp[f"{mp}.self_attn.attention_sink_bias"] = bf16(_rng_w(rng, g.heads, std=0.5))
        for p, shape in (("gate", (g.ffn, H)), ("up", (g.ffn, H)), ("down", (H, g.ffn))):
            linear_weight(f"{mp}.mlp.{p}_proj", _rng_w(rng, *shape), linear, mtp)

    shards = {"model_pp0_ep0_shard0.safetensors": main, "model_mtp.safetensors": mtp}
    if extras:
        shards["model_pp0_ep0_shard1.safetensors"] = {n: bf16(_rng_w(rng, *s)) for n, s in SKIP_PREFIX_TENSORS.items()}
    qc = None
    if experts == "awq":
        qc = awq_quant_config(awq_group, awq_symmetric)
    elif linear == "fp8" or experts == "fp8" or experts == "mxfp4":
        ignored = [f"model.layers.{i}.self_attn.o_proj" for i in range(g.layers)]
        ignored += [f"model.mtp.layers.{k}.{n}" for k in range(n_mtp) for n in ("self_attn.o_proj", "eh_proj")]
        qc = dict(FP8_QUANT_CONFIG, ignored_layers=ignored)
        if experts == "mxfp4":
            qc.update(store_dtype="mxfp4", mxfp4_block_size=32)
    index_meta = {"tp_size": tp} if fused_qkv else {}
    if experts == "mxfp4":
        index_meta["save_format"] = "mxfp4"
    _save_sharded(folder, shards, index_meta)
    extra = dict(config_extra or {})
    if fused_qkv and qkv_layout == "global_q_k_v":
        extra.setdefault("conversion_metadata", {"qkv_layout": "global_q_k_v"})
    cfg = hub_config(g, model_type=model_type, fused_qkv=fused_qkv, quantization_config=qc, extra=extra)
    _write_config(folder, cfg)
    return truth


# V2.5-like: nkv 2 (full) / 4 (SWA), ckpt_tp = 2; hidden 160 gives a partial 32-column FP8 tile;
# full-layer chunks hold 2*192+192+128 = 704 rows = 5.5 tiles, so per-chunk tiling matters.
FP8_GEOMETRY = Geometry(hidden=160, kv_full=2, kv_swa=4)
# V2.5-Pro-like: equal nkv 2/2 in both layer kinds (704-row chunks in every layer).
PRO_GEOMETRY = Geometry(hidden=64, kv_full=2, kv_swa=2)


def write_fp8_checkpoint(folder: Path, g: Geometry = FP8_GEOMETRY, seed: int = 1, **kw) -> dict:
    """(b) MiMo-V2.5 FP8 release layout (``mimo_v2``, fused TP-chunked qkv, FP8 experts, omni + MTP extras)."""
    return write_synthetic_checkpoint(folder, g, model_type="mimo_v2", linear="fp8", experts="fp8", seed=seed, **kw)


def write_awq_checkpoint(
    folder: Path, g: Geometry = Geometry(), *, symmetric: bool = True, group_size: int = 32, seed: int = 2, **kw
) -> dict:
    """(c) community AWQ W4A16 (routed experts int4 pack-quantized, everything else bf16)."""
    kw.setdefault("fused_qkv", False)
    return write_synthetic_checkpoint(
        folder, g, model_type="mimo_v2", linear="bf16", experts="awq",
        awq_group=group_size, awq_symmetric=symmetric, seed=seed, **kw,
    )


def write_mxfp4_checkpoint(folder: Path, g: Geometry = PRO_GEOMETRY, seed: int = 3, **kw) -> dict:
    """(d) MiMo-V2.5-Pro-FP4 layout: MXFP4 experts, FP8 fused qkv + dense MLP, bf16 router."""
    kw.setdefault("router_dtype", "bf16")
    return write_synthetic_checkpoint(folder, g, model_type="mimo_v2", linear="fp8", experts="mxfp4", seed=seed, **kw)


def scale_matrices(folder: Path, factor: float) -> None:
    """Multiply every bf16 matrix of a checkpoint folder by ``factor`` (a power of two: exact in bf16).

    The fixture's 0.05-std weights give a near-constant greedy continuation;
    0.2 gives a varied one (tens of distinct tokens in 30 steps)."""
    assert np.log2(factor).is_integer()
    for f in sorted(folder.glob("*.safetensors")):
        t = load_file(str(f))
        for k, v in t.items():
            if v.ndim == 2 and v.dtype == torch.bfloat16:
                t[k] = (v.to(torch.float32) * factor).to(torch.bfloat16)
        save_file(t, str(f), metadata={"format": "pt"})


def write_speculative_target(folder: Path, window: int, geometry: Geometry = Geometry(), seed: int = 6,
                             tokenizer: bool = False) -> Path:
    """A MiMo-V2 target for speculative decoding: 3 MTP blocks, a ``window``-token sliding window and
    matrices scaled ×4, so that greedy decoding varies (drafts can be right and wrong)."""
    write_synthetic_checkpoint(folder, geometry, linear="bf16", experts="bf16", mtp_layers=3, extras=False,
                               seed=seed, config_extra={"sliding_window": window, "sliding_window_size": window})
    scale_matrices(folder, 4.0)
    if tokenizer:
        write_tokenizer(folder)
    return folder
