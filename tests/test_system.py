"""system_info, the log bridge (quiet by default), GIL release and
deterministic cleanup of native objects."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import mimo_ggml
from mimo_ggml import LanguageModel


def test_system_info_shape():
    info = mimo_ggml.system_info()
    assert info["ggml_version"] == "0.20.2"
    assert any(d["type"] == "cpu" for d in info["devices"])
    assert "CPU" in info["features"]
    assert info["default_threads"] >= 1


def test_native_logs_reach_python_logging(tiny_lm, caplog):
    with caplog.at_level(logging.DEBUG, logger="mimo_ggml"):
        with LanguageModel(tiny_lm[1]["f32_fused"], device="cpu", n_ctx=64):
            pass
    messages = [r.getMessage() for r in caplog.records if r.name == "mimo_ggml"]
    assert any("loaded" in m and "tensors" in m for m in messages), messages


def test_quiet_by_default(tiny_lm):
    """A plain script that loads a model and evaluates prints nothing."""
    code = (
        "import numpy as np, mimo_ggml\n"
        f"lm = mimo_ggml.LanguageModel({str(tiny_lm[1]['f32_fused'])!r}, device='cpu', n_ctx=64)\n"
        "lm.eval(np.arange(5)); lm.close()\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "" and run.stderr == ""


def test_gil_released_during_eval(tiny_lm):
    """Another Python thread keeps running while the native core computes."""
    ticks = 0
    stop = threading.Event()

    def counter():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.0005)

    with LanguageModel(tiny_lm[1]["f32_fused"], device="cpu", n_threads=1, n_ctx=512) as lm:
        ids = np.random.default_rng(0).integers(0, lm.n_vocab, 500)
        t = threading.Thread(target=counter)
        t.start()
        start = time.perf_counter()
        for _ in range(3):
            lm.reset()
            lm.eval(ids, all_logits=True)
        elapsed = time.perf_counter() - start
        stop.set()
        t.join()
    # with the GIL held the counter would tick only between the calls; with it
    # released it ticks throughout (at least 10% of the ideal rate)
    assert ticks > 0.1 * elapsed / 0.0005, (ticks, elapsed)


def test_close_is_idempotent_and_context_manager_frees(tiny_lm):
    lm = LanguageModel(tiny_lm[1]["f32_fused"], device="cpu", n_ctx=64)
    assert lm.weights_bytes > 0 and lm.kv_bytes > 0
    lm.close()
    lm.close()


def test_unused_cpu_features_names_what_ggml_was_not_built_for():
    from mimo_ggml.system import unused_cpu_features

    cpuinfo = "processor\t: 0\nflags\t\t: fpu sse avx2 fma avx512f avx512bw avx512_vnni avx512_bf16\n"
    avx2_build = {"AVX2": "1", "FMA": "1", "AVX512": "0"}
    assert unused_cpu_features(avx2_build, cpuinfo) == ["AVX512", "AVX512_VNNI", "AVX512_BF16"]
    native = {"AVX2": "1", "AVX512": "1", "AVX512_VNNI": "1", "AVX512_BF16": "1"}
    assert unused_cpu_features(native, cpuinfo) == []
    assert unused_cpu_features(avx2_build, "no flags line here") == []
    from importlib.metadata import version

    from mimo_ggml.system import native_build_command

    info = mimo_ggml.system_info()
    if info["build"]["bundled_ggml"]:  # a wheel: no libggml-python; rebuild mimo-ggml itself
        assert native_build_command().startswith("MIMO_GGML_BUNDLE_GGML=1 pip install")
    else:
        assert native_build_command().endswith(f"libggml-python=={version('libggml-python')}")
    assert isinstance(info["cpu_features_unused"], list)
    assert ("advice" in info) == bool(info["cpu_features_unused"])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_model_computes_in_a_forked_child(tiny_lm):
    # a worker pool kept between graphs would not exist in the child and hang it
    _, files = tiny_lm
    with LanguageModel(files["f32_fused"], device="cpu", n_threads=2) as lm:
        lm.eval([1, 2, 3])
        pid = os.fork()
        if pid == 0:  # child: compute, report through the exit status, never return into pytest
            try:
                lm.reset()
                os._exit(0 if np.isfinite(lm.eval([4, 5, 6])).all() else 3)
            except BaseException:
                os._exit(4)
        deadline = time.time() + 60
        while time.time() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.waitstatus_to_exitcode(status) == 0
                break
            time.sleep(0.1)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung computing a graph")
        assert np.isfinite(lm.eval([7])).all()  # the parent still computes too


def test_build_reports_version_backends_and_cpu_variant():
    info = mimo_ggml.system_info()
    assert info["version"] == mimo_ggml.__version__
    assert "CPU" in info["backends"]
    build = info["build"]
    if build["backend_dl"]:  # the dispatching build: ggml picked a CPU module from mimo_ggml/ggml
        assert info["cpu_module"].startswith(("libggml-cpu", "ggml-cpu"))
        assert info["cpu_variant"] and info["cpu_variant"] in info["cpu_module"]
        assert "RPC" in info["backends"] and build["rpc"]
    else:
        assert info["cpu_variant"] is None


def test_avx_vnni_counts_as_covered_by_avx512_vnni():
    from mimo_ggml.system import unused_cpu_features

    cpuinfo = "flags\t\t: avx2 avx512f avx512_vnni avx_vnni\n"
    assert unused_cpu_features({"AVX512": "1", "AVX512_VNNI": "1"}, cpuinfo) == []
    assert unused_cpu_features({"AVX2": "1"}, cpuinfo) == ["AVX512", "AVX512_VNNI", "AVX_VNNI"]


@pytest.mark.skipif(not mimo_ggml.system_info()["build"]["backend_dl"],
                    reason="a source build links its ggml: no backend modules to look for")
def test_dispatching_build_without_a_gpu_module_says_so_and_runs_on_cpu(tiny_lm, tmp_path):
    """The backend folder with the CPU modules only (as a wheel without a CUDA module is): one log line
    says that no GPU module was found and the CPU is used; cuda:0 is a typed error naming what exists."""
    bundled = os.path.join(os.path.dirname(mimo_ggml.__file__), "ggml")
    for name in os.listdir(bundled):
        if not any(gpu in name for gpu in ("cuda", "metal", "vulkan", "hip")):
            os.symlink(os.path.join(bundled, name), tmp_path / name)
    code = (
        "import logging, mimo_ggml\n"
        "logging.basicConfig(level=logging.DEBUG, format='%(name)s %(message)s')\n"
        f"path = {str(tiny_lm[1]['f32_fused'])!r}\n"
        "with mimo_ggml.LanguageModel(path, device='auto', n_ctx=64) as lm:\n"
        "    print('DEVICE', lm.device)\n"
        "try:\n"
        "    mimo_ggml.LanguageModel(path, device='cuda:0', n_ctx=64)\n"
        "except mimo_ggml.BackendError as e:\n"
        "    print('ERROR', e)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, MIMO_GGML_BACKEND_DIR=str(tmp_path)))
    assert run.returncode == 0, run.stderr
    assert "no GPU backend module found there, running on CPU" in run.stderr, run.stderr
    assert "DEVICE CPU" in run.stdout, run.stdout
    error = [ln for ln in run.stdout.splitlines() if ln.startswith("ERROR")]
    assert error and "cuda:0" in error[0] and "CPU" in error[0], run.stdout
