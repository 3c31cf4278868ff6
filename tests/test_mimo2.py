"""MiMo-V2 MoE text runtime (csrc/models/mimo2, csrc/sessions/text_session,
mimo_ggml.text) against independent references computed in this run:

* transformers' ``MiMoV2FlashForCausalLM`` (float32, eager attention) on a
  tiny V2.5-shaped checkpoint written in float32, with a prompt longer than
  the sliding window, for both window conventions (129 keys: SGLang /
  transformers; 128 keys: vLLM / llama.cpp);
* ``tests/reference/mimo2_ref.py`` (torch, written from spec/moe.md) for a
  V2.5-Pro-shaped model (equal KV heads, fused TP-chunked qkv, irregular
  full-layer list), and for MXFP4 / Q4_0 (AWQ) expert files, whose experts
  the reference decodes from the checkpoint itself.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch

import moe_fixtures as mf
from gguf_edit import rewrite
from mimo_ggml import TextSession, _core
from mimo_ggml.convert.mimo2 import convert_mimo2
from mimo_ggml.errors import InvalidArgumentError, ModelLoadError, ModelNotFoundError, UnsupportedModelError
from reference.mimo2_ref import Mimo2Reference

THREADS = 1  # tiny models gain nothing from threads; one keeps timings sane on a loaded 2-core box
PROMPT_LEN = 200  # > the 129-key window: window masking and ring slots both matter


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def prompt_ids(n: int = PROMPT_LEN, vocab: int = 280, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, n)


def session(path, **kw) -> TextSession:
    kw.setdefault("device", "cpu")
    kw.setdefault("n_threads", THREADS)
    kw.setdefault("n_ctx", 512)
    kw.setdefault("kv_type", "f32")
    return TextSession(path, **kw)


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("mimo2_runtime")


@pytest.fixture(scope="module")
def v25(root):
    """(transformers reference model, F32 GGUF with the default 129-key window, checkpoint folder)."""
    from transformers import MiMoV2FlashForCausalLM

    # init_std 0.2: a lively random model (24 distinct tokens in 32 greedy steps, not one repeated)
    ck = mf.write_bf16_checkpoint(root / "v25", dtype="f32", sink_std=1.0, init_std=0.2)
    gguf_path = root / "v25-f32.gguf"
    convert_mimo2(ck, gguf_path, dtype="f32")
    ref = MiMoV2FlashForCausalLM.from_pretrained(str(ck), dtype=torch.float32, attn_implementation="eager").eval()
    assert ref.config.sliding_window == 129  # hub sliding_window_size 128 -> 128 previous tokens + the query
    return ref, gguf_path, ck


def hf_logits(ref, ids, window: int = 129) -> np.ndarray:
    old = ref.config.sliding_window
    ref.config.sliding_window = window  # the eager mask reads it per call
    try:
        with torch.no_grad():
            return ref(torch.as_tensor(np.asarray(ids))[None]).logits[0].numpy()
    finally:
        ref.config.sliding_window = old


@pytest.fixture(scope="module")
def v25_ref_logits(v25):
    ref, _, _ = v25
    return hf_logits(ref, prompt_ids())


PRO = mf.Geometry(hidden=64, layers=7, pattern=(0, 1, 1, 1, 0, 1, 0), moe=(0, 1, 1, 1, 1, 1, 1), heads=4,
                  kv_full=2, kv_swa=2)


@pytest.fixture(scope="module")
def pro(root):
    folder = root / "pro"
    mf.write_synthetic_checkpoint(folder, PRO, model_type="mimo_v2", linear="bf16", experts="bf16",
                                  fused_qkv=True, extras=False, seed=5,
                                  config_extra={"attention_value_scale": 0.612})
    out = root / "pro-f32.gguf"
    convert_mimo2(folder, out, dtype="f32", fuse_qkv=True)
    return folder, out


# ---------------------------------------------------------------------------------------------
# parity with transformers (V2.5 shape)


def test_v25_logits_match_transformers(v25, v25_ref_logits):
    ref, path, _ = v25
    ids = prompt_ids()
    with session(path) as s:
        assert s.swa_window_keys == 129
        assert s.swa_layers == [False, True, True, True, True, False]
        assert s.moe_layers == [False, True, True, True, True, True]
        got = s.eval(ids, all_logits=True)
        assert s.n_past == PROMPT_LEN
    err = rel_err(got, v25_ref_logits)
    assert err < 1e-4, err

    # the comparison is sensitive to both SWA features: the window convention ...
    assert rel_err(hf_logits(ref, ids, window=128), v25_ref_logits) > 100 * max(err, 1e-6)
    # ... and the sinks
    saved = [(l.self_attn, l.self_attn.sinks.data.clone()) for l in ref.model.layers if l.self_attn.sinks is not None]
    try:
        for attn, _ in saved:
            attn.sinks.data.zero_()
        no_sinks = hf_logits(ref, ids)
    finally:
        for attn, value in saved:
            attn.sinks.data.copy_(value)
    assert rel_err(no_sinks, v25_ref_logits) > 100 * max(err, 1e-6)


def test_v25_window_128_runtime_and_file(v25, root):
    ref, path, ck = v25
    ids = prompt_ids()
    want = hf_logits(ref, ids, window=128)
    with session(path, swa_window_keys=128) as s:
        assert s.swa_window_keys == 128
        got = s.eval(ids, all_logits=True)
    assert rel_err(got, want) < 1e-4
    # a file converted with 128 keys uses them by default
    p128 = root / "v25-f32-w128.gguf"
    convert_mimo2(ck, p128, dtype="f32", swa_window_keys=128)
    with session(p128) as s:
        assert s.swa_window_keys == 128
        np.testing.assert_array_equal(s.eval(ids, all_logits=True), got)


def test_checkpoint_window_is_converted_without_options(root):
    """A checkpoint with a 16-token window (sliding_window_size 16: transformers
    attends over 17 keys) converted with no window option matches
    transformers: the converter takes the window from the config."""
    from transformers import MiMoV2FlashForCausalLM

    ck = mf.write_bf16_checkpoint(root / "w16", dtype="f32", sink_std=1.0, init_std=0.2, seed=3)
    cfg = json.loads((ck / "config.json").read_text())
    cfg["sliding_window"] = cfg["sliding_window_size"] = 16
    (ck / "config.json").write_text(json.dumps(cfg))
    path = root / "w16-f32.gguf"
    convert_mimo2(ck, path, dtype="f32")
    ref = MiMoV2FlashForCausalLM.from_pretrained(str(ck), dtype=torch.float32, attn_implementation="eager").eval()
    assert ref.config.sliding_window == 17
    ids = prompt_ids(60)
    want = hf_logits(ref, ids, window=17)
    with session(path) as s:
        assert s.swa_window_keys == 17
        got = s.eval(ids, all_logits=True)
    assert rel_err(got, want) < 1e-4
    assert rel_err(hf_logits(ref, ids, window=129), want) > 1e-2  # the window matters on this prompt


def test_small_batches_wrap_the_swa_ring(v25, v25_ref_logits):
    """n_batch 16: the SWA ring has 128 + 16 slots, so a 200-token prompt wraps it."""
    _, path, _ = v25
    ids = prompt_ids()
    with session(path, n_batch=16) as s:
        assert s.swa_window_keys - 1 + s.n_batch == 144
        got = s.eval(ids, all_logits=True)
        assert rel_err(got, v25_ref_logits) < 1e-4
        # truncation stays possible within n_batch positions of the end, not further back
        assert s.can_truncate(190) and s.can_truncate(0) and not s.can_truncate(100)
        with pytest.raises(InvalidArgumentError, match="no longer hold"):
            s.truncate(100)
        s.truncate(190)
        again = s.eval(ids[190:], all_logits=True)
        assert rel_err(again, v25_ref_logits[190:]) < 1e-4
        # one position at a time (the decode graph) over the wrapped ring
        assert not s.can_truncate(180)  # the 10-position chunk above moved the ring on
        s.truncate(186)
        rows = np.concatenate([s.eval(ids[i : i + 1]) for i in range(186, PROMPT_LEN)])
        assert rel_err(rows, v25_ref_logits[186:]) < 1e-4
        assert s.kv_bytes_swa > 0 and s.kv_bytes_per_token > 0


def test_greedy_32_tokens_match_transformers(v25):
    ref, path, _ = v25
    ids = list(prompt_ids())
    want = []
    with torch.no_grad():  # full recomputation each step: no cache semantics involved
        seq = list(ids)
        for _ in range(32):
            nxt = int(ref(torch.tensor([seq])).logits[0, -1].argmax())
            want.append(nxt)
            seq.append(nxt)
    assert len(set(want)) > 8  # a lively continuation, not one token repeated
    with session(path) as s:
        got = [int(s.eval(ids)[0].argmax())]
        for _ in range(31):
            got.append(int(s.eval([got[-1]])[0].argmax()))
        assert got == want
        # generate(): the same greedy sequence up to the first end token
        r = s.generate(ids, max_tokens=32)
        stops = set(s.stop_ids())
        cut = next((i for i, t in enumerate(want) if t in stops), 32)
        assert r.tokens == want[:cut]
        assert r.finish_reason == ("stop" if cut < 32 else "length")
        assert r.prompt_tokens == PROMPT_LEN and r.completion_tokens == cut




# ---------------------------------------------------------------------------------------------
# spec reference: Pro shape, quantized experts


def test_pro_shape_matches_spec_reference(pro):
    folder, path = pro
    ids = prompt_ids(160)
    want = Mimo2Reference(folder).logits(ids)
    with session(path) as s:
        assert s.fused_qkv == [True] * PRO.layers
        assert s.swa_layers == [bool(x) for x in PRO.pattern]
        got = s.eval(ids, all_logits=True)
    assert rel_err(got, want) < 1e-4
    # quantized / half KV caches (two threads here, to run the multi-threaded kernels too)
    for kv in ("q8_0", "f16"):
        with session(path, kv_type=kv, n_threads=2) as s:
            half = s.eval(ids, all_logits=True)
            assert s.kv_type == kv
        assert np.isfinite(half).all()
        assert cosine(half, want) >= 0.999, kv


@pytest.mark.parametrize("kind", ["mxfp4", "q4_0"])
def test_quantized_experts_match_dequantized_reference(kind, root):
    # Weight magnitudes like the other matrices (|w| <~ 0.1): ggml quantizes the activations of
    # these matmuls to Q8_0, and with the fixtures' default scales (|w| up to 48 / 0.4) that
    # rounding flips top-2-of-8 routing choices of this tiny random model (cosine ~0.96 / 0.99)
    # although the same file with F32 experts matches to 1e-6.
    folder = root / f"experts-{kind}"
    if kind == "mxfp4":
        mf.write_synthetic_checkpoint(folder, mf.PRO_GEOMETRY, linear="bf16", experts="mxfp4", fused_qkv=False,
                                      extras=False, seed=7, mxfp4_scales=(119, 123))
    else:  # symmetric AWQ int4 -> Q4_0 (lossless repack)
        rng = np.random.default_rng(3)
        mf.write_awq_checkpoint(folder, mf.Geometry(), symmetric=True, group_size=32, extras=False, seed=8,
                                awq_scales=lambda name, shape: rng.uniform(1e-3, 8e-3, size=shape))
    out = root / f"experts-{kind}.gguf"
    report = convert_mimo2(folder, out, dtype="f32")
    assert report.tensor_types["blk.1.ffn_gate_exps.weight"] == kind
    ids = prompt_ids(150)
    want = Mimo2Reference(folder).logits(ids)
    with session(out) as s:
        got = s.eval(ids, all_logits=True)
    c = cosine(got, want)
    assert c >= 0.999, c


# ---------------------------------------------------------------------------------------------
# Python API: generate / stream / chat / stops / caching


def test_generate_stream_chat_and_stops(v25):
    _, path, _ = v25
    with session(path) as s:
        r = s.generate("the quick brown fox", max_tokens=12)
        assert r.prompt_tokens == len(s.tokenize("the quick brown fox"))
        assert r.text == s.detokenize(r.tokens)
        assert set(r.timings) >= {"prompt_s", "generate_s", "prompt_tokens_per_s", "tokens_per_s"}
        stream = s.generate("the quick brown fox", max_tokens=12, stream=True)
        pieces = list(stream)
        assert "".join(pieces) == r.text and stream.result.tokens == r.tokens
        # deterministic: the same call gives the same output; seeded sampling too
        assert s.generate("the quick brown fox", max_tokens=12).tokens == r.tokens
        a = s.generate("the quick", max_tokens=8, temperature=0.9, top_p=0.9, top_k=20, seed=4)
        assert s.generate("the quick", max_tokens=8, temperature=0.9, top_p=0.9, top_k=20, seed=4).tokens == a.tokens
        # stop strings cut the text (streamed or not) and finish with "stop"
        if len(r.text) >= 3:
            stop = r.text[1:3]
            cut = s.generate("the quick brown fox", max_tokens=12, stop=[stop])
            assert cut.finish_reason == "stop" and cut.text == r.text[: r.text.find(stop)]
            st = s.generate("the quick brown fox", max_tokens=12, stop=stop, stream=True)
            assert "".join(st) == cut.text
        # a stop id
        cut = s.generate("the quick brown fox", max_tokens=12, stop=[r.tokens[2]])
        assert cut.finish_reason == "stop" and cut.tokens == r.tokens[: r.tokens.index(r.tokens[2])]
        # chat = generate on the prompt the GGUF's own chat template renders
        msgs = [{"role": "user", "content": "hello fox"}]
        c1 = s.chat(msgs, max_tokens=6)
        assert s.model.chat_template  # the converter kept the checkpoint's template
        from mimo_ggml.chat_template import render_chat

        prompt = render_chat(msgs, s.model.chat_template)
        assert prompt != "<|im_start|>user\nhello fox<|im_end|>\n<|im_start|>assistant\n"
        assert c1.tokens == s.generate(prompt, max_tokens=6).tokens
        # cache_prompt keeps the common prefix
        s.generate("the quick brown fox jumps", max_tokens=4, cache_prompt=True)
        r2 = s.generate("the quick brown fox jumps over", max_tokens=4, cache_prompt=True)
        assert r2.timings["cached_tokens"] > 0
        assert r2.tokens == s.generate("the quick brown fox jumps over", max_tokens=4).tokens


def test_token_prompts_work_without_tokenizer(pro):
    _, path = pro  # the synthetic checkpoint has no tokenizer.json
    with session(path) as s:
        assert not s.has_tokenizer
        r = s.generate([1, 2, 3, 4], max_tokens=5)
        assert r.completion_tokens == len(r.tokens) and r.text == ""
        with pytest.raises(ModelLoadError, match="no tokenizer"):
            s.generate("hello", max_tokens=2)
        with pytest.raises(ModelLoadError, match="no tokenizer"):
            s.generate([1, 2], max_tokens=2, stream=True)


def test_cli_generate(v25, capsys):
    from mimo_ggml.cli import main

    _, path, _ = v25
    assert main(["generate", "-m", str(path), "-p", "the quick", "-n", "6", "-t", "1", "--device", "cpu",
                 "--kv-type", "f32"]) == 0
    with session(path) as s:
        want = s.generate("the quick", max_tokens=6).text
    assert capsys.readouterr().out == want + "\n"


# ---------------------------------------------------------------------------------------------
# metadata spellings other writers use


def retyped(src: Path, dst: Path, changes: dict) -> Path:
    """Copy a GGUF with some keys re-written: ``changes[key] = (value, vtype, sub_type)`` (value None: drop)."""
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(str(dst), r.fields["general.architecture"].contents())
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture" or name in changes:
            continue
        vt = f.types[0]
        if vt == gguf.GGUFValueType.ARRAY:
            w.add_key_value(name, f.contents(), vt, sub_type=f.types[-1])
        else:
            w.add_key_value(name, f.contents(), vt)
    for name, (value, vt, sub) in changes.items():
        if value is not None:
            w.add_key_value(name, value, vt, sub_type=sub)
    for t in r.tensors:
        w.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def test_metadata_array_types_and_defaults(pro, tmp_path):
    """Per-layer arrays as UINT32 / BOOL (or a scalar KV head count), and llama.cpp's key set
    without our own keys (window keys default to 129, sinks taken where present)."""
    _, path = pro
    V = gguf.GGUFValueType
    ids = prompt_ids(140)
    with session(path) as s:
        want = s.eval(ids, all_logits=True)
    variants = {
        "u32-bool": {
            "mimo2.attention.head_count_kv": ([2] * PRO.layers, V.ARRAY, V.UINT32),
            "mimo2.attention.sliding_window_pattern": ([bool(x) for x in PRO.pattern], V.ARRAY, V.BOOL),
        },
        "scalar-kv": {"mimo2.attention.head_count_kv": (2, V.UINT32, None)},
        "llama.cpp-keys": {k: (None, None, None) for k in (
            "mimo2.attention.sliding_window_keys", "mimo2.attention.swa_sinks", "mimo2.attention.full_sinks",
            "mimo2.leading_dense_block_count", "mimo2.expert_weights_scale")},
    }
    for name, changes in variants.items():
        with session(retyped(path, tmp_path / f"{name}.gguf", changes)) as s:
            assert s.swa_window_keys == 129 and s.moe_layers == [bool(x) for x in PRO.moe]
            np.testing.assert_array_equal(s.eval(ids, all_logits=True), want, err_msg=name)


# ---------------------------------------------------------------------------------------------
# errors


def test_bad_files_raise_typed_errors(v25, root, tmp_path):
    _, path, _ = v25
    with pytest.raises(ModelNotFoundError):
        TextSession(tmp_path / "missing.gguf", device="cpu")
    with pytest.raises(UnsupportedModelError, match="architecture"):
        session(rewrite(path, tmp_path / "llama.gguf", arch="llama"))
    with pytest.raises(ModelLoadError, match="blk.2.ffn_up_exps.weight"):
        session(rewrite(path, tmp_path / "drop.gguf", drop="blk.2.ffn_up_exps.weight"))
    with pytest.raises(ModelLoadError, match="sliding_window_pattern"):
        session(rewrite(path, tmp_path / "nopat.gguf", drop_key="mimo2.attention.sliding_window_pattern"))
    with pytest.raises(ModelLoadError, match="heads"):
        session(rewrite(path, tmp_path / "heads.gguf", set_u32={"mimo2.attention.head_count": 3}))
    with pytest.raises(ModelLoadError, match="attn_sinks"):  # the flag says SWA layers carry sinks
        session(rewrite(path, tmp_path / "nosink.gguf", drop="blk.1.attn_sinks.weight"))
    with pytest.raises(ModelLoadError, match="shape"):
        session(rewrite(path, tmp_path / "shape.gguf", shrink="blk.3.attn_sinks.weight"))


def test_bad_arguments_raise_typed_errors(v25):
    _, path, _ = v25
    for kw in ({"n_ctx": 0}, {"kv_type": "q4_0"}, {"swa_window_keys": 0}, {"n_threads": -1}, {"n_batch": 0}):
        with pytest.raises(InvalidArgumentError):
            session(path, **kw)
    with session(path, n_ctx=16) as s:
        with pytest.raises(InvalidArgumentError, match="vocabulary"):
            s.eval([1, 400])
        with pytest.raises(InvalidArgumentError):
            s.eval([])
        with pytest.raises(InvalidArgumentError, match="context is full"):
            s.eval(list(range(17)))
        with pytest.raises(InvalidArgumentError, match="context holds"):
            s.generate(list(range(16)))
        with pytest.raises(InvalidArgumentError):
            s.generate("the", temperature=-1.0)
        with pytest.raises(InvalidArgumentError):
            s.generate("the", max_tokens=-1)
        with pytest.raises(InvalidArgumentError):
            s.generate("the", stop=[3.5])
        with pytest.raises(InvalidArgumentError):
            s.truncate(5)  # beyond the current length 0
        r = s.generate(list(range(10)), max_tokens=100)  # stops at the end of the context
        assert r.finish_reason in ("length", "stop") and s.n_past <= 16
    s.close()
    with pytest.raises(InvalidArgumentError, match="closed"):
        s.eval([1])


# ---------------------------------------------------------------------------------------------
# CLI chat and `mimo-ggml quantize` on mimo2 files


def test_cli_chat_reads_turns_from_stdin(v25):
    import subprocess
    import sys

    _, path, _ = v25
    cmd = [sys.executable, "-m", "mimo_ggml", "chat", "-m", str(path), "-n", "5", "-t", "1", "--device", "cpu",
           "--kv-type", "f32", "--n-ctx", "512", "--stats"]
    run = subprocess.run(cmd, input="hello fox\n\nthe quick\n/exit\nnever read\n", capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    with session(path) as s:
        first = s.chat([{"role": "user", "content": "hello fox"}], max_tokens=5)
    lines = run.stdout.split("\n")
    assert lines[0] == first.text  # not a tty: no "> " prompt; the blank line is skipped
    assert run.stderr.count("prompt tokens") == 2  # two turns answered, then /exit ends the loop


def test_quantize_mimo2_files(v25, root):
    from mimo_ggml.convert.quantize import quantize_gguf

    _, path, _ = v25
    q8 = quantize_gguf(path, root / "v25-q8_0.gguf", "q8_0")
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(q8).tensors}
    assert types["blk.1.attn_q.weight"] == "Q8_0" and types["blk.1.ffn_gate_exps.weight"] == "Q8_0"
    assert types["blk.1.attn_sinks.weight"] == "F32" and types["blk.1.attn_norm.weight"] == "F32"
    assert types["blk.1.ffn_gate_inp.weight"] == "F32"  # the router stays exact
    # every re-encoded matrix is ggml's own Q8_0 of the F32 source
    src_t = {t.name: t for t in gguf.GGUFReader(path).tensors}
    for t in gguf.GGUFReader(q8).tensors:
        if t.tensor_type.name == "Q8_0":
            orig = np.asarray(src_t[t.name].data, dtype=np.float32).reshape(-1, int(t.shape[0]))
            assert np.array_equal(np.asarray(t.data).reshape(orig.shape[0], -1),
                                  _core.quantize(orig, "q8_0").reshape(orig.shape[0], -1)), t.name
    # the model runs on it; this deliberately lively random model (init_std 0.2) flips some
    # top-2 routing choices under Q8_0 rounding, so agreement is high but not F32-exact
    ids = prompt_ids(150)
    with session(path) as s:
        want = s.eval(ids, all_logits=True)
    with session(q8) as s:
        got = s.eval(ids, all_logits=True)
    assert cosine(got, want) >= 0.95

    # MXFP4 experts are already quantized: kept bit for bit while the rest is re-encoded
    folder = root / "quantize-mxfp4"
    mf.write_synthetic_checkpoint(folder, mf.Geometry(), linear="bf16", experts="mxfp4", fused_qkv=False,
                                  extras=False, seed=11, mxfp4_scales=(119, 123))
    src = convert_mimo2(folder, root / "quantize-mxfp4.gguf", dtype="f32").out_path
    dst = quantize_gguf(src, root / "quantize-mxfp4-q4_0.gguf", "q4_0")
    before = {t.name: t for t in gguf.GGUFReader(src).tensors}
    after = {t.name: t for t in gguf.GGUFReader(dst).tensors}
    name = "blk.1.ffn_up_exps.weight"
    assert after[name].tensor_type.name == "MXFP4"
    assert np.array_equal(np.asarray(after[name].data), np.asarray(before[name].data))
    assert after["blk.1.attn_q.weight"].tensor_type.name in ("Q4_0", "Q8_0")
    with session(dst) as s:
        assert np.isfinite(s.eval(prompt_ids(40), all_logits=True)).all()
