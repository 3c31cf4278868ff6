"""`mimo-ggml quantize` on an LM file: matrices re-encoded by ggml, 1-D
tensors kept, and the quantized file computing what transformers computes
with the same (dequantized) weights.

The tiny random model is chaotic (q4_K weight noise alone moves its logits
to cosine ~0.74 from the F32 model's), so the reference is transformers run
on the weights read back from the quantized file, not the original model."""

from __future__ import annotations

import copy

import gguf
import numpy as np
import pytest
import torch

from mimo_ggml import LanguageModel
from mimo_ggml.convert.quantize import quantize_gguf
from mimo_ggml.errors import InvalidArgumentError


_HF_NAMES = {
    "llm.embed.weight": "model.embed_tokens.weight",
    "llm.lm_head.weight": "lm_head.weight",
    "llm.final_norm.weight": "model.norm.weight",
}
_HF_PARTS = [("attn_norm.", "input_layernorm."), ("ffn_norm.", "post_attention_layernorm."),
             ("attn.q.", "self_attn.q_proj."), ("attn.k.", "self_attn.k_proj."), ("attn.v.", "self_attn.v_proj."),
             ("attn.o.", "self_attn.o_proj."), ("ffn.gate.", "mlp.gate_proj."), ("ffn.up.", "mlp.up_proj."),
             ("ffn.down.", "mlp.down_proj.")]


def hf_name(gguf_name: str) -> str:
    if gguf_name in _HF_NAMES:
        return _HF_NAMES[gguf_name]
    for ours, theirs in _HF_PARTS:
        gguf_name = gguf_name.replace(ours, theirs)
    return gguf_name


def model_with_weights_of(model, path):
    """A copy of the transformers model carrying the weights of a GGUF file."""
    clone = copy.deepcopy(model)
    state = clone.state_dict()
    for t in gguf.GGUFReader(path).tensors:
        w = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
        target = state[hf_name(t.name)]
        target.copy_(torch.from_numpy(np.ascontiguousarray(w).reshape(target.shape)))
    return clone


def cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("qtype", ["q8_0", "q4_K", "q6_K"])
def test_quantized_lm_matches_its_weights(tiny_lm, tmp_path, qtype):
    model, files = tiny_lm
    src = files["f32_split"]
    out = quantize_gguf(src, tmp_path / f"lm-{qtype}.gguf", qtype)
    r = gguf.GGUFReader(out)
    types = {t.name: t.tensor_type.name for t in r.tensors}
    assert types["model.layers.0.attn.q.weight"] == qtype.upper()
    assert types["llm.lm_head.weight"] == qtype.upper()
    assert types["model.layers.0.attn_norm.weight"] == "F32"
    assert types["model.layers.0.attn.q.bias"] == "F32"
    assert r.fields["general.file_type"].contents() > 0
    # metadata carried over unchanged
    src_r = gguf.GGUFReader(src)
    assert r.fields["mimo_asr.llm.rope_theta"].contents() == src_r.fields["mimo_asr.llm.rope_theta"].contents()

    ids = np.random.default_rng(3).integers(0, 320, 48).astype(np.int32)
    with torch.no_grad():
        ref = model_with_weights_of(model, out)(torch.from_numpy(ids.astype(np.int64))[None]).logits[0].numpy()
    with LanguageModel(out, device="cpu", n_threads=2, kv_type="f32", n_ctx=128) as lm:
        got = lm.eval(ids, all_logits=True)
    worst = min(cosine(got[i], ref[i]) for i in range(len(ids)))
    # the rest of the gap is ggml quantizing activations inside its matmuls
    assert worst >= 0.995, f"{qtype}: worst position cosine {worst:.5f}"


def test_quantize_bad_input(tmp_path, tiny_lm):
    with pytest.raises(FileNotFoundError):
        quantize_gguf(tmp_path / "missing.gguf", tmp_path / "o.gguf", "q8_0")
    with pytest.raises(InvalidArgumentError, match="q4_K"):
        quantize_gguf(tiny_lm[1]["f32_fused"], tmp_path / "o.gguf", "q3_z")
    assert not (tmp_path / "o.gguf").exists()


def test_weight_layouts_agree(tiny_lm, tmp_path):
    """ggml's repacked CPU layout and the plain one compute the same logits up
    to rounding: equal at the first position, and close everywhere (this
    chaotic tiny model amplifies the different activation-rounding paths of
    the two kernels along the sequence)."""
    out = quantize_gguf(tiny_lm[1]["f32_fused"], tmp_path / "lm-q4k.gguf", "q4_K")
    ids = np.random.default_rng(5).integers(0, 320, 40).astype(np.int32)
    res = {}
    for repack in (True, False):
        with LanguageModel(out, device="cpu", n_threads=2, kv_type="f32", n_ctx=128, repack_weights=repack) as lm:
            logits = lm.eval(ids, all_logits=True)
            res[repack] = logits
    a, b = res[True], res[False]
    assert np.abs(a[0] - b[0]).max() <= 1e-4 * np.abs(a[0]).max()
    worst = min(cosine(a[i], b[i]) for i in range(len(ids)))
    assert worst >= 0.995, worst
