"""Speculative decoding on MiMo-V2.5 layer shapes: what a verify pass costs,
what the drafter costs, and the speedup they give.

Target: the random-weight ``mimo2`` file of bench/moe_decode.py (real V2.5
layer sizes, MXFP4 experts, a few layers; cached). Drafter: a random-weight
DFlash drafter of the real V2.5 drafter size (hidden 4096, 5 layers, 64/8
heads of 128, MLP 16384, fc 20480 -> 4096; Q8_0 by default), made for the
target (its captured layers are the target's, repeated to the real 5).

Prints, in one run:

- one target verify pass of B = 1..8 tokens against one plain decode step.
  8 tokens route to more distinct experts than 1 (random routing: ~57 of
  256 per layer instead of 8), and that, with the drafter, decides the
  speedup;
- the drafter's time per block (its context injection included);
- tokens/s with the oracle drafter at mean accepted lengths 8, 6, 5.3 (the
  field figure on code) and 4: the real drafter runs every round, then its
  proposals are replaced by the target's own greedy continuation, truncated
  to give that acceptance. Beside each, the projected speedup
  tau * t_step / (t_verify(B) + t_draft) from the component times, and the
  speedup measured against plain decoding of the same tokens in this run;
- with ``--project-layers N``, the same projection for an N-layer model
  (MiMo-V2.5: 48), from per-layer costs fitted over two layer counts
  (``--layers 2,4``): the head and the drafter are fixed costs, the
  attention and experts grow with the depth.

    python bench/speculative.py --threads 2
    python bench/speculative.py --threads 2 --layers 2,4 --project-layers 48
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RandomTensors, measure_read_bandwidth, peak_rss_mib  # noqa: E402
from moe_decode import V25, random_mimo2  # noqa: E402

from mimo_ggml import TextModel  # noqa: E402
from mimo_ggml.convert.common import write_gguf  # noqa: E402

# MiMo-V2.5's DFlash drafter (spec dflash.md §1)
DRAFTER = dict(hidden=4096, layers=5, n_head=64, n_head_kv=8, head_dim=128, ff=16384, captured=5, block=8,
               window=1024, mask_token_id=151675)
TAUS = (8.0, 6.0, 5.3, 4.0)


def random_drafter(cache: Path, n_target_layers: int, qtype: str) -> Path:
    d = DRAFTER
    path = cache / f"dflash-v25-for-{n_target_layers}l-{qtype}.gguf"
    if path.exists():
        return path
    H, hd, F = d["hidden"], d["head_dim"], d["ff"]
    captured = [min(i * n_target_layers // d["captured"], n_target_layers - 1) for i in range(d["captured"] - 1)]
    captured.append(n_target_layers - 1)  # the last layer, pre-final-norm, as the real drafter
    made = RandomTensors(qtype)
    mat, vec = made.mat, made.vec

    tensors = [mat("dflash_fc.weight", H, len(captured) * V25["hidden"], 1), vec("dflash_hidden_norm.weight", H),
               vec("output_norm.weight", H), vec("dflash_mask_embd.weight", H, rand=True)]
    for il in range(d["layers"]):
        p = f"blk.{il}."
        tensors += [vec(p + "attn_norm.weight", H), mat(p + "attn_q.weight", d["n_head"] * hd, H, 2),
                    mat(p + "attn_k.weight", d["n_head_kv"] * hd, H, 3),
                    mat(p + "attn_v.weight", d["n_head_kv"] * hd, H, 4),
                    mat(p + "attn_output.weight", H, d["n_head"] * hd, 5), vec(p + "attn_q_norm.weight", hd),
                    vec(p + "attn_k_norm.weight", hd), vec(p + "attn_sinks.weight", d["n_head"], rand=True),
                    vec(p + "ffn_norm.weight", H), mat(p + "ffn_gate.weight", F, H, 6),
                    mat(p + "ffn_up.weight", F, H, 7), mat(p + "ffn_down.weight", H, F, 8)]

    def metadata(w) -> None:
        a = "dflash-draft."
        w.add_string("general.name", "random MiMo-V2.5 DFlash drafter (benchmark)")
        for key, value in (("block_count", d["layers"]), ("embedding_length", H), ("feed_forward_length", F),
                           ("context_length", 262144), ("attention.head_count", d["n_head"]),
                           ("attention.head_count_kv", d["n_head_kv"]), ("attention.key_length", hd),
                           ("attention.value_length", hd), ("attention.sliding_window", d["window"]),
                           ("rope.dimension_count", hd // 2), ("dflash.block_size", d["block"]),
                           ("dflash.mask_token_id", d["mask_token_id"]),
                           ("dflash.n_target_features", len(captured) * V25["hidden"])):
            w.add_uint32(a + key, value)
        w.add_float32(a + "attention.layer_norm_rms_epsilon", 1e-6)
        w.add_float32(a + "attention.value_scale", 0.612)
        w.add_float32(a + "rope.freq_base", 1e4)
        w.add_bool(a + "attention.causal", False)
        w.add_array(a + "dflash.target_layer_ids", captured)

    cache.mkdir(parents=True, exist_ok=True)
    return write_gguf(path, "dflash-draft", metadata, tensors)


def verify_costs(session, context: np.ndarray, repeats: int) -> dict[int, float]:
    """Median seconds of one target pass over B = 1..8 new tokens after `context` (rolled back after
    each); the B values are interleaved within each repeat, so a burst of load hits all of them."""
    rng = np.random.default_rng(1)
    session.reset()
    session.eval(context)
    n = session.n_past
    times: dict[int, list[float]] = {b: [] for b in range(1, 9)}
    for r in range(repeats + 1):
        for b in range(1, 9):
            rows = rng.integers(0, 151643, b)
            t0 = time.perf_counter()
            session.eval(rows, n_out=b)
            dt = time.perf_counter() - t0
            session.truncate(n)
            if r > 0:  # the first round builds the graphs
                times[b].append(dt)
    return {b: float(np.median(t)) for b, t in times.items()}


def acceptance_override(plain: list[int], prompt_len: int, tau: float):
    """Proposals replaced by the plain continuation, cut so that the mean accepted length is `tau`:
    each round keeps floor or ceil of tau - 1 correct drafts (deterministically alternated), then one wrong."""
    rounds = [0]

    def override(drafts: list[int], start: int) -> list[int]:
        r = rounds[0]
        rounds[0] += 1
        want = tau - 1.0
        ok = int(np.floor(want * (r + 1)) - np.floor(want * r))  # a running share: mean exactly tau - 1
        out = []
        for i in range(1, len(drafts) + 1):
            j = start - prompt_len + i  # the plain run's token index for draft i
            truth = plain[j] if j < len(plain) else 0
            out.append(truth if i <= ok else (truth + 1) % 151643)
        return out

    return override


def generate(session, prompt, n, override=None) -> tuple[list[int], float, dict | None]:
    """Greedy tokens, decode seconds and draft stats: speculative with an override on a drafting session,
    plain on a session without a drafter."""
    g = session._native.generator(list(map(int, prompt)), n, draft_override=override) if override else \
        session._native.generator(list(map(int, prompt)), n)
    first = g.next()  # from the prompt pass, outside the timed decode
    toks = [first[0]]
    t0 = time.perf_counter()
    while (t := g.next()) is not None:
        toks.append(t[0])
    return toks, time.perf_counter() - t0, g.draft_stats


def run_layers(n_layer: int, args) -> dict:
    cache = Path(args.cache)
    target_path = random_mimo2(cache, "mxfp4", n_layer)
    drafter_path = random_drafter(cache, n_layer, args.drafter_type)
    model = TextModel.load(target_path, device="cpu", n_threads=args.threads)
    draft = model.load_draft(drafter_path)
    prompt = np.random.default_rng(0).integers(0, 151643, args.context)
    res: dict = {"layers": n_layer, "target_gib": target_path.stat().st_size / 2**30,
                 "drafter_gib": drafter_path.stat().st_size / 2**30}
    n_ctx = args.context + args.tokens + 64
    with model.session(n_ctx=n_ctx, kv_type="f16", draft=draft, draft_block=8) as s, \
            model.session(n_ctx=n_ctx, kv_type="f16") as p:
        res["verify"] = verify_costs(p, prompt, args.repeats)
        res["step"] = res["verify"][1]
        p.reset()
        plain, _, _ = generate(p, prompt, args.tokens)
        res["runs"] = {}
        for tau in TAUS:  # each speculative run beside a plain run of the same tokens, so both meet the same load
            p.reset()
            again, plain_s, _ = generate(p, prompt, args.tokens)
            assert again == plain
            s.reset()
            toks, spec_s, stats = generate(s, prompt, args.tokens, acceptance_override(plain, len(prompt), tau))
            assert toks == plain, "speculative greedy output differs from plain decoding"
            res["runs"][tau] = dict(tps=(len(toks) - 1) / spec_s, plain_tps=(len(plain) - 1) / plain_s, stats=stats)
        res["plain_tps"] = float(np.median([r["plain_tps"] for r in res["runs"].values()]))
        st = res["runs"][TAUS[0]]["stats"]
        res["draft"] = st["draft_s"] / st["rounds"]
    draft.close()
    model.close()
    return res


def projected(tau: float, step: float, verify8: float, draft: float) -> float:
    return tau * step / (verify8 + draft)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/mimo-ggml-bench"))
    ap.add_argument("--layers", default="4", help="target decoder layers; two counts (2,4) fit per-layer costs")
    ap.add_argument("--drafter-type", default="q8_0", help="drafter matrices: q8_0 (default), f16 or f32")
    ap.add_argument("--context", type=int, default=64, help="prompt positions before decoding")
    ap.add_argument("--tokens", type=int, default=65, help="tokens generated per run")
    ap.add_argument("--repeats", type=int, default=5, help="timings are the median of this many")
    ap.add_argument("--project-layers", type=int, default=0, help="also project to this many layers (48: V2.5)")
    args = ap.parse_args()

    bw = measure_read_bandwidth(args.threads)
    print(f"speculative decoding, MiMo-V2.5 layer shapes, MXFP4 experts, {args.threads} threads; drafter "
          f"{DRAFTER['layers']} layers {args.drafter_type}, block {DRAFTER['block']}; memory read bandwidth "
          f"measured now: {bw / 1e9:.1f} GB/s")
    results = [run_layers(int(n), args) for n in args.layers.split(",")]
    for r in results:
        v, step, draft = r["verify"], r["step"], r["draft"]
        print(f"\n[{r['layers']} layers: target {r['target_gib']:.1f} GiB, drafter {r['drafter_gib']:.2f} GiB]")
        print("  target pass over B new tokens (ms), and its cost in decode steps:")
        print("    " + " | ".join(f"B={b}: {v[b] * 1e3:6.1f} ({v[b] / step:4.2f}x)" for b in range(1, 9)))
        print(f"  drafter per block (context injection + 8-row block): {draft * 1e3:.1f} ms "
              f"= {draft / step:.2f} decode steps")
        print(f"  plain decode: {r['plain_tps']:.2f} tokens/s ({1e3 / r['plain_tps']:.1f} ms/token; median of the runs)")
        for tau in TAUS:
            run = r["runs"][tau]
            st = run["stats"]
            print(f"  tau {tau:3.1f}: measured {run['tps']:6.2f} tokens/s = {run['tps'] / run['plain_tps']:4.2f}x plain "
                  f"({run['plain_tps']:.2f} tokens/s beside it) "
                  f"(mean accepted length {st['mean_accepted_length']:.2f}, {st['rounds']} rounds; verify "
                  f"{st['verify_s'] / st['rounds'] * 1e3:.0f} ms + draft {st['draft_s'] / st['rounds'] * 1e3:.0f} ms "
                  f"per round) | projected {projected(tau, step, v[8], draft):4.2f}x")
    if args.project_layers and len(results) >= 2:
        a, b = results[0], results[-1]
        dl = b["layers"] - a["layers"]
        per_layer = {k: (b["verify"][k] - a["verify"][k]) / dl for k in (1, 8)}
        fixed = {k: a["verify"][k] - per_layer[k] * a["layers"] for k in (1, 8)}
        L = args.project_layers
        step, v8 = fixed[1] + per_layer[1] * L, fixed[8] + per_layer[8] * L
        draft = b["draft"]
        print(f"\n[projection to {L} layers from {a['layers']} and {b['layers']}: per layer step "
              f"{per_layer[1] * 1e3:.1f} ms, verify-8 {per_layer[8] * 1e3:.1f} ms; fixed (head, embedding) step "
              f"{fixed[1] * 1e3:.1f} ms, verify-8 {fixed[8] * 1e3:.1f} ms]")
        print(f"  step {step * 1e3:.0f} ms, verify-8 {v8 * 1e3:.0f} ms ({v8 / step:.2f}x), drafter {draft * 1e3:.0f} ms")
        print("  " + " | ".join(f"tau {t:3.1f}: {projected(t, step, v8, draft):4.2f}x" for t in TAUS))
    print(f"\npeak RSS: {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
