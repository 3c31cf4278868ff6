"""Tiny random-weight MiMo-Audio-Tokenizer checkpoints in the official HF layout.

``make_tiny_tokenizer_checkpoint`` writes ``config.json`` (the real key names,
spec/asr.md §5) and ``model.safetensors`` (float32, written with the
safetensors numpy API) with the real module tree scaled down: conv stem,
pre-LN layers with bias-free key projections, final LayerNorm, down-sampler,
20 RVQ codebooks with their training buffers, and a few ``decoder.*``
tensors that converters must skip.  Weights are scaled so activations stay
O(1) and the RVQ codes vary from frame to frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def default_codebook_sizes(n_quantizers: int) -> list[int]:
    """Like the real [1024, 1024, 128 × 18], truncated to ``n_quantizers``."""
    return ([1024, 1024] + [128] * 18)[:n_quantizers] + [128] * max(0, n_quantizers - 20)


def tiny_tokenizer_config(
    *,
    d_model: int = 64,
    layers: int = 4,
    heads: int = 4,
    ffn: int = 128,
    n_quantizers: int = 20,
    codebook_sizes: list[int] | None = None,
    skip_layer_id: int | None = 3,
    n_mels: int = 128,
) -> dict:
    sizes = list(codebook_sizes) if codebook_sizes is not None else default_codebook_sizes(n_quantizers)
    if len(sizes) != n_quantizers:
        raise ValueError(f"{len(sizes)} codebook sizes for {n_quantizers} quantizers")
    return {
        "max_audio_seconds": 1800,
        "stride_size": 2,
        "avg_pooler": 2,
        "d_model": d_model,
        "scale_embedding": False,
        "kernel_size": 3,
        "activation_function": "gelu",
        "encoder_layers": layers,
        "encoder_skip_layer_id": skip_layer_id,
        "encoder_attention_heads": heads,
        "encoder_ffn_dim": ffn,
        "encoder_causal": False,
        "encoder_attn_window_size": [-1, -1],
        "decoder_layers": 1,
        "decoder_attention_heads": heads,
        "decoder_ffn_dim": ffn,
        "decoder_kernel_size": 3,
        "decoder_stride_size": 2,
        "decoder_causal": True,
        "decoder_attn_window_size": [-1, -1],
        "nfft": 960,
        "vocoder_dim": 32,
        "vocoder_intermediate_dim": 64,
        "vocoder_num_layers": 1,
        "n_mels": n_mels,
        "sampling_rate": 24000,
        "hop_length": 240,
        "window_size": 960,
        "vocoder_padding": "same",
        "fmin": 0,
        "fmax": None,
        "num_quantizers": n_quantizers,
        "codebook_size": sizes,
        "threshold_ema_dead_code": 2,
        "position_embedding_type": "rope",
        "rope_theta": 10000,
        "rope_type": "default",
        "ln_type": "LayerNorm",
        "vocoder_attention_heads": 2,
        "vocoder_attn_window_size": [40, 10],
        "model_type": "mimo_audio_tokenizer",
    }


def tiny_tokenizer_tensors(cfg: dict, seed: int = 0, decoder: bool = True) -> dict[str, np.ndarray]:
    """Random float32 weights for ``cfg`` under the official HF tensor names."""
    rng = np.random.default_rng(seed)
    d, f, nm, k = cfg["d_model"], cfg["encoder_ffn_dim"], cfg["n_mels"], cfg["kernel_size"]

    def mat(rows, cols, gain=1.0):
        return (rng.standard_normal((rows, cols)) * gain / np.sqrt(cols)).astype(np.float32)

    def vec(n, scale=0.02, base=0.0):
        return (base + scale * rng.standard_normal(n)).astype(np.float32)

    def conv(cout, cin, kk, gain=1.0):
        return (rng.standard_normal((cout, cin, kk)) * gain / np.sqrt(cin * kk)).astype(np.float32)

    t: dict[str, np.ndarray] = {}
    # the log-mel input sits around -10 everywhere; zero-mean conv1 filters
    # respond to its shape rather than that offset, which would otherwise make
    # every frame alike (and every RVQ code the same)
    w1 = conv(d, nm, k, gain=0.5)
    t["encoder.conv1.weight"] = w1 - w1.mean(axis=(1, 2), keepdims=True)
    t["encoder.conv1.bias"] = vec(d)
    t["encoder.conv2.weight"] = conv(d, d, k)
    t["encoder.conv2.bias"] = vec(d)
    for i in range(cfg["encoder_layers"]):
        p = f"encoder.layers.{i}"
        t[f"{p}.self_attn.k_proj.weight"] = mat(d, d, gain=3.0)
        t[f"{p}.self_attn.v_proj.weight"] = mat(d, d)
        t[f"{p}.self_attn.v_proj.bias"] = vec(d)
        t[f"{p}.self_attn.q_proj.weight"] = mat(d, d, gain=3.0)
        t[f"{p}.self_attn.q_proj.bias"] = vec(d)
        t[f"{p}.self_attn.out_proj.weight"] = mat(d, d, gain=0.4)
        t[f"{p}.self_attn.out_proj.bias"] = vec(d)
        t[f"{p}.self_attn_layer_norm.weight"] = vec(d, 0.1, 1.0)
        t[f"{p}.self_attn_layer_norm.bias"] = vec(d, 0.1)
        t[f"{p}.fc1.weight"] = mat(f, d)
        t[f"{p}.fc1.bias"] = vec(f)
        t[f"{p}.fc2.weight"] = mat(d, f, gain=0.4)
        t[f"{p}.fc2.bias"] = vec(d)
        t[f"{p}.final_layer_norm.weight"] = vec(d, 0.1, 1.0)
        t[f"{p}.final_layer_norm.bias"] = vec(d, 0.1)
    t["encoder.layer_norm.weight"] = vec(d, 0.1, 1.0)
    t["encoder.layer_norm.bias"] = vec(d, 0.1)
    t["encoder.down_sample_layer.0.weight"] = conv(d, d, cfg["avg_pooler"])
    t["encoder.down_sample_norm.weight"] = vec(d, 0.1, 1.0)
    t["encoder.down_sample_norm.bias"] = vec(d, 0.1)
    # codebooks: the pooled output is LayerNorm'd (entries O(1)); later stages
    # quantize a shrinking residual, so their centroids shrink too
    for s, size in enumerate(cfg["codebook_size"]):
        q = f"encoder.quantizer.vq.layers.{s}._codebook"
        t[f"{q}.embed"] = (rng.standard_normal((size, d)) * 0.3 * 0.8**s).astype(np.float32)
        t[f"{q}.embed_avg"] = (rng.standard_normal((size, d)) * 0.3 * 0.8**s).astype(np.float32)
        t[f"{q}.cluster_size"] = rng.uniform(0, 10, size).astype(np.float32)
        t[f"{q}.inited"] = np.ones(1, dtype=np.float32)
    if decoder:  # TTS side: present in the real checkpoint, never converted
        t["decoder.dconv1.conv.weight"] = conv(d, d, 2)
        t["decoder.layers.0.self_attn.q_proj.weight"] = mat(d, d)
        t["decoder.layer_norm.weight"] = vec(d, 0.1, 1.0)
        t["decoder.vocoder.embeddings.weight"] = mat(cfg["vocoder_dim"], nm)
    return t


def make_tiny_tokenizer_checkpoint(
    folder,
    *,
    d_model: int = 64,
    layers: int = 4,
    heads: int = 4,
    ffn: int = 128,
    n_quantizers: int = 20,
    codebook_sizes: list[int] | None = None,
    skip_layer_id: int | None = 3,
    seed: int = 0,
    decoder: bool = True,
    drop: tuple[str, ...] = (),
) -> Path:
    """Write a tiny tokenizer checkpoint into ``folder`` and return its path.

    ``drop`` removes tensors by exact name (to test missing-tensor errors).
    """
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = tiny_tokenizer_config(
        d_model=d_model,
        layers=layers,
        heads=heads,
        ffn=ffn,
        n_quantizers=n_quantizers,
        codebook_sizes=codebook_sizes,
        skip_layer_id=skip_layer_id,
    )
    tensors = tiny_tokenizer_tensors(cfg, seed=seed, decoder=decoder)
    for name in drop:
        del tensors[name]
    (folder / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
