"""One loaded model, many sessions: sessions on one AsrModel / TextModel in
parallel threads give exactly the sequential results; one session called
from two threads serializes whole operations; a second session costs its KV
cache and scratch, not a second copy of the weights; opening and closing
sessions does not grow memory; closing the model while sessions live is
well defined."""

from __future__ import annotations

import gc
import shutil
import threading

import numpy as np
import pytest

import moe_fixtures as mf
from mimo_ggml import AsrModel, Session, TextModel, TextSession
from mimo_ggml.convert.mimo2 import convert_mimo2
from mimo_ggml.errors import InvalidArgumentError
from test_transcribe import speechlike

N_THREADS = 8


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def run_in_threads(fn, args_list):
    """fn(*args) for each args in its own thread, all released at once; results in order."""
    results: list = [None] * len(args_list)
    errors: list = []
    start = threading.Barrier(len(args_list))

    def work(i, args):
        try:
            start.wait()
            results[i] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.fixture(scope="module")
def asr_model(tiny_asr):
    with AsrModel.load(tiny_asr["f32_fused"], device="cpu", n_threads=1) as model:
        yield model


def clips():
    return [(speechlike(1.0 + 0.3 * i, 16000, seed=100 + i), 16000) for i in range(N_THREADS)]


def transcript(result):
    return [(s.tokens, s.text, s.finish_reason) for s in result.segments]


def test_parallel_asr_sessions_equal_sequential(asr_model):
    inputs = clips()
    with asr_model.session(kv_type="f32") as s:
        sequential = [transcript(s.transcribe(a, language="en", max_new_tokens=10, vad=False)) for a in inputs]
    sessions = [asr_model.session(kv_type="f32") for _ in inputs]
    try:
        parallel = run_in_threads(lambda s, a: transcript(s.transcribe(a, language="en", max_new_tokens=10, vad=False)),
                                  list(zip(sessions, inputs)))
    finally:
        for s in sessions:
            s.close()
    assert parallel == sequential
    assert len({str(t) for t in sequential}) > 1  # the inputs differ, so a mix-up would show


def test_one_session_from_many_threads_serializes(asr_model):
    inputs = clips()
    with asr_model.session(kv_type="f32") as s:
        sequential = [transcript(s.transcribe(a, language="en", max_new_tokens=10, vad=False)) for a in inputs]
        shared = run_in_threads(lambda a: transcript(s.transcribe(a, language="en", max_new_tokens=10, vad=False)),
                                [(a,) for a in inputs])
        assert shared == sequential
        # the same thread re-entering an open stream is refused, not deadlocked
        stream = s.transcribe_stream(inputs[0][0], 16000, max_new_tokens=4, vad=False)
        next(stream)
        with pytest.raises(InvalidArgumentError, match="busy"):
            s.transcribe(inputs[1][0], 16000, max_new_tokens=4, vad=False)
        stream.close()
        assert transcript(s.transcribe(inputs[0][0], 16000, language="en", max_new_tokens=10, vad=False)) == sequential[0]


def test_closing_the_model_keeps_sessions_working(tiny_asr):
    audio = speechlike(1.0, 16000, seed=3)
    model = AsrModel.load(tiny_asr["f32_fused"], device="cpu", n_threads=1)
    s = model.session(kv_type="f32")
    before = transcript(s.transcribe(audio, 16000, language="en", max_new_tokens=6, vad=False))
    model.close()
    assert model.closed
    with pytest.raises(InvalidArgumentError, match="closed"):
        model.session()
    assert transcript(s.transcribe(audio, 16000, language="en", max_new_tokens=6, vad=False)) == before
    s.close()
    with pytest.raises(InvalidArgumentError, match="closed"):
        s.transcribe(audio, 16000, vad=False)
    with pytest.raises(InvalidArgumentError, match="tokenizer"):
        Session(model, tokenizer=tiny_asr["tokenizer"])


@pytest.fixture(scope="module")
def big_asr(tmp_path_factory, tiny_asr):
    """An ASR model whose LM weights (~64 MiB F32) dwarf a session's KV cache and scratch."""
    from asr_fixtures import make_tiny_asr_checkpoint
    from mimo_ggml.convert.asr import convert_asr

    root = tmp_path_factory.mktemp("big_asr")
    ck = make_tiny_asr_checkpoint(root / "hf", seed=1, lm=dict(hidden_size=512, intermediate_size=2048,
                                                                  num_hidden_layers=4, num_attention_heads=4,
                                                                  num_key_value_heads=2))
    shutil.copy(tiny_asr["tokenizer"], root / "mimo-tokenizer.gguf")
    return convert_asr(ck, root / "mimo-asr-big.gguf", dtype="f32")


def test_second_session_adds_no_weights(big_asr):
    audio = speechlike(1.0, 16000, seed=4)
    r0 = rss_mib()
    model = AsrModel.load(big_asr, device="cpu", n_threads=1)
    weights = model.weights_bytes / 2**20
    loaded = rss_mib() - r0
    first = model.session(kv_type="f16", n_ctx=256)
    first.transcribe(audio, 16000, max_new_tokens=4, vad=False)  # its compute buffers are allocated now
    r1 = rss_mib()
    second = model.session(kv_type="f16", n_ctx=256)
    second.transcribe(audio, 16000, max_new_tokens=4, vad=False)
    added = rss_mib() - r1
    first.close()
    second.close()
    model.close()
    assert weights > 60 and loaded > 0.8 * weights, (weights, loaded)
    assert added < 0.25 * weights, f"a second session added {added:.1f} MiB next to {weights:.1f} MiB of weights"


def test_open_close_cycles_keep_memory_flat(asr_model):
    audio = (speechlike(1.0, 16000, seed=5), 16000)

    def cycle():
        with asr_model.session(kv_type="f16", n_ctx=256) as s:
            s.transcribe(audio, max_new_tokens=2, vad=False)

    for _ in range(20):  # warm-up: allocator pools, graph caches, lazily imported code
        cycle()
    gc.collect()
    start = rss_mib()
    curve = []
    for i in range(200):
        cycle()
        if i % 50 == 49:
            gc.collect()
            curve.append(rss_mib() - start)
    assert max(curve) < 5.0, f"RSS grew over 200 session cycles (MiB after every 50): {curve}"


# -- the MoE text model ---------------------------------------------------------


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharing_moe")
    ck = mf.write_bf16_checkpoint(root / "v25", dtype="f32", init_std=0.2)
    path = root / "v25.gguf"
    convert_mimo2(ck, path, dtype="f32")
    with TextModel.load(path, device="cpu", n_threads=1) as model:
        yield model


def test_parallel_text_sessions_equal_sequential(text_model):
    prompts = [np.random.default_rng(i).integers(0, 250, 20 + 7 * i).tolist() for i in range(N_THREADS)]
    with text_model.session(kv_type="f32", n_ctx=256) as s:
        sequential = [s.generate(p, max_tokens=12).tokens for p in prompts]
    sessions = [text_model.session(kv_type="f32", n_ctx=256) for _ in prompts]
    try:
        parallel = run_in_threads(lambda s, p: s.generate(p, max_tokens=12).tokens, list(zip(sessions, prompts)))
    finally:
        for s in sessions:
            s.close()
    assert parallel == sequential
    assert len({tuple(t) for t in sequential}) > 1
    # one session shared by all the threads: whole generations serialize
    with TextSession(text_model, kv_type="f32", n_ctx=256) as s:
        assert run_in_threads(lambda p: s.generate(p, max_tokens=12).tokens, [(p,) for p in prompts]) == sequential
