"""Where a model runs: ``device=`` and the ``devices=`` / ``layer_split=``
list form, their typed errors, and the CLI's --rpc / --layer-split.

These run in every build (one CPU device). Splits over real extra devices
(RPC servers) are checked in tests/test_rpc.py, which needs a build with
the RPC backend.
"""

from __future__ import annotations

import numpy as np
import pytest

from mimo_ggml.errors import InvalidArgumentError


@pytest.fixture(scope="module")
def lm_file(tiny_lm):
    return tiny_lm[1]["f32_fused"]


def _open(path, **where):
    from mimo_ggml import LanguageModel

    return LanguageModel(path, n_threads=1, kv_type="f32", n_ctx=64, **where)


def test_single_device_list_equals_device(lm_file):
    ids = [1, 5, 9, 33, 70, 2]
    with _open(lm_file, device="cpu") as a, _open(lm_file, devices=["cpu"]) as b, \
            _open(lm_file, devices=["cpu"], layer_split=[3]) as c:
        ref = a.eval(ids, all_logits=True)
        np.testing.assert_array_equal(b.eval(ids, all_logits=True), ref)
        np.testing.assert_array_equal(c.eval(ids, all_logits=True), ref)
        assert b.device == a.device == "CPU"
        by_device = b.weights_bytes_by_device
        assert set(by_device) == {"CPU"} and by_device["CPU"] == b.weights_bytes


@pytest.mark.parametrize("where, match", [
    (dict(devices=["cpu", "cpu"]), "twice"),
    (dict(devices=[]), "at least one device"),
    (dict(devices="cpu"), "list of device names"),
    (dict(devices=["cpu"], layer_split=[1, 2]), "one share per device"),
    (dict(devices=["cpu"], layer_split=[-1]), "non-negative"),
    (dict(devices=["cpu"], layer_split=[0]), "not all be 0"),
    (dict(devices=["cpu"], layer_split=["a"]), r"layer_split\[0\] must be a number"),
    (dict(layer_split=[1]), "needs a list of devices"),
    (dict(device="cpu", devices=["cpu"]), "not both"),
    (dict(devices=["cpu", 3]), r"devices\[1\] must be a string"),
])
def test_bad_device_lists_raise_typed_errors(lm_file, where, match):
    with pytest.raises(InvalidArgumentError, match=match):
        _open(lm_file, **where).close()


def test_unknown_device_in_a_list_names_it(lm_file):
    from mimo_ggml.errors import BackendError

    with pytest.raises(BackendError, match="'nosuchdevice'"):
        _open(lm_file, devices=["cpu", "nosuchdevice"]).close()


def test_text_and_asr_models_take_device_lists(tiny_asr, tmp_path_factory):
    import moe_fixtures as mf
    from mimo_ggml import AsrModel, TextModel
    from mimo_ggml.convert.mimo2 import convert_mimo2

    root = tmp_path_factory.mktemp("devices_mimo2")
    geo = mf.Geometry(hidden=64, layers=2, pattern=(0, 1), moe=(0, 1), heads=4, kv_full=2, kv_swa=2)
    mf.write_synthetic_checkpoint(root / "ck", geo, model_type="mimo_v2", linear="bf16", experts="bf16",
                                  fused_qkv=True, extras=False, seed=3)
    convert_mimo2(root / "ck", root / "m.gguf", dtype="f32", fuse_qkv=True)
    with TextModel(root / "m.gguf", devices=["cpu"], layer_split=[1], n_threads=1) as m:
        assert m.weights_bytes_by_device == {"CPU": m.weights_bytes}
    with pytest.raises(InvalidArgumentError, match="twice"):
        TextModel(root / "m.gguf", devices=["cpu", "CPU"], n_threads=1)
    with AsrModel(tiny_asr["f32_fused"], devices=["cpu"], n_threads=1) as m:
        assert m.weights_bytes_by_device == {"CPU": m.weights_bytes}
    with pytest.raises(InvalidArgumentError, match="not both"):
        AsrModel(tiny_asr["f32_fused"], device="cpu", devices=["cpu"], n_threads=1)


def test_cli_rpc_and_layer_split_options():
    from mimo_ggml.cli import CliError, _devices, build_parser

    p = build_parser()
    args = p.parse_args(["generate", "-m", "x.gguf", "-p", "hi", "--rpc", "127.0.0.1:5000,127.0.0.1:5001",
                         "--layer-split", "1,2,2"])
    assert _devices(args) == {"devices": ["auto", "rpc:127.0.0.1:5000", "rpc:127.0.0.1:5001"],
                              "layer_split": [1.0, 2.0, 2.0]}
    args = p.parse_args(["transcribe", "a.wav", "--device", "cpu", "--rpc", "h:1"])
    assert _devices(args) == {"devices": ["cpu", "rpc:h:1"], "layer_split": None}
    assert _devices(p.parse_args(["transcribe", "a.wav", "--device", "rpc:h:1"])) == {"device": "rpc:h:1"}
    with pytest.raises(CliError, match="--layer-split needs --rpc"):
        _devices(p.parse_args(["transcribe", "a.wav", "--layer-split", "1,1"]))
    for bad in (["--rpc", "nohost"], ["--rpc", "h:99999"], ["--rpc", "h:1", "--layer-split", "1,x"],
                ["--rpc", "h:1", "--layer-split", "0,0"]):
        with pytest.raises(SystemExit):
            p.parse_args(["chat", "-m", "x.gguf"] + bad)


def test_serve_config_takes_the_rpc_split():
    from mimo_ggml.cli import build_parser
    from mimo_ggml.server.options import config_from_args

    args = build_parser().parse_args(["serve", "--text-model", "m.gguf", "--rpc", "h:1,h:2", "--layer-split", "0,1,1"])
    cfg = config_from_args(args)
    assert cfg.devices == ["auto", "rpc:h:1", "rpc:h:2"] and cfg.layer_split == [0.0, 1.0, 1.0]
