"""DFlash drafter converter (mimo_ggml.convert.dflash) and its torch-free mask_embedding.pt reader.

The folder comes from tests/dflash_fixtures.py (official layout, BF16); the
GGUF is read back with gguf-py and compared with the fixture's float truth
rounded to BF16, and the .pt reader with torch.load itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as QT
from safetensors.torch import load_file, save_file

import dflash_fixtures as df
from moe_fixtures import bf16_round
from mimo_ggml.convert.dflash import GLOBAL_TENSORS, LAYER_TENSORS, MASK_EMBD_TENSOR, Key, convert_dflash
from mimo_ggml.convert.torch_zip import load_torch_zip
from mimo_ggml.errors import InvalidArgumentError, ModelLoadError, UnsupportedModelError


class G:
    """A GGUF read back with gguf-py."""

    def __init__(self, path: Path):
        r = gguf.GGUFReader(path)
        self.kv = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
        self.types = {k: f.types for k, f in r.fields.items()}
        self.t = {t.name: t for t in r.tensors}

    def deq(self, name: str) -> np.ndarray:
        t = self.t[name]
        return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)

    def ne(self, name: str) -> list[int]:
        return [int(x) for x in self.t[name].shape]


def gguf_name(hf: str) -> str:
    """The contract's HF -> GGUF naming, restated here from the tables."""
    if not hf.startswith("layers."):
        return dict(GLOBAL_TENSORS)[hf]
    _, il, rest = hf.split(".", 2)
    return f"blk.{il}.{dict(LAYER_TENSORS)[rest]}"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dflash")


@pytest.fixture(scope="module")
def default_ckpt(root):
    folder = root / "default"
    return folder, df.write_dflash_checkpoint(folder)


@pytest.fixture()
def ckpt(root, request):
    """A fresh folder per test, for the error cases that edit it."""
    folder = root / f"edit_{request.node.name}"
    return folder, df.write_dflash_checkpoint(folder, seed=3)


# ---------------------------------------------------------------------------------------------
# round trip


def test_metadata_as_contracted(default_ckpt, root):
    folder, _ = default_ckpt
    rep = convert_dflash(folder, root / "default.gguf")
    g = G(rep.out_path)
    kv = g.kv
    assert kv["general.architecture"] == "dflash-draft"
    assert kv["general.file_type"] == int(gguf.LlamaFileType.MOSTLY_BF16)
    expect = {
        Key.BLOCK_COUNT: 2, Key.EMBEDDING_LENGTH: 64, Key.FEED_FORWARD_LENGTH: 96, Key.HEAD_COUNT: 4,
        Key.HEAD_COUNT_KV: 1, Key.KEY_LENGTH: 16, Key.VALUE_LENGTH: 16, Key.ROPE_DIMENSION_COUNT: 8,
        Key.CAUSAL: False, Key.SLIDING_WINDOW: 16, Key.CONTEXT_LENGTH: 4096, Key.BLOCK_SIZE: 4,
        Key.MASK_TOKEN_ID: 290, Key.TARGET_LAYER_IDS: [0, 2, 3], Key.N_TARGET_FEATURES: 192,
        Key.NUM_TARGET_LAYERS: 4,
    }
    for key, val in expect.items():
        assert kv[key] == val, key
    for key, val in {Key.RMS_EPS: 1e-6, Key.ROPE_FREQ_BASE: 10000.0, Key.VALUE_SCALE: 0.612,
                     Key.BACKBONE_ROTARY_BASE: 5e6}.items():
        assert kv[key] == pytest.approx(val, rel=1e-6), key
    # value types of the contract: u32 scalars, an i32 array, a bool
    VT = gguf.GGUFValueType
    assert g.types[Key.SLIDING_WINDOW] == [VT.UINT32] and g.types[Key.MASK_TOKEN_ID] == [VT.UINT32]
    assert g.types[Key.TARGET_LAYER_IDS] == [VT.ARRAY, VT.INT32] and g.types[Key.CAUSAL] == [VT.BOOL]
    assert Key.VOCAB_SIZE not in kv  # only with target_vocab
    assert rep.mask_token_id == 290


@pytest.mark.parametrize("dtype", ["bf16", "f32"])
def test_every_tensor_round_trips(default_ckpt, root, dtype):
    folder, truth = default_ckpt
    g = G(convert_dflash(folder, root / f"rt_{dtype}.gguf", dtype=dtype).out_path)
    weights = {k: v for k, v in truth.items() if k != "mask_embedding"}
    assert set(g.t) == {gguf_name(k) for k in weights} | {MASK_EMBD_TENSOR}
    assert not {"token_embd.weight", "output.weight"} & set(g.t)  # borrowed from the target
    for hf, val in weights.items():
        name = gguf_name(hf)
        want_type = QT.F32 if val.ndim == 1 else QT[dtype.upper()]
        assert g.t[name].tensor_type == want_type, name
        assert g.ne(name) == list(val.shape[::-1]), name  # ggml ne is the PyTorch shape reversed
        assert np.array_equal(g.deq(name).reshape(val.shape), bf16_round(val)), name
    assert g.t[MASK_EMBD_TENSOR].tensor_type == QT.F32 and g.ne(MASK_EMBD_TENSOR) == [64]
    assert np.array_equal(g.deq(MASK_EMBD_TENSOR), bf16_round(truth["mask_embedding"]))


def test_q8_0_matrices(default_ckpt, root):
    folder, truth = default_ckpt
    g = G(convert_dflash(folder, root / "q8.gguf", dtype="q8_0").out_path)
    assert g.kv["general.file_type"] == int(gguf.LlamaFileType.MOSTLY_Q8_0)
    for hf in ("fc.weight", "layers.1.mlp.down_proj.weight", "layers.0.self_attn.k_proj.weight"):
        ref = bf16_round(truth[hf])
        got = g.deq(gguf_name(hf)).reshape(ref.shape)
        assert g.t[gguf_name(hf)].tensor_type == QT.Q8_0
        # per 32-block: |err| <= d / 2 with d = amax / 127 (plus the rounding of d to f16)
        d = np.abs(ref).reshape(ref.shape[0], -1, 32).max(-1, keepdims=True) / 127
        err = np.abs(got - ref).reshape(ref.shape[0], -1, 32)
        assert (err <= 0.6 * d).all() and err.max() > 0, hf
    assert g.t["blk.0.attn_sinks.weight"].tensor_type == QT.F32


def test_fc_columns_follow_target_layer_ids(root):
    """spec §8.9: fc input columns are the captured layers in target_layer_ids order, never re-sorted."""
    folder = root / "unsorted_ids"
    ids = (3, 0, 2)
    truth = df.write_dflash_checkpoint(folder, target_layer_ids=ids, target_hidden=32, seed=5)
    g = G(convert_dflash(folder, root / "unsorted.gguf", dtype="f32").out_path)
    assert g.kv[Key.TARGET_LAYER_IDS] == list(ids)
    assert g.kv[Key.N_TARGET_FEATURES] == 3 * 32 and g.ne("dflash_fc.weight") == [96, 64]
    fc = g.deq("dflash_fc.weight").reshape(64, 96)
    src = bf16_round(truth["fc.weight"])
    for j, layer in enumerate(ids):  # column block j multiplies the features of target layer ids[j]
        assert np.array_equal(fc[:, j * 32 : (j + 1) * 32], src[:, j * 32 : (j + 1) * 32]), layer


def test_config_variants(root):
    # no sliding window, bare-tensor mask (its id comes from dflash_config), no sinks, target_hidden_size
    folder = root / "variants"
    truth = df.write_dflash_checkpoint(folder, window=None, mask_as_dict=False, sinks=False, target_hidden=48,
                                       mask_token_id=77, rotary_factor=1.0, seed=7)
    rep = convert_dflash(folder, root / "variants.gguf", target_vocab=300)
    g = G(rep.out_path)
    assert g.kv[Key.SLIDING_WINDOW] == 0 and g.kv[Key.MASK_TOKEN_ID] == 77 and g.kv[Key.VOCAB_SIZE] == 300
    assert g.kv[Key.ROPE_DIMENSION_COUNT] == 16 and g.kv[Key.N_TARGET_FEATURES] == 3 * 48
    assert not any(n.endswith("attn_sinks.weight") for n in g.t)
    assert np.array_equal(g.deq(MASK_EMBD_TENSOR), bf16_round(truth["mask_embedding"]))


def test_cli_convert_dflash(default_ckpt, root, capsys):
    from mimo_ggml.cli import main

    folder, _ = default_ckpt
    out = root / "cli.gguf"
    assert main(["convert", "dflash", str(folder), str(out), "--dtype", "f16", "--target-vocab", "300"]) == 0
    g = G(out)
    assert g.t["blk.0.attn_q.weight"].tensor_type == QT.F16 and g.kv[Key.VOCAB_SIZE] == 300
    assert main(["convert", "dflash", str(folder), str(root / "bad.gguf"), "--target-vocab", "200"]) == 2
    assert "mask_token_id 290 is outside the target vocabulary" in capsys.readouterr().err
    assert not (root / "bad.gguf").exists()


# ---------------------------------------------------------------------------------------------
# mask_embedding.pt without torch


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_torch_zip_reader_equals_torch_load(tmp_path, dtype):
    base = torch.randn(5, 24).to(dtype)
    cases = {
        "dict": {"mask_token_id": 11, "embedding": base[1]},
        "bare": base[2],
        "offset": base.reshape(-1)[37:61],  # view into a larger storage: non-zero storage offset
        "strided": base[:, 7],  # stride 24, offset 7
        "transposed": base.t()[3:9],  # 2-D, non-contiguous
        "parameter": torch.nn.Parameter(base.to(torch.float32)[0], requires_grad=False),
    }
    for case, obj in cases.items():
        path = tmp_path / f"{case}.pt"
        torch.save(obj, str(path))
        ref = torch.load(str(path), weights_only=True)
        got = load_torch_zip(path)
        if isinstance(ref, dict):
            assert got["mask_token_id"] == ref["mask_token_id"]
            ref, got = ref["embedding"], got["embedding"]
        assert got.dtype == np.float32 and got.shape == tuple(ref.shape), case
        assert np.array_equal(got, ref.to(torch.float32).detach().numpy()), case


def test_torch_zip_reader_refuses_code_and_other_storages(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"embedding": torch.zeros(4), "x": Evil()}, str(path))
    with pytest.raises(UnsupportedModelError, match=r"\.print, which this reader does not allow"):
        load_torch_zip(path)
    torch.save(torch.arange(4), str(tmp_path / "long.pt"))
    with pytest.raises(UnsupportedModelError, match="LongStorage"):
        load_torch_zip(tmp_path / "long.pt")
    torch.save(torch.zeros(4), str(tmp_path / "legacy.pt"), _use_new_zipfile_serialization=False)
    with pytest.raises(UnsupportedModelError, match="legacy"):
        load_torch_zip(tmp_path / "legacy.pt")


# ---------------------------------------------------------------------------------------------
# errors: typed, naming what was expected, nothing written


def _convert_fails(folder: Path, root: Path, exc_type, match: str, **kw) -> str:
    out = root / f"fail_{folder.name}.gguf"
    with pytest.raises(exc_type, match=match) as ei:
        convert_dflash(folder, out, **kw)
    assert not out.exists() and not out.with_name(out.name + ".part").exists()
    return str(ei.value)


def _edit_tensors(folder: Path, drop=(), replace=None) -> None:
    f = folder / df.WEIGHTS_FILE
    t = load_file(str(f))
    for n in drop:
        del t[n]
    t.update(replace or {})
    save_file(t, str(f), metadata={"format": "pt"})


def test_per_position_mask_embedding_is_refused(ckpt, root):
    folder, _ = ckpt
    torch.save({"mask_token_id": 290, "per_position": torch.zeros(3, 64, dtype=torch.bfloat16)},
               str(folder / "mask_embedding.pt"))
    msg = _convert_fails(folder, root, UnsupportedModelError, "per_position")
    assert "only a single shared mask embedding [64] is supported" in msg


@pytest.mark.parametrize("obj,match", [
    (lambda: torch.zeros(1, 64), r"mask embedding has shape \[1, 64\], expected \[64\]"),
    (lambda: {"mask_token_id": 290, "embedding": torch.zeros(64), "scale": torch.ones(1)},
     r"expected \['mask_token_id', 'embedding'\]"),
    (lambda: [torch.zeros(64)], r"holds a list; expected a tensor \[64\]"),
])
def test_other_mask_embedding_shapes_are_refused(ckpt, root, obj, match):
    folder, _ = ckpt
    torch.save(obj(), str(folder / "mask_embedding.pt"))
    _convert_fails(folder, root, UnsupportedModelError, match)


def test_mismatched_mask_token_ids(ckpt, root):
    folder, _ = ckpt
    df.write_mask_embedding(folder / "mask_embedding.pt", np.zeros(64, np.float32), 123)
    _convert_fails(folder, root, ModelLoadError,
                   "mask_embedding.pt says mask_token_id 123 but dflash_config.mask_token_id is 290; "
                   "expected the same id in both")


def test_missing_unknown_and_ill_shaped_tensors_are_named(ckpt, root):
    folder, _ = ckpt
    _edit_tensors(folder, drop=("layers.1.mlp.up_proj.weight", "layers.0.self_attn.attention_sink_bias"),
                  replace={"layers.0.self_attn.k_proj.weight": torch.zeros(32, 64, dtype=torch.bfloat16),
                           "lm_head.weight": torch.zeros(300, 64, dtype=torch.bfloat16)})
    msg = _convert_fails(folder, root, ModelLoadError, "cannot be converted")
    assert "missing tensor layers.1.mlp.up_proj.weight (expected shape [96, 64])" in msg
    assert "missing tensor layers.0.self_attn.attention_sink_bias (expected shape [4])" in msg
    assert "layers.0.self_attn.k_proj.weight has shape [32, 64], expected [16, 64]" in msg
    assert "unknown tensor lm_head.weight" in msg


def test_fc_width_is_checked_against_target_layers(ckpt, root):
    folder, _ = ckpt
    cfg = json.loads((folder / "config.json").read_text())
    cfg["dflash_config"]["target_layer_ids"] = [0, 1, 2, 3]  # 4 captured layers -> fc input 256, stored 192
    (folder / "config.json").write_text(json.dumps(cfg))
    _convert_fails(folder, root, ModelLoadError, r"fc.weight has shape \[64, 192\], expected \[64, 256\]")


@pytest.mark.parametrize("edit,exc,match", [
    (lambda c: c.update(architectures=["Qwen3ForCausalLM"]) or c.pop("dflash_config"), UnsupportedModelError,
     "not a DFlash drafter config"),
    (lambda c: c.update(layer_types=["sliding_attention", "full_attention"]), UnsupportedModelError,
     "layer_types mixes"),
    (lambda c: c["dflash_config"].update(target_layer_ids=[0, 2, 2]), ModelLoadError, "repeats a layer"),
    (lambda c: c["dflash_config"].update(block_size=8), ModelLoadError,
     r"dflash_config.block_size = 8 but the top-level block_size = 4"),
    (lambda c: c.update(hidden_act="gelu"), UnsupportedModelError, "hidden_act 'gelu'"),
])
def test_bad_configs(ckpt, root, edit, exc, match):
    folder, _ = ckpt
    cfg = json.loads((folder / "config.json").read_text())
    edit(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))
    _convert_fails(folder, root, exc, match)


def test_bad_arguments(default_ckpt, root):
    folder, _ = default_ckpt
    with pytest.raises(InvalidArgumentError, match="dtype must be one of"):
        convert_dflash(folder, root / "x.gguf", dtype="q4_0")
    with pytest.raises(ModelLoadError, match="not found"):
        convert_dflash(root / "nowhere", root / "x.gguf")
    assert not (root / "x.gguf").exists()
