"""Models on a ggml RPC server (`mimo-ggml rpc-server`, device="rpc:HOST:PORT").

Servers run as subprocesses on 127.0.0.1 (free ports, killed by their PIDs at
teardown). Whole models on the server must give the same logits and greedy
tokens as a local run; a server that dies mid-generation must raise a typed
error in a client that survives; a protocol mismatch must be an error, not
a hang. Skipped where this ggml build has no RPC backend (a source build
against the PyPI libggml-python); the wheels have it.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from mimo_ggml import _core
from mimo_ggml.errors import BackendError, InvalidArgumentError

pytestmark = pytest.mark.skipif(not _core.system_info().get("build", {}).get("rpc"),
                                reason="this ggml build has no RPC backend (wheels and bundled builds do)")

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(threads: int = 1) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mimo_ggml", "rpc-server", "--host", HOST, "--port", str(port),
                             "--threads", str(threads)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(300):  # up to 30 s for the interpreter and ggml to start
        if proc.poll() is not None:
            raise RuntimeError(f"rpc-server exited with {proc.returncode}: {proc.stderr.read().decode()}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return proc, f"{HOST}:{port}"
        except OSError:
            time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError("rpc-server did not start listening within 30 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.stderr:
        proc.stderr.close()


@pytest.fixture(scope="module")
def server():
    proc, endpoint = start_server()
    yield endpoint
    stop_server(proc)


def test_rpc_backend_is_reported():
    info = _core.system_info()
    assert "RPC" in info["backends"]
    assert info["build"]["rpc_protocol"].count(".") == 2


def test_lm_logits_and_greedy_tokens_match_local(tiny_lm, server):
    from mimo_ggml import LanguageModel

    _, files = tiny_lm
    ids = [1, 5, 9, 33, 70, 2, 8, 100, 64, 3]
    results = {}
    for device in ("cpu", f"rpc:{server}"):
        with LanguageModel(files["f32_fused"], device=device, n_threads=1, kv_type="f32", n_ctx=64) as lm:
            logits = lm.eval(ids, all_logits=True)
            tokens, step = [], logits[-1:]
            for _ in range(8):
                tokens.append(int(step[0].argmax()))
                step = lm.step(tokens[-1])
            results[device] = (logits, tokens)
    local, remote = results["cpu"], results[f"rpc:{server}"]
    np.testing.assert_array_equal(remote[0], local[0])  # same ops, same CPU kernels, bit for bit
    assert remote[1] == local[1]


def test_asr_transcription_tokens_match_local(tiny_asr, server):
    from mimo_ggml import Session

    rng = np.random.default_rng(3)
    audio = (0.1 * rng.standard_normal(24000 * 2)).astype(np.float32)
    out = {}
    for device in ("cpu", f"rpc:{server}"):
        with Session(tiny_asr["f32_fused"], device=device, n_threads=1, kv_type="f32") as s:
            r = s.transcribe(audio, sample_rate=24000, language="en", max_new_tokens=12, vad=False)
            out[device] = [list(seg.tokens) for seg in r.segments]
    assert out["cpu"] and any(out["cpu"])  # noise without the VAD: a segment with tokens to compare
    assert out[f"rpc:{server}"] == out["cpu"]


@pytest.fixture(scope="module")
def mimo2_path(tmp_path_factory):
    import moe_fixtures as mf
    from mimo_ggml.convert.mimo2 import convert_mimo2

    root = tmp_path_factory.mktemp("rpc_mimo2")
    geo = mf.Geometry(hidden=64, layers=3, pattern=(0, 1, 0), moe=(0, 1, 1), heads=4, kv_full=2, kv_swa=2)
    mf.write_synthetic_checkpoint(root / "ck", geo, model_type="mimo_v2", linear="bf16", experts="bf16",
                                  fused_qkv=True, extras=False, seed=7)
    convert_mimo2(root / "ck", root / "m.gguf", dtype="f32", fuse_qkv=True)
    return root / "m.gguf"


def mimo2_run(path, **where):
    """(all logits of a 24-token prompt, 10 greedy tokens, weight bytes by device) of a mimo2 file."""
    from mimo_ggml import TextSession

    ids = list(np.random.default_rng(1).integers(0, 200, 24))
    with TextSession(path, **where, n_threads=1, n_ctx=128, kv_type="f32", swa_window_keys=9) as s:
        logits = s.eval(ids, all_logits=True)
        s.reset()
        return logits, list(s.generate(ids, max_tokens=10).tokens), s.weights_bytes_by_device


def test_mimo2_logits_and_greedy_tokens_match_local(mimo2_path, server):
    local, remote = mimo2_run(mimo2_path, device="cpu"), mimo2_run(mimo2_path, device=f"rpc:{server}")
    np.testing.assert_array_equal(remote[0], local[0])
    assert remote[1] == local[1]


@pytest.fixture(scope="module")
def lm_file(tiny_lm):
    return tiny_lm[1]["f32_fused"]


def _load_on(path, device):
    from mimo_ggml import LanguageModel

    LanguageModel(path, device=device, n_threads=1).close()


def test_bad_rpc_specs_raise_typed_errors(lm_file):
    with pytest.raises(InvalidArgumentError, match="rpc:HOST:PORT"):
        _load_on(lm_file, "rpc:nohostport")
    with pytest.raises(BackendError, match="cannot connect"):
        _load_on(lm_file, f"rpc:{HOST}:{free_port()}")  # nothing listens there


class FakeServer:
    """A TCP server on loopback that answers ggml's HELLO with a given version (or never)."""

    def __init__(self, reply: bytes | None):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(4)
        self.endpoint = f"{HOST}:{self.sock.getsockname()[1]}"
        self.reply = reply
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        for _ in range(4):  # bounded
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            c.settimeout(20)
            try:
                c.recv(1 + 8 + 24)
                if self.reply is not None:
                    c.sendall(self.reply)
            except OSError:
                pass

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


def test_protocol_mismatch_is_a_clear_error(lm_file):
    # a server of protocol 4.0.0 (same reply layout, other major version)
    fake = FakeServer(struct.pack("<Q", 28) + bytes([4, 0, 0, 0]) + bytes(24))
    try:
        with pytest.raises(BackendError, match=r"protocol 4\.0\.0"):
            _load_on(lm_file, f"rpc:{fake.endpoint}")
    finally:
        fake.close()
    # an older server whose HELLO reply has another size
    fake = FakeServer(struct.pack("<Q", 3) + bytes([3, 0, 0]))
    try:
        with pytest.raises(BackendError, match="another RPC protocol version"):
            _load_on(lm_file, f"rpc:{fake.endpoint}")
    finally:
        fake.close()


def test_silent_server_times_out_instead_of_hanging(lm_file):
    fake = FakeServer(None)
    t0 = time.monotonic()
    try:
        with pytest.raises(BackendError, match="did not complete the handshake"):
            _load_on(lm_file, f"rpc:{fake.endpoint}")
    finally:
        fake.close()
    assert time.monotonic() - t0 < 30


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from mimo_ggml import LanguageModel
    from mimo_ggml.errors import BackendError
    path, devices, pid = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
    lm = LanguageModel(path, devices=devices, n_threads=1, kv_type="f32", n_ctx=64)
    tok = int(lm.eval([1, 2, 3])[0].argmax())
    os.kill(pid, signal.SIGKILL)          # the server (of the last device) dies between two steps
    try:
        for _ in range(20):
            tok = int(lm.step(tok)[0].argmax())
        print("NO ERROR")
    except BackendError as e:
        print("TYPED ERROR:", e)
    lm.close()                            # closing must work with the server gone
    print("CLOSED")
""")


def kill_mid_generation(lm_path, tmp_path, other_devices=()):
    """Runs KILL_SCRIPT on other_devices + a fresh server that it kills; its output."""
    proc, endpoint = start_server()
    try:
        script = tmp_path / "kill.py"
        script.write_text(KILL_SCRIPT)
        devices = ",".join([*other_devices, f"rpc:{endpoint}"])
        r = subprocess.run([sys.executable, str(script), str(lm_path), devices, str(proc.pid)],
                           capture_output=True, text=True, timeout=120)
    finally:
        stop_server(proc)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "TYPED ERROR:" in r.stdout and "RPC server" in r.stdout, r.stdout + r.stderr[-2000:]
    assert "CLOSED" in r.stdout


def test_server_killed_mid_generation_raises_and_client_survives(tiny_lm, tmp_path):
    kill_mid_generation(tiny_lm[1]["f32_fused"], tmp_path)


def test_cli_rpc_server_help_warns():
    from mimo_ggml.cli import build_parser

    p = build_parser()
    help_text = next(a for a in p._subparsers._group_actions[0].choices["rpc-server"].format_help().split("\n\n")
                     if "authentication" in a)
    assert "NO" in help_text and "127.0.0.1" in help_text


@pytest.fixture(scope="module")
def two_servers():
    started = [start_server() for _ in range(2)]
    yield [endpoint for _, endpoint in started]
    for proc, _ in started:
        stop_server(proc)


def _split(servers, split=None):
    return dict(devices=["cpu"] + [f"rpc:{e}" for e in servers], layer_split=split)


def _spread(by_device):
    """Weight bytes on the local CPU and on the RPC devices."""
    local = by_device.get("CPU", 0)
    remote = sorted(v for k, v in by_device.items() if k != "CPU")
    return local, remote


def test_lm_split_over_cpu_and_two_servers_matches_local(tiny_lm, two_servers):
    from mimo_ggml import LanguageModel

    _, files = tiny_lm
    ids = [1, 5, 9, 33, 70, 2, 8, 100, 64, 3]
    results = {}
    for name, where in (("local", dict(device="cpu")), ("split", _split(two_servers)),
                        ("uneven", _split(two_servers, [0, 1, 3]))):
        with LanguageModel(files["f32_fused"], **where, n_threads=1, kv_type="f32", n_ctx=64) as lm:
            logits = lm.eval(ids, all_logits=True)
            tokens, step = [], logits[-1:]
            for _ in range(8):
                tokens.append(int(step[0].argmax()))
                step = lm.step(tokens[-1])
            lm.reset()
            last = lm.eval(ids)  # only the last row's logits: the path that prunes rows
            results[name] = (logits, tokens, lm.weights_bytes_by_device, lm.weights_bytes, last)
    local = results["local"]
    for name in ("split", "uneven"):
        np.testing.assert_array_equal(results[name][0], local[0])  # same CPU kernels everywhere: bit for bit
        np.testing.assert_allclose(results[name][4], local[4], rtol=0, atol=1e-4)
        np.testing.assert_allclose(results[name][4][-1], local[0][-1], rtol=0, atol=1e-4)
        assert results[name][1] == local[1]
        assert sum(results[name][2].values()) == results[name][3]
    # the layers really are spread: the servers hold weights, and a 0 share leaves only the non-layer tensors here
    even_local, even_remote = _spread(results["split"][2])
    assert len(even_remote) == 2 and min(even_remote) > 0
    uneven_local, uneven_remote = _spread(results["uneven"][2])
    assert uneven_local < even_local and len(uneven_remote) == 2 and uneven_remote[1] > uneven_remote[0] > 0


def test_asr_split_over_cpu_and_two_servers_matches_local(tiny_asr, two_servers):
    from mimo_ggml import Session

    rng = np.random.default_rng(3)
    audio = (0.1 * rng.standard_normal(24000 * 2)).astype(np.float32)
    out = {}
    for name, where in (("local", dict(device="cpu")), ("split", _split(two_servers))):
        with Session(tiny_asr["f32_fused"], **where, n_threads=1, kv_type="f32") as s:
            r = s.transcribe(audio, sample_rate=24000, language="en", max_new_tokens=12, vad=False)
            out[name] = [list(seg.tokens) for seg in r.segments]
            spread = _spread(s.model.weights_bytes_by_device)
    assert out["local"] and any(out["local"])
    assert out["split"] == out["local"]
    assert len(spread[1]) == 2 and min(spread[1]) > 0


def test_mimo2_split_over_cpu_and_two_servers_matches_local(mimo2_path, two_servers):
    local, split = mimo2_run(mimo2_path, device="cpu"), mimo2_run(mimo2_path, **_split(two_servers))
    np.testing.assert_array_equal(split[0], local[0])
    assert split[1] == local[1]
    assert len(_spread(split[2])[1]) == 2


@pytest.fixture(scope="module")
def speculative_files(tmp_path_factory):
    """A mimo2 target with 3 MTP blocks and a 4-token DFlash drafter reading its layers 0, 2, 5."""
    import dflash_fixtures as df
    import moe_fixtures as mf
    from mimo_ggml.convert.dflash import convert_dflash
    from mimo_ggml.convert.mimo2 import convert_mimo2

    root = tmp_path_factory.mktemp("rpc_speculative")
    mf.write_speculative_target(root / "target", window=8)
    convert_mimo2(root / "target", root / "target.gguf", dtype="f32")
    df.write_dflash_checkpoint(root / "dflash", num_target_layers=6, std=0.15, block_size=4, window=16,
                               target_layer_ids=(0, 2, 5), seed=11)
    convert_dflash(root / "dflash", root / "dflash.gguf", dtype="f32")
    return root / "target.gguf", root / "dflash.gguf"


def test_speculative_decoding_split_over_cpu_and_two_servers_is_plain_greedy(speculative_files, two_servers):
    """DFlash and MTP rounds (captured layer rows, drafts verified and rolled back) on a target whose
    layers sit on three devices give the local plain greedy tokens."""
    from mimo_ggml import TextModel

    target, drafter = speculative_files
    prompt = list(np.random.default_rng(5).integers(0, 300, 20))
    with TextModel(target, device="cpu", n_threads=1) as local, local.session(kv_type="f32", n_ctx=96) as s:
        plain = list(s.generate(prompt, max_tokens=17).tokens)
    assert len(set(plain)) > 3  # a varied continuation: drafts can be both right and wrong
    with TextModel(target, **_split(two_servers), n_threads=1) as model:
        assert len(_spread(model.weights_bytes_by_device)[1]) == 2
        for draft in ("mtp", model.load_draft(drafter)):
            with model.session(kv_type="f32", n_ctx=96, draft=draft, draft_block=4) as s:
                r = s.generate(prompt, max_tokens=17)
                assert list(r.tokens) == plain, draft
                assert r.draft_stats["rounds"] > 0 and r.draft_stats["proposed"] > 0


def test_split_with_a_server_killed_mid_generation_raises_and_client_survives(tiny_lm, tmp_path, two_servers):
    kill_mid_generation(tiny_lm[1]["f32_fused"], tmp_path, ["cpu", f"rpc:{two_servers[0]}"])
