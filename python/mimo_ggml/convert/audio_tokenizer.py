"""MiMo-Audio-Tokenizer (Hugging Face layout) -> CrispASR's tokenizer GGUF.

Owns the name table and metadata of the ``mimo_tokenizer`` GGUF
(spec/gguf-compat.md §2, extra keys of §4): the conv stem, the encoder
layers, the down-sampler and all RVQ codebooks (with their unused training
buffers, which CrispASR's files carry too).  The tokenizer's decoder and
vocoder (``decoder.*``) are TTS-only and skipped.

Upstream names the quantizer module ``encoder.quantizer``; CrispASR's GGUF
shortens it to ``encoder.quant``.  Both spellings are accepted on input.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import InvalidArgumentError, ModelLoadError, UnsupportedModelError
from .common import Checkpoint, PlannedTensor, float_dtype_for, write_gguf

__all__ = ["ARCH", "convert_audio_tokenizer", "tokenizer_tensor_table", "main"]

log = logging.getLogger("mimo_ggml")

ARCH = "mimo_tokenizer"
NAME = "MiMo-Audio-Tokenizer"

# defaults CrispASR hard-codes when a key is absent (gguf-compat §2.1)
_DEFAULTS = {
    "stride_size": 2,
    "avg_pooler": 2,
    "kernel_size": 3,
    "n_mels": 128,
    "nfft": 960,
    "window_size": 960,
    "encoder_skip_layer_id": 3,
    "rope_theta": 10000.0,
}
LAYER_NORM_EPS = 1e-5

# tensor kinds: how each one is typed in the GGUF
_VEC, _MAT, _CONV, _CODEBOOK = "vec", "mat", "conv", "codebook"

# per-layer sub-names: HF suffix -> GGUF suffix (no k bias: the key projection has none)
_LAYER_MAP = [
    ("self_attn_layer_norm.weight", "attn_norm.weight", _VEC),
    ("self_attn_layer_norm.bias", "attn_norm.bias", _VEC),
    ("self_attn.q_proj.weight", "attn.q.weight", _MAT),
    ("self_attn.q_proj.bias", "attn.q.bias", _VEC),
    ("self_attn.k_proj.weight", "attn.k.weight", _MAT),
    ("self_attn.v_proj.weight", "attn.v.weight", _MAT),
    ("self_attn.v_proj.bias", "attn.v.bias", _VEC),
    ("self_attn.out_proj.weight", "attn.o.weight", _MAT),
    ("self_attn.out_proj.bias", "attn.o.bias", _VEC),
    ("final_layer_norm.weight", "ffn_norm.weight", _VEC),
    ("final_layer_norm.bias", "ffn_norm.bias", _VEC),
    ("fc1.weight", "fc1.weight", _MAT),
    ("fc1.bias", "fc1.bias", _VEC),
    ("fc2.weight", "fc2.weight", _MAT),
    ("fc2.bias", "fc2.bias", _VEC),
]


def _hparams(config: dict) -> dict:
    """The encoder hyper-parameters from config.json, validated."""
    missing = [
        k
        for k in (
            "d_model",
            "encoder_layers",
            "encoder_attention_heads",
            "encoder_ffn_dim",
            "num_quantizers",
            "codebook_size",
            "sampling_rate",
            "hop_length",
        )
        if config.get(k) is None
    ]
    if missing:
        raise ModelLoadError(f"tokenizer config.json lacks {', '.join(missing)}")
    hp = {k: (config[k] if config.get(k) is not None else v) for k, v in _DEFAULTS.items()}
    if "encoder_skip_layer_id" in config and config["encoder_skip_layer_id"] is None:
        hp["encoder_skip_layer_id"] = 0  # written as 0 = no skip connection
    for k in ("d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim", "num_quantizers",
              "sampling_rate", "hop_length"):
        hp[k] = int(config[k])
    sizes = config["codebook_size"]
    if isinstance(sizes, int):
        sizes = [sizes] * hp["num_quantizers"]
    sizes = [int(s) for s in sizes]
    if len(sizes) < hp["num_quantizers"]:
        raise ModelLoadError(f"config lists {len(sizes)} codebook sizes for {hp['num_quantizers']} quantizers")
    hp["codebook_size"] = sizes[: hp["num_quantizers"]]
    if hp["d_model"] % hp["encoder_attention_heads"]:
        raise ModelLoadError(
            f"d_model {hp['d_model']} is not divisible by {hp['encoder_attention_heads']} attention heads"
        )

    # features the GGUF layout cannot express: refuse rather than mis-convert
    def unsupported(key, bad, want):
        if key in config and config[key] is not None and bad(config[key]):
            raise UnsupportedModelError(f"tokenizer config has {key}={config[key]!r}; only {want} is supported")

    unsupported("encoder_causal", lambda v: bool(v), "false")
    unsupported("encoder_attn_window_size", lambda v: list(v) != [-1, -1], "[-1, -1]")
    unsupported("ln_type", lambda v: v != "LayerNorm", "'LayerNorm'")
    unsupported("scale_embedding", lambda v: bool(v), "false")
    unsupported("position_embedding_type", lambda v: v != "rope", "'rope'")
    unsupported("rope_type", lambda v: v != "default", "'default'")
    unsupported("activation_function", lambda v: v != "gelu", "'gelu'")
    return hp


def tokenizer_tensor_table(hp: dict, quant_prefix: str = "encoder.quantizer.") -> list[tuple[str, str, str, tuple]]:
    """(HF name, GGUF name, kind, PyTorch shape) for every tensor the GGUF holds, in file order."""
    d, f, nm, k = hp["d_model"], hp["encoder_ffn_dim"], hp["n_mels"], hp["kernel_size"]
    rows: list[tuple[str, str, str, tuple]] = [
        ("encoder.conv1.weight", "encoder.conv1.weight", _CONV, (d, nm, k)),
        ("encoder.conv1.bias", "encoder.conv1.bias", _VEC, (d,)),
        ("encoder.conv2.weight", "encoder.conv2.weight", _CONV, (d, d, k)),
        ("encoder.conv2.bias", "encoder.conv2.bias", _VEC, (d,)),
    ]
    shapes = {
        "fc1.weight": (f, d),
        "fc1.bias": (f,),
        "fc2.weight": (d, f),
    }
    for i in range(hp["encoder_layers"]):
        for hf, gg, kind in _LAYER_MAP:
            shape = shapes.get(gg, (d, d) if kind == _MAT else (d,))
            rows.append((f"encoder.layers.{i}.{hf}", f"enc.blk.{i}.{gg}", kind, shape))
    rows += [
        ("encoder.layer_norm.weight", "enc.norm.weight", _VEC, (d,)),
        ("encoder.layer_norm.bias", "enc.norm.bias", _VEC, (d,)),
    ]
    if hp["avg_pooler"] != 1:
        p = hp["avg_pooler"]
        rows += [
            ("encoder.down_sample_layer.0.weight", "encoder.down_sample_layer.0.weight", _CONV, (d, d, p)),
            ("encoder.down_sample_norm.weight", "encoder.down_sample_norm.weight", _VEC, (d,)),
            ("encoder.down_sample_norm.bias", "encoder.down_sample_norm.bias", _VEC, (d,)),
        ]
    for s, size in enumerate(hp["codebook_size"]):
        src = f"{quant_prefix}vq.layers.{s}._codebook."
        dst = f"encoder.quant.vq.layers.{s}._codebook."
        rows += [
            (src + "embed", dst + "embed", _CODEBOOK, (size, d)),
            (src + "embed_avg", dst + "embed_avg", _CODEBOOK, (size, d)),
            (src + "cluster_size", dst + "cluster_size", _VEC, (size,)),
            (src + "inited", dst + "inited", _VEC, (1,)),
        ]
    return rows


def _check_dtype(name: str, value: str) -> str:
    if value not in ("f16", "f32"):
        raise InvalidArgumentError(f"{name} must be 'f16' or 'f32', got {value!r}")
    return value


def convert_audio_tokenizer(src_dir, out_path, dtype: str = "f16", codebook_dtype: str = "f16") -> Path:
    """Convert a MiMo-Audio-Tokenizer checkpoint folder to a ``mimo_tokenizer`` GGUF.

    ``dtype`` types the matrices and conv kernels, ``codebook_dtype`` the RVQ
    centroids (F32 removes any rounding that could flip a near-tie code);
    1-D tensors are always F32.  Returns the written path.  Raises
    :class:`~mimo_ggml.errors.ModelLoadError` naming every missing or
    mis-shaped tensor before anything is written.
    """
    dtype = _check_dtype("dtype", dtype)
    codebook_dtype = _check_dtype("codebook_dtype", codebook_dtype)
    ckpt = Checkpoint(src_dir)
    hp = _hparams(ckpt.config)
    quant_prefix = "encoder.quant." if "encoder.quant.vq.layers.0._codebook.embed" in ckpt else "encoder.quantizer."
    table = tokenizer_tensor_table(hp, quant_prefix)

    missing = [hf for hf, _, _, _ in table if hf not in ckpt]
    if missing:
        shown = ", ".join(missing[:12]) + (f" … ({len(missing)} in all)" if len(missing) > 12 else "")
        raise ModelLoadError(f"tokenizer checkpoint {ckpt.folder} is missing tensors: {shown}")
    bad = []
    for hf, _, kind, shape in table:
        got = ckpt.shape(hf)
        if hf.endswith(".inited") and int(np.prod(got)) == 1:
            continue  # a 0-d or [1] flag
        if tuple(got) != shape:
            bad.append(f"{hf} {tuple(got)} (expected {shape})")
    if bad:
        raise ModelLoadError("tokenizer checkpoint has tensors of the wrong shape: " + "; ".join(bad))
    known = {hf for hf, _, _, _ in table}
    ignored = [n for n in ckpt.names() if n not in known and not n.startswith("decoder.")]
    if ignored:
        log.warning("audio tokenizer: ignoring %d unexpected tensors (first: %s)", len(ignored), ignored[0])

    def metadata(writer) -> None:
        writer.add_name(NAME)
        u32 = {
            "d_model": hp["d_model"],
            "encoder_layers": hp["encoder_layers"],
            "encoder_heads": hp["encoder_attention_heads"],
            "encoder_ffn_dim": hp["encoder_ffn_dim"],
            "num_quantizers": hp["num_quantizers"],
            "sampling_rate": hp["sampling_rate"],
            "hop_length": hp["hop_length"],
            "stride_size": int(hp["stride_size"]),
            "avg_pooler": int(hp["avg_pooler"]),
            "kernel_size": int(hp["kernel_size"]),
        }
        for key, value in u32.items():
            writer.add_uint32(f"mimo_tok.{key}", value)
        for s, size in enumerate(hp["codebook_size"]):
            writer.add_uint32(f"mimo_tok.codebook_size.{s}", size)
        # values CrispASR hard-codes; its loader ignores unknown keys (gguf-compat §4)
        writer.add_uint32("mimo_tok.n_mels", int(hp["n_mels"]))
        writer.add_uint32("mimo_tok.nfft", int(hp["nfft"]))
        writer.add_uint32("mimo_tok.window_size", int(hp["window_size"]))
        writer.add_uint32("mimo_tok.encoder_skip_layer_id", int(hp["encoder_skip_layer_id"]))
        writer.add_float32("mimo_tok.rope_theta", float(hp["rope_theta"]))
        writer.add_float32("mimo_tok.layer_norm_eps", LAYER_NORM_EPS)

    def produce(hf: str, want: str):
        def run() -> np.ndarray:
            arr = np.asarray(ckpt.tensor(hf), dtype=np.float32)
            if hf.endswith(".inited"):
                arr = arr.reshape(1)
            if want == "f16" and arr.size and np.abs(arr).max() > np.finfo(np.float16).max:
                raise ModelLoadError(f"{hf} has values beyond the F16 range; convert with dtype='f32'")
            return arr
        return run

    tensors = []
    for hf, name, kind, _ in table:
        shape = (1,) if hf.endswith(".inited") else tuple(ckpt.shape(hf))
        if kind == _VEC:
            want = "f32"
        elif kind == _CODEBOOK:
            want = codebook_dtype
        else:
            want = float_dtype_for(len(shape), dtype)
        tensors.append(PlannedTensor(name, shape, want, produce(hf, want)))
    out_path = write_gguf(out_path, ARCH, metadata, tensors)
    log.info("wrote %s (%d tensors)", out_path, len(table))
    return out_path


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Convert a MiMo-Audio-Tokenizer HF folder to a mimo_tokenizer GGUF")
    ap.add_argument("src", help="Hugging Face checkpoint folder (config.json + *.safetensors)")
    ap.add_argument("out", help="output .gguf path")
    ap.add_argument("--dtype", choices=["f16", "f32"], default="f16", help="matrices and conv kernels")
    ap.add_argument("--codebook-dtype", choices=["f16", "f32"], default="f16", help="RVQ centroids")
    args = ap.parse_args(argv)
    convert_audio_tokenizer(args.src, args.out, dtype=args.dtype, codebook_dtype=args.codebook_dtype)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
