"""Speculative decoding on tiny random F32 models (spec/dflash.md §5, §6, §8; spec/mtp.md §2, §7).

The target is a MiMo-V2 MoE checkpoint written by ``moe_fixtures`` (6 layers
mixing full and sliding-window attention, window 8 previous tokens = 9 keys,
SWA sinks, 8 routed experts, 3 MTP layers), its matrices scaled by 4 (exact in
bf16) so that greedy continuations vary instead of repeating one token.  The
DFlash drafters are 2-layer ``dflash_fixtures`` folders (block 4 and 8,
captured layers (0, 2, 5) -- the last one pre-final-norm -- and (0, 2, 3),
window 16 or none).  Everything is converted to F32 and run on the CPU.

What is compared, and against what:

* greedy speculative output against plain greedy output (each plain step's
  top-2 logit gap is checked to exceed 1e-4, re-drawing the prompt otherwise);
* oracle / adversarial / partial drafters (``draft_override``) against an
  acceptance schedule simulated in the test, round by round;
* the KV state after a generation against a fresh plain evaluation of the
  same tokens (logits to 1e-4), and multi-turn ``cache_prompt`` runs against
  fresh sessions;
* the drafters' forward passes against the spec-written torch references
  (tests/reference/dflash_ref.py, mtp_ref.py) computed here from the HF
  folders, and the drafts a running generation makes (incremental, rolled-back
  caches) against drafts computed from scratch;
* stop ids and stop strings inside accepted runs; the context filling up
  mid-round; sessions sharing a drafter across threads;
* sampling: reproducibility, the second token's distribution against its
  exact value computed from the target's logits (chi-square goodness of fit,
  fast), and a chi-square homogeneity test of speculative vs plain sampling
  of two tokens (slow: MIMO_GGML_SLOW=1);
* the typed errors.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

import dflash_fixtures as df
import moe_fixtures as mf
from mimo_ggml.convert.dflash import convert_dflash
from mimo_ggml.convert.mimo2 import convert_mimo2
from mimo_ggml.errors import InvalidArgumentError, ModelLoadError
from mimo_ggml.text import TextModel
from reference.dflash_ref import DFlashReference
from reference.mimo2_ref import Mimo2Reference
from reference.mtp_ref import MtpReference

GAP = 1e-4          # smallest top-2 logit gap a greedy step may have (near-tie guard)
TOL = 1e-4          # logits agreement (F32)
VOCAB = 300
WINDOW = 8          # sliding_window_size of the target: 8 previous tokens
WINDOW_KEYS = WINDOW + 1
N_CTX = 160
N_PLAIN = 40        # plain greedy tokens computed per prompt (the most any test asks for)
N_GEN = 23          # a prime: not a multiple of any block size used here
PROMPT_LENGTHS = (5, 9, 70)  # shorter than the window, about the window, far longer (SWA + drafter windows evict)
LONG = 70

DRAFTERS = {
    "b4": dict(block_size=4, window=16, target_layer_ids=(0, 2, 5), seed=11),
    "b8": dict(block_size=8, window=16, target_layer_ids=(0, 2, 3), seed=12),
    "b4_nowin": dict(block_size=4, window=None, target_layer_ids=(0, 2, 5), seed=13),
}

# session options per variant; "draft" names a DRAFTERS entry or "mtp"
VARIANTS = {
    "dflash_b4": dict(draft="b4", draft_block=4),
    "dflash_b8": dict(draft="b8", draft_block=8),
    "dflash_b8_nbatch8": dict(draft="b8", draft_block=8, n_batch=8),  # SWA ring at its minimum: 8 + 8 slots
    "dflash_nowin": dict(draft="b4_nowin", draft_block=4),
    "dflash_b4_window0": dict(draft="b4", draft_block=4, draft_window=0),
    "dflash_b8_causal": dict(draft="b8", draft_block=8, draft_causal=True),
    "mtp1": dict(draft="mtp", mtp_blocks=1, draft_block=2),
    "mtp2": dict(draft="mtp", mtp_blocks=2, draft_block=3),
    "mtp3": dict(draft="mtp", mtp_blocks=3, draft_block=4),
    "mtp3_pre_norm_nbatch4": dict(draft="mtp", draft_block=4, mtp_hidden="pre_norm", n_batch=4),
}


def block_of(variant: str) -> int:
    """Tokens per verify pass of a variant (MTP: capped at its blocks + 1)."""
    o = VARIANTS[variant]
    if o["draft"] == "mtp":
        return min(o["draft_block"], o.get("mtp_blocks", 3) + 1)
    return o["draft_block"]


# ---------------------------------------------------------------------------------------------
# models


def write_target(folder, geometry=mf.Geometry(), seed=6, tokenizer=False):
    return mf.write_speculative_target(folder, WINDOW, geometry=geometry, seed=seed, tokenizer=tokenizer)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The torch references run on tiny tensors: one thread (on a busy machine, torch's thread pool
    turns 20 ms calls into seconds); restored after this module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("speculative")


@pytest.fixture(scope="module")
def target_folder(root):
    return write_target(root / "target")


@pytest.fixture(scope="module")
def model(target_folder, root):
    out = root / "target-f32.gguf"
    convert_mimo2(target_folder, out, dtype="f32")
    m = TextModel.load(out, device="cpu", n_threads=1)
    assert m.n_mtp == 3 and m.n_layer == 6 and any(m.swa_layers) and not all(m.swa_layers)
    yield m
    m.close()


@pytest.fixture(scope="module")
def drafter_folders(root):
    out = {}
    for name, kw in DRAFTERS.items():
        folder = root / f"dflash-{name}"
        df.write_dflash_checkpoint(folder, num_target_layers=6, std=0.15, **kw)
        out[name] = folder
    return out


@pytest.fixture(scope="module")
def drafters(model, drafter_folders, root):
    out = {}
    for name, folder in drafter_folders.items():
        path = root / f"dflash-{name}.gguf"
        convert_dflash(folder, path, dtype="f32")
        out[name] = model.load_draft(path)
        assert out[name].block_size == DRAFTERS[name]["block_size"]
        assert out[name].target_layers == list(DRAFTERS[name]["target_layer_ids"])
    return out


@pytest.fixture(scope="module")
def ref(target_folder):
    return Mimo2Reference(target_folder, window_keys=WINDOW_KEYS)


def open_session(model, drafters, variant: str, **extra):
    o = dict(VARIANTS[variant], **extra)
    if o["draft"] != "mtp":
        o["draft"] = drafters[o["draft"]]
    return model.session(kv_type="f32", n_ctx=N_CTX, **o)


def plain_session(model, **kw):
    return model.session(kv_type="f32", n_ctx=N_CTX, **kw)


# ---------------------------------------------------------------------------------------------
# plain greedy references with the near-tie guard


def top2_gap(row: np.ndarray) -> float:
    a = np.partition(np.asarray(row, dtype=np.float64), -2)
    return float(a[-1] - a[-2])


def greedy_stepwise(session, prompt, n, banned=()):
    """Plain greedy by hand, one eval per step: (tokens, the smallest top-2 gap met)."""
    session.reset()
    logits = session.eval(prompt)[-1]
    out, gap = [], math.inf
    for _ in range(n):
        row = logits.astype(np.float64).copy()
        row[list(banned)] = -np.inf
        gap = min(gap, top2_gap(row))
        out.append(int(np.argmax(row)))
        logits = session.eval([out[-1]])[-1]
    return out, gap


def random_ids(seed: int, n: int, vocab: int = VOCAB) -> list[int]:
    return [int(x) for x in np.random.default_rng(seed).integers(0, vocab, n)]


def tie_free_prompt(session, length, n, first_seed, banned=(), vocab=VOCAB, tries=20, accept=None):
    """The first prompt (seeds first_seed, first_seed + 1, ...) whose plain greedy run of n tokens has
    every top-2 gap above GAP (and passes ``accept(tokens)``); returns (prompt, tokens)."""
    for seed in range(first_seed, first_seed + tries):
        prompt = random_ids(seed, length, vocab)
        tokens, gap = greedy_stepwise(session, prompt, n, banned)
        if gap > GAP and (accept is None or accept(tokens)):
            return prompt, tokens
    raise AssertionError(f"no prompt of {length} tokens without a near-tie in {tries} seeds")


@pytest.fixture(scope="module")
def cases(model):
    """{prompt length: (prompt, the first N_PLAIN plain greedy tokens)}."""
    s = plain_session(model)
    out = {L: tie_free_prompt(s, L, N_PLAIN, 1000 * L) for L in PROMPT_LENGTHS}
    for prompt, tokens in out.values():
        # the plain generator agrees with the step-by-step argmax (what the speculative runs are held to)
        assert s.generate(prompt, max_tokens=N_PLAIN).tokens == tokens
        assert len(set(tokens)) > N_PLAIN // 4, "the random model repeats itself; the checks would prove little"
    s.close()
    return out


# ---------------------------------------------------------------------------------------------
# driving the native generator with a drafter override


def run_native(session, prompt, max_tokens, override=None, stop=None, **kw):
    gen = session._native.generator(list(prompt), max_tokens, temperature=0.0, stop=stop,
                                    draft_override=override, **kw)
    tokens = []
    while (step := gen.next()) is not None:
        tok, _lp, is_stop = step
        if is_stop:
            break
        tokens.append(int(tok))
    return tokens, gen.finish_reason, gen.draft_stats


def wrong(t: int) -> int:
    return (t + 1) % VOCAB


class Override:
    """A draft override replaying ``seq`` (prompt + plain greedy continuation): ``mode`` "oracle"
    proposes the target's own choices, "adversarial" a different token first, "partial" keeps
    ``start % B`` correct drafts then a wrong one, "real" leaves the drafter's proposals.  Records
    every round's (start, the drafter's own proposals)."""

    def __init__(self, seq, mode, block):
        self.seq, self.mode, self.block = list(seq), mode, block
        self.rounds: list[tuple[int, list[int]]] = []

    def good(self, start: int) -> int:
        return {"oracle": self.block, "adversarial": 0, "partial": start % self.block}[self.mode]

    def __call__(self, drafts, start):
        drafts = [int(d) for d in drafts]
        self.rounds.append((int(start), drafts))
        if self.mode == "real":
            return drafts
        truth = self.seq[start + 1 : start + 1 + len(drafts)]
        assert len(truth) == len(drafts), "a round drafted past the budget"
        j = self.good(start)
        return [t if i < j else wrong(t) for i, t in enumerate(truth)]


def simulate(n_prompt: int, max_tokens: int, block: int, good) -> dict:
    """The round schedule spec dflash.md §5.1 implies: the first token comes from the prompt's logits;
    each round drafts k = min(B - 1, budget left - 1), accepts a = min(good(start), k) and emits a + 1."""
    starts, ks = [], []
    proposed_at, accepted_at = [0] * (block - 1), [0] * (block - 1)
    start, emitted = n_prompt, 1
    while emitted < max_tokens:
        k = min(block - 1, max_tokens - emitted - 1)
        a = min(good(start), k)
        starts.append(start)
        ks.append(k)
        for i in range(k):
            proposed_at[i] += 1
            accepted_at[i] += i < a
        emitted += a + 1
        start += a + 1
    return dict(starts=starts, ks=ks, rounds=len(starts), proposed=sum(ks), accepted=sum(accepted_at),
                proposed_by_position=proposed_at, accepted_by_position=accepted_at)


# ---------------------------------------------------------------------------------------------
# 1. greedy equivalence (dflash.md §8.1, mtp.md §7.1)


@pytest.mark.parametrize("length", PROMPT_LENGTHS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_greedy_output_is_plain_greedy(model, drafters, cases, variant, length):
    prompt, plain = cases[length]
    B = block_of(variant)
    with open_session(model, drafters, variant) as s:
        assert s.draft == ("mtp" if VARIANTS[variant]["draft"] == "mtp" else "dflash")
        r = s.generate(prompt, max_tokens=N_GEN)
        assert r.tokens == plain[:N_GEN]
        assert r.finish_reason == "length"
        st = r.draft_stats
        assert st is not None
        assert len(st["proposed_by_position"]) == B - 1 == len(st["accepted_by_position"])
        assert sum(st["proposed_by_position"]) == st["proposed"] and sum(st["accepted_by_position"]) == st["accepted"]
        assert st["accepted"] <= st["proposed"]
        # every round emits its accepted drafts plus one target token; the first token comes from the prompt
        assert st["rounds"] >= math.ceil((N_GEN - 1) / B)
        assert st["accepted"] + st["rounds"] == N_GEN - 1
        assert st["mean_accepted_length"] == pytest.approx((N_GEN - 1) / st["rounds"])
        assert s.n_past == len(prompt) + N_GEN - 1
        # a second call starts afresh and gives the same tokens
        assert s.generate(prompt, max_tokens=N_GEN - 4).tokens == plain[: N_GEN - 4]


def test_mtp_block_is_capped_at_its_blocks(model, cases):
    prompt, plain = cases[9]
    with model.session(kv_type="f32", n_ctx=N_CTX, draft="mtp", draft_block=8) as s:
        r = s.generate(prompt, max_tokens=N_GEN)
        assert r.tokens == plain[:N_GEN]
        assert len(r.draft_stats["proposed_by_position"]) == 3  # 3 MTP blocks: at most 3 drafts a round
    with model.session(kv_type="f32", n_ctx=N_CTX, draft="mtp", mtp_blocks=2, draft_block=8) as s:
        r = s.generate(prompt, max_tokens=N_GEN)
        assert r.tokens == plain[:N_GEN]
        assert len(r.draft_stats["proposed_by_position"]) == 2


@pytest.mark.parametrize("variant", ["dflash_b8", "mtp3"])
def test_greedy_output_with_the_default_f16_cache(model, drafters, variant):
    """kv_type f16 (the default) on target and drafter: still the plain f16 session's output."""
    p = model.session(n_ctx=N_CTX)
    assert p.kv_type == "f16"
    prompt, plain = tie_free_prompt(p, LONG, N_GEN, 77)
    o = dict(VARIANTS[variant])
    if o["draft"] != "mtp":
        o["draft"] = drafters[o["draft"]]
    with model.session(n_ctx=N_CTX, **o) as s:
        assert s.generate(prompt, max_tokens=N_GEN).tokens == plain
    p.close()


@pytest.mark.parametrize("mode", ["real", "oracle"])
@pytest.mark.parametrize("variant", ["dflash_b8", "mtp3"])
def test_context_full_inside_a_round(model, drafters, cases, variant, mode):
    """A context that fills up mid-round: the same tokens and finish reason as plain decoding."""
    prompt, plain = cases[9]
    for n_ctx in (len(prompt) + 2, len(prompt) + 6, len(prompt) + 13):
        with model.session(kv_type="f32", n_ctx=n_ctx) as p:
            rp = p.generate(prompt, max_tokens=N_PLAIN)
        assert rp.tokens == plain[: len(rp.tokens)] and rp.finish_reason == "length"
        o = dict(VARIANTS[variant])
        if o["draft"] != "mtp":
            o["draft"] = drafters[o["draft"]]
        with model.session(kv_type="f32", n_ctx=n_ctx, **o) as s:
            ov = Override(prompt + plain, mode, block_of(variant))
            tokens, finish, _ = run_native(s, prompt, N_PLAIN, override=ov)
            assert (tokens, finish) == (rp.tokens, "length"), n_ctx
            assert s.n_past <= n_ctx


def test_sessions_share_a_drafter_across_threads(model, drafters, cases):
    import threading

    results, errors = {}, []

    def work(key, variant, length):
        try:
            with open_session(model, drafters, variant) as s:
                results[key] = [s.generate(cases[length][0], max_tokens=N_GEN).tokens for _ in range(3)]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    jobs = [("a", "dflash_b4", LONG), ("b", "dflash_b4", 9), ("c", "mtp3", LONG), ("d", "mtp3", 5)]
    threads = [threading.Thread(target=work, args=j) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for key, _variant, length in jobs:
        assert results[key] == [cases[length][1][:N_GEN]] * 3


# ---------------------------------------------------------------------------------------------
# 2. oracle, adversarial and partial drafters (dflash.md §8.2-3, mtp.md §7.2)


ORACLE_VARIANTS = ["dflash_b4", "dflash_b8", "dflash_b8_nbatch8", "dflash_nowin", "mtp1", "mtp2", "mtp3"]


@pytest.mark.parametrize("mode", ["oracle", "adversarial", "partial"])
@pytest.mark.parametrize("variant", ORACLE_VARIANTS)
def test_overridden_drafts_follow_the_schedule(model, drafters, cases, variant, mode):
    prompt, plain = cases[LONG]
    B = block_of(variant)
    ov = Override(prompt + plain, mode, B)
    with open_session(model, drafters, variant) as s:
        tokens, finish, st = run_native(s, prompt, N_GEN, override=ov)
        assert tokens == plain[:N_GEN]
        assert finish == "length"
        want = simulate(len(prompt), N_GEN, B, ov.good)
        assert [r[0] for r in ov.rounds] == [st_ for st_, k in zip(want["starts"], want["ks"]) if k > 0]
        assert [len(r[1]) for r in ov.rounds] == [k for k in want["ks"] if k > 0]
        for key in ("rounds", "proposed", "accepted", "proposed_by_position", "accepted_by_position"):
            assert st[key] == want[key], key
        if mode == "oracle":
            assert st["accepted_by_position"] == st["proposed_by_position"]
            full = (N_GEN - 1) // B  # rounds of B tokens; the last round is shorter
            assert st["rounds"] == full + ((N_GEN - 1) % B > 0)
            assert st["mean_accepted_length"] == pytest.approx((N_GEN - 1) / st["rounds"])
            assert st["mean_accepted_length"] > B - 1
            assert all(r == 1.0 for r in st["acceptance_by_position"])
        elif mode == "adversarial":
            assert st["accepted"] == 0
            assert st["rounds"] == N_GEN - 1  # one round per token after the first (which the prompt gives)
            assert st["mean_accepted_length"] == 1.0
        else:
            assert 0 < st["accepted"] < st["proposed"]
        assert s.n_past == len(prompt) + N_GEN - 1


# ---------------------------------------------------------------------------------------------
# 3. rollback consistency (dflash.md §8.4, §6.3)


@pytest.mark.parametrize("mode", ["real", "oracle", "adversarial", "partial"])
@pytest.mark.parametrize("variant", ["dflash_b4", "dflash_b8_nbatch8", "mtp3", "mtp3_pre_norm_nbatch4"])
def test_kv_after_generation_equals_a_fresh_evaluation(model, drafters, cases, variant, mode):
    prompt, plain = cases[LONG]
    B = block_of(variant)
    fresh = plain_session(model)
    with open_session(model, drafters, variant) as s:
        for n in (1, 2, 3, 5, 8, 9, 13, 17):  # ends at different points of a round
            ov = Override(prompt + plain, mode, B)
            tokens, finish, _ = run_native(s, prompt, n, override=ov)
            assert tokens == plain[:n]
            assert s.n_past == len(prompt) + n - 1  # the last token is never fed (lazy, as plain decoding)
            got = s.eval([tokens[-1]])[-1]
            fresh.reset()
            want = fresh.eval(prompt + tokens)[-1]
            np.testing.assert_allclose(got, want, rtol=0, atol=TOL, err_msg=f"max_tokens {n}")
            s.reset()
    fresh.close()


@pytest.mark.parametrize("back", [0, 4])
@pytest.mark.parametrize("variant", ["dflash_b4", "dflash_b8", "mtp3"])
def test_multi_turn_with_cache_prompt(model, drafters, cases, variant, back):
    prompt, plain = cases[LONG]
    n1, n2 = 12, 15
    fresh = plain_session(model)
    # the second turn: the first turn's output (less `back` tokens) and a few new ids, tie-free
    for seed in range(50, 70):
        q = prompt + plain[: n1 - back] + random_ids(seed, 5)
        want, gap = greedy_stepwise(fresh, q, n2)
        if gap > GAP:
            break
    else:
        raise AssertionError("no tie-free second turn")
    with open_session(model, drafters, variant) as s:
        r1 = s.generate(prompt, max_tokens=n1)
        assert r1.tokens == plain[:n1]
        r2 = s.generate(q, max_tokens=n2, cache_prompt=True)
        assert r2.tokens == want
        # the cache held prompt + r1.tokens[:-1]; the common prefix with q was kept (a truncation when back > 0)
        held = prompt + plain[: n1 - 1]
        common = next((i for i, (a, b) in enumerate(zip(held, q)) if a != b), min(len(held), len(q)))
        assert common >= len(prompt) + n1 - 1 - back
        assert r2.timings["cached_tokens"] == common
        assert s.n_past == len(q) + n2 - 1
        got = s.eval([want[-1]])[-1]
        fresh.reset()
        np.testing.assert_allclose(got, fresh.eval(q + want)[-1], rtol=0, atol=TOL)
        # and a fresh speculative session agrees with the cached one
        with open_session(model, drafters, variant) as s2:
            assert s2.generate(q, max_tokens=n2).tokens == want
    fresh.close()


# ---------------------------------------------------------------------------------------------
# 4. the DFlash drafter's forward against the torch reference (dflash.md §2-§3, Corrections)


def dflash_features(ref, tokens, layer_ids) -> np.ndarray:
    """Context features of positions 0..n-2: the captured layers' pre-norm residual rows, concatenated
    in target_layer_ids order (spec §2 and Corrections 1)."""
    hs = ref.hidden_states(tokens[:-1], layer_ids)
    return np.concatenate([hs[i] for i in layer_ids], axis=1)


DFLASH_REF_CASES = [
    # (drafter, prompt length, session options, DFlashReference options, k)
    ("b4", 10, {}, {}, None),                      # shorter than the drafter window (16)
    ("b4", 45, {}, {}, None),                      # longer: context keys leave the window
    ("b8", 12, {}, {}, None),
    ("b8", 45, {}, {}, None),
    ("b8", 45, {}, {}, 3),                         # a short block: 1 + 3 rows
    ("b8", 45, {"draft_causal": True}, {"causal": True}, None),
    ("b4", 10, {"draft_causal": True}, {"causal": True}, None),
    ("b4", 45, {"draft_rope_base_ctx": 5e6}, {"rope_base_ctx": 5e6}, None),
    ("b4", 45, {"draft_rope_base_ctx": 5e6, "draft_rope_base_block": 5e5},
     {"rope_base_ctx": 5e6, "rope_base_block": 5e5}, None),
    ("b4_nowin", 45, {}, {}, None),                # a window-less drafter file
    ("b4", 45, {"draft_window": 0}, {"window": None}, None),
    ("b4", 45, {"draft_window": 6}, {"window": 6}, None),
    ("b4", 45, {"draft_window": 40}, {"window": 40}, None),  # wider than the file's window
]


@pytest.mark.parametrize("name,length,sopts,ropts,k", DFLASH_REF_CASES)
def test_dflash_propose_matches_reference(model, drafters, drafter_folders, ref, name, length, sopts, ropts, k):
    B = DRAFTERS[name]["block_size"]
    ids = list(DRAFTERS[name]["target_layer_ids"])
    dref = DFlashReference(drafter_folders[name], ref.embedding(), ref.lm_head(), **ropts)
    with model.session(kv_type="f32", n_ctx=N_CTX, draft=drafters[name], draft_block=B, **sopts) as s:
        for seed in range(7 * length, 7 * length + 20):
            tokens = random_ids(seed, length)
            want = dref.block_logits(dflash_features(ref, tokens, ids), tokens[-1], n_proposals=k)
            if min(top2_gap(row) for row in want) > GAP:
                break
        else:
            raise AssertionError("no tie-free block")
        props, logits = s.propose(tokens, k=k)
        assert logits.shape == (B - 1 if k is None else k, VOCAB)
        scale = float(np.abs(want).max())
        assert scale > 0.5  # logits of some size: the tolerance below means something
        np.testing.assert_allclose(logits, want, rtol=0, atol=TOL)  # absolute; logits of size ~5 (max seen 3e-5)
        assert props == [int(i) for i in np.argmax(want, axis=-1)]
        assert s.n_past == length - 1


def test_dflash_options_change_the_drafts(model, drafters, drafter_folders, ref):
    """The knobs compared above are live: each changes the logits (else their checks prove nothing)."""
    tokens = random_ids(3, 45)
    base = None
    for opts in ({}, {"draft_causal": True}, {"draft_rope_base_ctx": 5e6}, {"draft_window": 0}):
        with model.session(kv_type="f32", n_ctx=N_CTX, draft=drafters["b8"], draft_block=8, **opts) as s:
            logits = s.propose(tokens)[1]
        if base is None:
            base = logits
        else:
            assert np.abs(logits - base).max() > 1e-3, opts


# ---------------------------------------------------------------------------------------------
# 5. MTP drafting against the torch reference (mtp.md §1.2, §2.1)


@pytest.fixture(scope="module")
def mtp_refs(target_folder):
    return {h: MtpReference(target_folder, window_keys=WINDOW_KEYS, hidden=h) for h in ("post_norm", "pre_norm")}


MTP_REF_CASES = [
    # (prompt length, mtp_hidden, mtp_blocks K)
    (5, "post_norm", 3),
    (30, "post_norm", 3),   # longer than the SWA window of the MTP layers
    (30, "pre_norm", 3),
    (12, "post_norm", 2),
    (30, "post_norm", 1),
]


@pytest.mark.parametrize("length,hidden,K", MTP_REF_CASES)
def test_mtp_propose_matches_reference(model, mtp_refs, length, hidden, K):
    mref = mtp_refs[hidden]
    with model.session(kv_type="f32", n_ctx=N_CTX, draft="mtp", mtp_blocks=K, draft_block=K + 1,
                       mtp_hidden=hidden) as s:
        for seed in range(11 * length, 11 * length + 20):
            tokens = random_ids(seed, length)
            s_ = len(tokens) - 1
            hid = mref.backbone_hidden(tokens[:-1])
            own = mref.draft_logits(hid, tokens[:-1], s_, tokens[-1], K)
            if min(top2_gap(row) for row in own) > GAP:
                break
        else:
            raise AssertionError("no tie-free MTP draft")
        props, logits = s.propose(tokens)
        assert logits.shape == (K, VOCAB)
        want = mref.draft_logits(hid, tokens[:-1], s_, tokens[-1], K, drafts=props)  # teacher-forced on ours
        scale = float(np.abs(want).max())
        assert scale > 0.5
        np.testing.assert_allclose(logits, want, rtol=0, atol=TOL)  # absolute; logits of size ~5 (max seen 3e-5)
        assert props == mref.draft(hid, tokens[:-1], s_, tokens[-1], K)


def test_mtp_hidden_choice_is_live(model):
    tokens = random_ids(5, 30)
    out = {}
    for h in ("post_norm", "pre_norm"):
        with model.session(kv_type="f32", n_ctx=N_CTX, draft="mtp", draft_block=4, mtp_hidden=h) as s:
            out[h] = s.propose(tokens)[1]
    assert np.abs(out["post_norm"] - out["pre_norm"]).max() > 1e-3


# drafter determinism / exact caches (dflash.md §8.5, mtp.md §7.3): the drafts a generation makes from its
# incrementally kept, rolled-back caches equal the drafts proposed from scratch on the committed tokens


@pytest.mark.parametrize("mode", ["real", "partial"])
@pytest.mark.parametrize("variant", ["dflash_b4", "dflash_b8_nbatch8", "dflash_nowin", "mtp2", "mtp3",
                                     "mtp3_pre_norm_nbatch4"])
def test_incremental_drafts_equal_drafts_from_scratch(model, drafters, cases, variant, mode):
    prompt, plain = cases[LONG]
    seq = prompt + plain
    ov = Override(seq, mode, block_of(variant))
    with open_session(model, drafters, variant) as s:
        tokens, _, st = run_native(s, prompt, 30, override=ov)
        assert tokens == plain[:30]
    assert len(ov.rounds) >= 4
    if mode == "partial":
        assert 0 < st["accepted"] < st["proposed"]
    with open_session(model, drafters, variant) as f:
        for start, drafts in ov.rounds:
            props, logits = f.propose(seq[: start + 1], k=len(drafts))
            for i, (a, b) in enumerate(zip(drafts, props)):
                if a != b:  # only a float near-tie may flip an argmax; later MTP drafts depend on it
                    assert top2_gap(logits[i]) < GAP, f"round at {start}: drafts {drafts} vs from scratch {props}"
                    break


# ---------------------------------------------------------------------------------------------
# 6. stop handling (dflash.md §8.7)


def stop_position(plain, B, where="inside", lo=5, hi=30):
    """An index j whose token first appears there and falls strictly inside an oracle round
    (``where="inside"``) or on its bonus slot (``"bonus"``): rounds cover output indices
    1 + B*r .. B + B*r, the bonus at the end; ``"first"``: index 0 (from the prompt's logits)."""
    if where == "first":
        return 0
    for j in range(lo, hi):
        if plain[j] not in plain[:j] and ((j - 1) % B < B - 1) == (where == "inside"):
            return j
    raise AssertionError("no usable stop id")


class OverridingNative:
    """session._native with a draft_override put into every generator() call (so that the Python
    generate loop, its stop strings and its truncation run on an oracle drafter)."""

    def __init__(self, native, override):
        self._native, self._override = native, override

    def generator(self, *args, **kw):
        return self._native.generator(*args, draft_override=self._override, **kw)

    def __getattr__(self, name):
        return getattr(self._native, name)


@pytest.mark.parametrize("where", ["inside", "bonus", "first"])
@pytest.mark.parametrize("variant", ["dflash_b8", "mtp3"])
def test_stop_id_inside_an_accepted_run(model, drafters, cases, variant, where):
    prompt, plain = cases[9]
    B = block_of(variant)
    j = stop_position(plain, B, where)
    stop = plain[j]
    with plain_session(model) as p:
        rp = p.generate(prompt, max_tokens=N_PLAIN, stop=stop)
        assert rp.tokens == plain[:j] and rp.finish_reason == "stop"
        plain_past = p.n_past
    assert plain_past == len(prompt) + j  # the tokens before the stop id were fed, the stop id never
    fresh = plain_session(model)
    with open_session(model, drafters, variant) as s:
        ov = Override(prompt + plain, "oracle", B)
        tokens, finish, st = run_native(s, prompt, N_PLAIN, override=ov, stop=[stop])
        assert tokens == plain[:j] and finish == "stop"
        assert st["accepted"] == st["proposed"] and st["rounds"] == math.ceil(j / B)
        if where == "inside":  # the last round verified drafts past the stop id
            assert ov.rounds[-1][0] + len(ov.rounds[-1][1]) > len(prompt) + j
        assert s.n_past == plain_past
        # the KV holds exactly prompt + tokens: feeding the stop id gives the fresh logits
        got = s.eval([stop])[-1]
        np.testing.assert_allclose(got, fresh.eval(prompt + plain[: j + 1])[-1], rtol=0, atol=TOL)
        # the Python loop on the same drafts
        s._native = OverridingNative(s._native, Override(prompt + plain, "oracle", B))
        r = s.generate(prompt, max_tokens=N_PLAIN, stop=[stop])
        assert r.tokens == plain[:j] and r.finish_reason == "stop"
        assert r.draft_stats["accepted"] == r.draft_stats["proposed"]
        assert s.n_past == plain_past
    fresh.close()


@pytest.fixture(scope="module")
def tok_model(root):
    folder = write_target(root / "target-tok", tokenizer=True)
    out = root / "target-tok-f32.gguf"
    assert convert_mimo2(folder, out, dtype="f32").tokenizer_written
    m = TextModel.load(out, device="cpu", n_threads=1)
    assert m.has_tokenizer
    yield m
    m.close()


@pytest.mark.parametrize("name", ["b8", "mtp"])
def test_stop_string_inside_an_accepted_run(tok_model, drafter_folders, root, name):
    m = tok_model
    banned = m._banned
    with plain_session(m) as p:
        # a prompt whose plain run is tie-free and does not end early at an end token
        prompt, plain = tie_free_prompt(p, 9, 30, 300, banned=banned, tries=40,
                                        accept=lambda t: not set(t) & set(m.stop_ids()))
        assert p.generate(prompt, max_tokens=30).tokens == plain
    B = 8 if name == "b8" else 4
    detok = m.tokenizer.decode
    # a stop string spelled by token j alone, inside an oracle round, not seen before it
    for j in range(5, 25):
        before = detok(plain[:j])
        piece = detok(plain[: j + 1])[len(before):]
        inside = (j - 1) % B < B - 1
        if inside and piece.strip() and "\ufffd" not in piece and (before + piece).find(piece) == len(before):
            break
    else:
        raise AssertionError("no usable stop string")
    if name == "b8":
        path = root / "dflash-b8.gguf"
        if not path.exists():
            convert_dflash(drafter_folders["b8"], path, dtype="f32")
        draft = m.load_draft(path)
        opts = dict(draft=draft, draft_block=8)
    else:
        opts = dict(draft="mtp", draft_block=4)
    fresh = plain_session(m)
    with m.session(kv_type="f32", n_ctx=N_CTX, **opts) as s:
        ov = Override(prompt + plain, "oracle", B)
        s._native = OverridingNative(s._native, ov)
        r = s.generate(prompt, max_tokens=30, stop=piece)
        assert r.finish_reason == "stop"
        assert r.text == before
        assert r.tokens == plain[: j + 1]  # the tokens that spelled the stop string are returned
        assert r.draft_stats["accepted"] == r.draft_stats["proposed"]  # the round ran past the stop string
        assert ov.rounds[-1][0] + len(ov.rounds[-1][1]) > len(prompt) + j
        # the session cut what the round ran past: it holds the prompt and the returned tokens
        assert s.n_past == len(prompt) + len(r.tokens)
        got = s.eval([plain[j + 1]])[-1]
        np.testing.assert_allclose(got, fresh.eval(prompt + plain[: j + 2])[-1], rtol=0, atol=TOL)
        # streaming gives the same text
        s._native._override = Override(prompt + plain, "oracle", B)
        stream = s.generate(prompt, max_tokens=30, stop=piece, stream=True)
        assert "".join(stream) == before and stream.result.tokens == plain[: j + 1]
        assert s.n_past == len(prompt) + j + 1
        # a cached second turn continues from that state
        s._native = s._native._native
        q = prompt + plain[: j + 2]
        r2 = s.generate(q, max_tokens=6, cache_prompt=True)
        assert r2.timings["cached_tokens"] == len(q) - 1
        assert r2.tokens == plain[j + 2 : j + 8]
    fresh.close()


# ---------------------------------------------------------------------------------------------
# 7. sampling (dflash.md §5.2, §8.8)


SMALL_VOCAB = 16


@pytest.fixture(scope="module")
def small(root):
    """A vocab-16 target (3 MTP blocks) and a DFlash drafter for it (mask id 10)."""
    folder = write_target(root / "small", geometry=mf.Geometry(vocab=SMALL_VOCAB), seed=8)
    out = root / "small-f32.gguf"
    convert_mimo2(folder, out, dtype="f32")
    m = TextModel.load(out, device="cpu", n_threads=1)
    dfolder = root / "small-dflash"
    df.write_dflash_checkpoint(dfolder, block_size=4, window=16, target_layer_ids=(0, 2, 5), num_target_layers=6,
                               mask_token_id=10, target_hidden=64, seed=21, std=0.3)
    dpath = root / "small-dflash.gguf"
    convert_dflash(dfolder, dpath, dtype="f32", target_vocab=SMALL_VOCAB)
    d = m.load_draft(dpath)
    yield m, d
    m.close()


SMALL_PROMPT = [3, 7, 1, 12, 5, 9]


def small_session(small, kind, **kw):
    m, d = small
    if kind == "plain":
        return m.session(kv_type="f32", n_ctx=64, **kw)
    return m.session(kv_type="f32", n_ctx=64, draft=d if kind == "dflash" else "mtp", draft_block=4, **kw)


@pytest.mark.parametrize("kind", ["dflash", "mtp"])
def test_sampling_is_reproducible(small, kind):
    with small_session(small, kind) as s:
        a = s.generate(SMALL_PROMPT, max_tokens=20, temperature=1.0, seed=7)
        b = s.generate(SMALL_PROMPT, max_tokens=20, temperature=1.0, seed=7)
        assert a.tokens == b.tokens and len(a.tokens) == 20
        assert all(0 <= t < SMALL_VOCAB for t in a.tokens)
        assert a.draft_stats["rounds"] > 0 and a.draft_stats["proposed"] > 0
        others = [s.generate(SMALL_PROMPT, max_tokens=20, temperature=1.0, seed=x).tokens for x in (8, 9, 10)]
        assert any(o != a.tokens for o in others)  # the seed matters
    with small_session(small, kind) as s2:  # and another session gives the same sample
        assert s2.generate(SMALL_PROMPT, max_tokens=20, temperature=1.0, seed=7).tokens == a.tokens


def softmax(x) -> np.ndarray:
    e = np.exp(np.asarray(x, dtype=np.float64) - np.max(x))
    return e / e.sum()


def chi2_fit(counts, probs, min_expected: float = 5.0) -> tuple[float, int]:
    """Goodness-of-fit chi-square of ``counts`` against exact ``probs``; cells expected below
    ``min_expected`` pooled into one.  Returns (statistic, degrees of freedom)."""
    counts, probs = np.asarray(counts, dtype=np.float64), np.asarray(probs, dtype=np.float64)
    e = probs * counts.sum()
    big = e >= min_expected
    O = list(counts[big]) + ([counts[~big].sum()] if (~big).any() else [])
    E = list(e[big]) + ([e[~big].sum()] if (~big).any() else [])
    O, E = np.array(O), np.array(E)
    return float(((O - E) ** 2 / E).sum()), len(E) - 1


N_FAST = 800  # seeded runs (about 3 ms each)


@pytest.mark.parametrize("kind,fixed", [("dflash", True), ("dflash", False), ("mtp", False)])
def test_second_token_follows_the_exact_target_distribution(small, kind, fixed):
    """max_tokens 3: token 1 comes from the prompt's logits, token 2 out of the first round (one
    draft, then the rejection test).  Its exact distribution under plain sampling is
    sum over t1 of P(t1) P(t2 | t1), computed here from the target's logits; the speculative samples
    must follow it.  ``fixed``: the drafts are replaced by one fixed token, the one the drafter itself
    favours (so that its own samples often coincide with the override; point-mass drafts, §5.2)."""
    with small_session(small, "plain") as p:
        p0 = softmax(p.eval(SMALL_PROMPT)[-1])
        p1 = np.zeros((SMALL_VOCAB, SMALL_VOCAB))
        for t in range(SMALL_VOCAB):
            p.reset()
            p1[t] = softmax(p.eval(SMALL_PROMPT + [t])[-1])
    exact = p0 @ p1
    with small_session(small, kind) as s:
        override = None
        if fixed:
            q = np.stack([softmax(s.propose(SMALL_PROMPT + [t], k=1)[1][0]) for t in range(SMALL_VOCAB)])
            c = int(np.argmax(p0 @ q))
            assert (p0 @ q)[c] > 0.1  # the drafter's own sample is c that often
            override = lambda drafts, start: [c] * len(drafts)  # noqa: E731
        counts = np.zeros(SMALL_VOCAB, dtype=np.int64)
        accepted = 0
        for seed in range(N_FAST):
            s.reset()
            gen = s._native.generator(SMALL_PROMPT, 3, temperature=1.0, seed=seed, draft_override=override)
            toks = []
            while (step := gen.next()) is not None:
                toks.append(step[0])
            counts[toks[1]] += 1
            accepted += gen.draft_stats["accepted"]
    assert 0.05 * N_FAST < accepted < 0.95 * N_FAST  # both the accept and the reject branch ran
    if fixed:
        z = (counts[c] / N_FAST - exact[c]) / math.sqrt(exact[c] * (1 - exact[c]) / N_FAST)
        assert abs(z) < 4.5, f"P(token 2 = {c}): {counts[c] / N_FAST:.3f} sampled, {exact[c]:.3f} exact (z = {z:.1f})"
    stat, dof = chi2_fit(counts, exact)
    assert chi2_pvalue(stat, dof) > 1e-4, (stat, dof, counts.tolist(), np.round(exact * N_FAST, 1).tolist())


def chi2_homogeneity(a: np.ndarray, b: np.ndarray, min_expected: float = 5.0) -> tuple[float, int]:
    """Two-sample chi-square statistic over count vectors a, b (same total or not), cells with a pooled
    expected count below ``min_expected`` merged into one; returns (statistic, degrees of freedom)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = a.sum(), b.sum()
    tot = a + b
    exp_small = np.minimum(tot * na, tot * nb) / (na + nb)
    big = exp_small >= min_expected
    cols_a = list(a[big]) + ([a[~big].sum()] if (~big).any() else [])
    cols_b = list(b[big]) + ([b[~big].sum()] if (~big).any() else [])
    A, Bc = np.array(cols_a), np.array(cols_b)
    T = A + Bc
    keep = T > 0
    A, Bc, T = A[keep], Bc[keep], T[keep]
    ea, eb = T * na / (na + nb), T * nb / (na + nb)
    stat = float(((A - ea) ** 2 / ea).sum() + ((Bc - eb) ** 2 / eb).sum())
    return stat, len(T) - 1


def chi2_pvalue(stat: float, dof: int) -> float:
    """Upper tail of chi-square(dof) by the Wilson-Hilferty cube-root normal approximation."""
    if dof <= 0:
        return 1.0
    z = ((stat / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / math.sqrt(2 / (9 * dof))
    return 0.5 * math.erfc(z / math.sqrt(2))


def test_chi2_helpers():
    # Wilson-Hilferty against known quantiles: chi2(10) 95% = 18.307, chi2(50) 99% = 76.154
    assert chi2_pvalue(18.307, 10) == pytest.approx(0.05, abs=0.003)
    assert chi2_pvalue(76.154, 50) == pytest.approx(0.01, abs=0.001)
    rng = np.random.default_rng(0)
    same = chi2_homogeneity(rng.multinomial(5000, [0.5, 0.3, 0.2]), rng.multinomial(5000, [0.5, 0.3, 0.2]))
    diff = chi2_homogeneity(rng.multinomial(5000, [0.5, 0.3, 0.2]), rng.multinomial(5000, [0.42, 0.38, 0.2]))
    assert chi2_pvalue(*same) > 1e-3 and chi2_pvalue(*diff) < 1e-6


def joint_counts(session, n_runs, max_tokens, idx=(1, 2), temperature_=1.0) -> np.ndarray:
    counts = np.zeros(SMALL_VOCAB ** len(idx), dtype=np.int64)
    for seed in range(n_runs):
        t = session.generate(SMALL_PROMPT, max_tokens=max_tokens, temperature=temperature_, seed=seed).tokens
        cell = 0
        for i in idx:
            cell = cell * SMALL_VOCAB + t[i]
        counts[cell] += 1
    return counts


N_SAMPLED = 10000  # seeded runs per distribution (about 3 ms each here)


@pytest.fixture(scope="module")
def plain_joint(small):
    """Plain sampling's joint counts of generated tokens 2 and 3, at temperature 1 and (the power
    check) 1.25."""
    with small_session(small, "plain") as p:
        return joint_counts(p, N_SAMPLED, 4), joint_counts(p, N_SAMPLED, 4, temperature_=1.25)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("MIMO_GGML_SLOW"), reason="slow: set MIMO_GGML_SLOW=1")
@pytest.mark.parametrize("kind,override", [("dflash", False), ("mtp", False), ("dflash", True)])
def test_speculative_sampling_keeps_the_distribution(small, plain_joint, kind, override):
    """Joint distribution of generated tokens 2 and 3 (the first round drafts 2 tokens after token 1,
    so both come out of the rejection test): speculative vs plain, N_SAMPLED seeded runs each.  With
    ``override`` the drafts are replaced by fixed tokens (point-mass drafts, the greedy-draft
    acceptance of §5.2)."""
    plain, hot = plain_joint
    with small_session(small, kind) as s:
        if override:
            s._native = OverridingNative(s._native, lambda drafts, start: [(start * 5 + i) % SMALL_VOCAB
                                                                            for i in range(len(drafts))])
        spec = joint_counts(s, N_SAMPLED, 4)
        assert 0 < s.generate(SMALL_PROMPT, max_tokens=4, temperature=1.0, seed=1).draft_stats["proposed"]
    stat, dof = chi2_homogeneity(plain, spec)
    assert dof >= 10  # the distribution is spread over enough cells to test something
    assert chi2_pvalue(stat, dof) > 1e-4, (stat, dof)
    # the test has power: plain sampling at temperature 1.25 is told apart from temperature 1
    assert chi2_pvalue(*chi2_homogeneity(plain, hot)) < 1e-4


# ---------------------------------------------------------------------------------------------
# 8. typed errors


def test_mtp_without_blocks_is_a_load_error(model, target_folder, root):
    m = TextModel.load(model.model_path, device="cpu", n_threads=1, mtp=False)
    assert m.n_mtp == 0
    with pytest.raises(ModelLoadError, match=r"(?s)MTP.*convert"):
        m.session(draft="mtp")
    m.close()
    out = root / "target-nomtp.gguf"
    convert_mimo2(target_folder, out, dtype="f32", mtp=False)
    m = TextModel.load(out, device="cpu", n_threads=1)
    assert m.n_mtp == 0
    with pytest.raises(ModelLoadError, match=r"(?s)MTP.*convert"):
        m.session(draft="mtp")
    with m.session(kv_type="f32", n_ctx=32) as p:  # the file itself is fine
        assert p.generate([1, 2, 3], max_tokens=2).finish_reason == "length"
    m.close()


@pytest.mark.parametrize("kw,match", [
    (dict(hidden=48, target_hidden=48), "width"),
    (dict(target_layer_ids=(0, 2, 6), num_target_layers=7), "layer 6"),
    (dict(num_target_layers=4), "4 layers"),
    (dict(target_hidden=48), "features"),
])
def test_drafter_that_does_not_fit(model, root, kw, match):
    folder = root / f"misfit-{match.replace(' ', '_')}"
    kw = dict(dict(num_target_layers=6), **kw)
    df.write_dflash_checkpoint(folder, **kw)
    path = root / f"misfit-{match.replace(' ', '_')}.gguf"
    convert_dflash(folder, path, dtype="f32")
    with pytest.raises(ModelLoadError, match=match):
        model.load_draft(path)
    with pytest.raises(ModelLoadError, match=match):
        model.session(draft=path)


def test_bad_speculative_arguments(model, drafters, root, cases):
    d = drafters["b4"]
    for block in (1, 65, 0, -3):
        with pytest.raises(InvalidArgumentError, match="draft_block"):
            model.session(kv_type="f32", n_ctx=N_CTX, draft=d, draft_block=block)
    with pytest.raises(InvalidArgumentError, match="n_batch"):
        model.session(kv_type="f32", n_ctx=N_CTX, draft=d, draft_block=8, n_batch=4)
    with pytest.raises(InvalidArgumentError, match="n_batch"):
        model.session(kv_type="f32", n_ctx=N_CTX, draft="mtp", draft_block=4, n_batch=2)
    with pytest.raises(InvalidArgumentError, match="MTP"):
        model.session(kv_type="f32", n_ctx=N_CTX, draft="mtp", mtp_blocks=4)
    with pytest.raises(InvalidArgumentError, match="mtp_hidden"):
        model.session(kv_type="f32", n_ctx=N_CTX, draft="mtp", mtp_hidden="post")
    with pytest.raises(InvalidArgumentError, match="draft"):
        model.session(kv_type="f32", n_ctx=N_CTX, draft=3)
    with pytest.raises(FileNotFoundError):
        model.session(kv_type="f32", n_ctx=N_CTX, draft=root / "no-such-drafter.gguf")
    # a DraftModel loaded for another TextModel (even of the same file)
    other = TextModel.load(model.model_path, device="cpu", n_threads=1)
    with pytest.raises(InvalidArgumentError, match="another TextModel"):
        other.session(draft=d)
    other.close()

    prompt, plain = cases[9]
    with plain_session(model) as p:
        with pytest.raises(InvalidArgumentError, match="drafter"):
            p.propose(prompt)
        with pytest.raises(InvalidArgumentError, match="drafter"):
            run_native(p, prompt, 5, override=lambda drafts, start: drafts)
    for variant in ("dflash_b4", "mtp3"):
        with open_session(model, {"b4": d}, variant) as s:
            with pytest.raises(InvalidArgumentError, match="two tokens"):
                s.propose(prompt[:1])
            for bad, match in ((lambda drafts, start: list(drafts) + [1], "count"),
                               (lambda drafts, start: list(drafts)[:-1], "count"),
                               (lambda drafts, start: [VOCAB] * len(drafts), "vocabulary"),
                               (lambda drafts, start: [-1] * len(drafts), "vocabulary")):
                s.reset()
                with pytest.raises(InvalidArgumentError, match=match):
                    run_native(s, prompt, 10, override=bad)
            # a plain loop would leave the drafter behind the target: refused, nothing evaluated
            s.reset()
            with pytest.raises(InvalidArgumentError, match="speculative=False"):
                s._native.generator(list(prompt), 5, speculative=False)
            assert s.n_past == 0
            # the session is still usable after the failed rounds
            assert s.generate(prompt, max_tokens=N_GEN).tokens == plain[:N_GEN]
            # going back further than the drafter's window keeps (the target's rings hold more): refused
            n = s.n_past
            assert s.can_truncate(n - 3) and not s.can_truncate(n - 28)
            with pytest.raises(InvalidArgumentError, match="drafter"):
                s.truncate(n - 28)
            assert s.n_past == n
