"""Decode and prefill speed of the MiMo-V2.5 MoE text model at its real layer sizes.

Builds (once, cached) random-weight ``mimo2`` GGUFs with MiMo-V2.5's shapes —
hidden 4096, 64 query heads of 192 (q/k) / 128 (v), 4 KV heads in full
layers and 8 in sliding-window layers, 256 experts of width 2048 (8 used),
dense layer 0 of width 16384, vocab 152576 — but only a few layers
(default 4: layer 0 dense + full attention, then 3 MoE layers with
sliding-window attention), once with MXFP4 experts and once with Q4_0
experts (quantized by ggml). Attention, dense MLP, embedding and head are
Q8_0; the router is F32 as in the real files.

Prints decode ms/token beside the memory roofline: the ACTIVE bytes one
decoded token must read (attention + dense layer + router + the 8 of 256
experts a token routes to + head, plus the KV rows attended) divided by the
read bandwidth measured in the same run; and prompt tokens/s for a 512-token
prompt.

    python bench/moe_decode.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RandomTensors, measure_read_bandwidth, peak_rss_mib, random_matrix  # noqa: E402

from mimo_ggml.convert.common import PlannedTensor, write_gguf  # noqa: E402

V25 = dict(hidden=4096, n_head=64, kv_full=4, kv_swa=8, dk=192, dv=128, experts=256, used=8, moe_ff=2048,
           ff=16384, vocab=152576)


def _mxfp4(rows: int, cols: int, seed: int) -> np.ndarray:
    """Random MXFP4 blocks (17 bytes per 32 values) with E8M0 scales near 2^-7 (|w| <~ 0.05)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(rows, cols // 32, 17), dtype=np.uint8)
    blocks[:, :, 0] = rng.integers(118, 124, size=(rows, cols // 32), dtype=np.uint8)
    return blocks.reshape(rows, -1)


def layer_pattern(n_layer: int) -> list[int]:
    """1 = sliding window: layer 0 and every 6th (as V2.5) are full attention."""
    return [0 if (i == 0 or (i + 1) % 6 == 0) else 1 for i in range(n_layer)]


def random_mimo2(cache: Path, expert_type: str, n_layer: int, dense_type: str = "q8_0") -> Path:
    hp = V25
    path = cache / f"mimo2-v25-{n_layer}l-{expert_type}-{dense_type}.gguf"
    if path.exists():
        return path
    H, E, I, F, V = hp["hidden"], hp["experts"], hp["moe_ff"], hp["ff"], hp["vocab"]
    pattern = layer_pattern(n_layer)
    made = RandomTensors(dense_type)
    mat, vec = made.mat, made.vec

    def experts(name: str, rows: int, cols: int, seed: int) -> PlannedTensor:
        # one expert matrix quantized, its blocks tiled over all experts: every expert
        # still owns its bytes in the file, so routing costs what it costs on real weights
        one = _mxfp4(rows, cols, seed) if expert_type == "mxfp4" else random_matrix(rows, cols, expert_type, seed)
        return PlannedTensor(name, (E, rows, one.shape[1]), expert_type,
                             lambda: np.broadcast_to(one, (E, *one.shape)))

    tensors = [mat("token_embd.weight", V, H, 1)]
    for il in range(n_layer):
        p = f"blk.{il}."
        nkv = hp["kv_swa"] if pattern[il] else hp["kv_full"]
        tensors += [
            vec(p + "attn_norm.weight", H),
            mat(p + "attn_qkv.weight", hp["n_head"] * hp["dk"] + nkv * (hp["dk"] + hp["dv"]), H, 2 + nkv),
            mat(p + "attn_output.weight", H, hp["n_head"] * hp["dv"], 3),
            vec(p + "ffn_norm.weight", H),
        ]
        if pattern[il]:
            tensors.append(vec(p + "attn_sinks.weight", hp["n_head"], rand=True))
        if il == 0:
            tensors += [mat(p + "ffn_gate.weight", F, H, 4), mat(p + "ffn_up.weight", F, H, 5),
                        mat(p + "ffn_down.weight", H, F, 6)]
        else:
            tensors += [
                mat(p + "ffn_gate_inp.weight", E, H, 7, "f32"),
                vec(p + "exp_probs_b.bias", E, rand=True),
                experts(p + "ffn_gate_exps.weight", I, H, 8),
                experts(p + "ffn_up_exps.weight", I, H, 9),
                experts(p + "ffn_down_exps.weight", H, I, 10),
            ]
    tensors += [vec("output_norm.weight", H), mat("output.weight", V, H, 11)]

    def metadata(w) -> None:
        a = "mimo2."
        w.add_string("general.name", "random MiMo-V2.5 layers (benchmark)")
        w.add_uint32(a + "block_count", n_layer)
        w.add_uint32(a + "context_length", 262144)
        w.add_uint32(a + "embedding_length", H)
        w.add_uint32(a + "feed_forward_length", F)
        w.add_uint32(a + "vocab_size", V)
        w.add_uint32(a + "attention.head_count", hp["n_head"])
        w.add_array(a + "attention.head_count_kv", [hp["kv_swa"] if s else hp["kv_full"] for s in pattern])
        w.add_uint32(a + "attention.key_length", hp["dk"])
        w.add_uint32(a + "attention.value_length", hp["dv"])
        w.add_uint32(a + "attention.sliding_window", 128)
        w.add_array(a + "attention.sliding_window_pattern", pattern)
        w.add_float32(a + "attention.layer_norm_rms_epsilon", 1e-5)
        w.add_float32(a + "attention.value_scale", 0.707)
        w.add_uint32(a + "rope.dimension_count", 64)
        w.add_float32(a + "rope.freq_base", 1e7)
        w.add_float32(a + "rope.freq_base_swa", 1e4)
        w.add_uint32(a + "expert_count", E)
        w.add_uint32(a + "expert_used_count", hp["used"])
        w.add_uint32(a + "expert_feed_forward_length", I)
        w.add_uint32(a + "expert_gating_func", 2)
        w.add_bool(a + "expert_weights_norm", True)
        w.add_float32(a + "expert_weights_scale", 1.0)
        w.add_uint32(a + "leading_dense_block_count", 1)
        w.add_uint32(a + "attention.sliding_window_keys", 129)
        w.add_bool(a + "attention.swa_sinks", True)
        w.add_bool(a + "attention.full_sinks", False)

    cache.mkdir(parents=True, exist_ok=True)
    return write_gguf(path, "mimo2", metadata, tensors)


def active_bytes(path: Path, n_layer: int, kv_rows: tuple[int, int], kv_type_bytes: float) -> int:
    """Bytes one decoded token reads: every non-expert weight except the embedding
    table (one row), 8/256 of each expert tensor, and the KV rows attended."""
    from gguf import GGUFReader

    hp = V25
    total = 0
    for t in GGUFReader(path).tensors:
        if t.name == "token_embd.weight":
            total += int(t.n_bytes) // hp["vocab"]
        elif "_exps." in t.name:
            total += int(t.n_bytes) * hp["used"] // hp["experts"]
        else:
            total += int(t.n_bytes)
    full_rows, swa_rows = kv_rows
    for s in layer_pattern(n_layer):
        nkv = hp["kv_swa"] if s else hp["kv_full"]
        total += int((swa_rows if s else full_rows) * nkv * (hp["dk"] + hp["dv"]) * kv_type_bytes)
    return total


def run(path: Path, args):
    """(load s, prompt tokens/s for 512 positions, decode s/token, (KV bytes per position, SWA ring bytes))."""
    from mimo_ggml import TextSession

    t0 = time.perf_counter()
    s = TextSession(path, device="cpu", n_threads=args.threads, n_ctx=1024, kv_type=args.kv_type,
                    repack_weights=not args.plain)
    load_s = time.perf_counter() - t0
    prompt = np.random.default_rng(0).integers(0, 151643, 512)
    s.eval(prompt[:16])  # warm-up: page in, build graphs
    s.reset()
    t0 = time.perf_counter()
    logits = s.eval(prompt)
    prefill_s = time.perf_counter() - t0
    tok = int(logits[0].argmax())
    s.reset()
    s.eval(prompt[: args.context])
    s.eval([tok])  # warm the step graph
    t0 = time.perf_counter()
    for _ in range(args.decode):
        tok = int(s.eval([tok])[0].argmax())
    decode_s = (time.perf_counter() - t0) / args.decode
    kv = (s.kv_bytes_per_token, s.kv_bytes_swa)
    s.close()
    return load_s, 512 / prefill_s, decode_s, kv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/mimo-ggml-bench"))
    ap.add_argument("--layers", type=int, default=4, help="decoder layers (layer 0 dense, the rest MoE)")
    ap.add_argument("--experts", default="mxfp4,q4_0", help="expert types to time (comma separated)")
    ap.add_argument("--decode", type=int, default=32, help="decoded tokens timed")
    ap.add_argument("--context", type=int, default=64, help="positions in the context while decoding")
    ap.add_argument("--kv-type", default="f16")
    ap.add_argument("--plain", action="store_true", help="plain (not repacked) CPU layout for 2-D matrices")
    args = ap.parse_args()

    bandwidth = measure_read_bandwidth(args.threads)
    print(f"MiMo-V2.5 layer shapes, {args.layers} layers (dense+full, then MoE; SWA except every 6th), "
          f"{args.threads} threads, KV {args.kv_type}")
    print(f"memory read bandwidth (measured now, {args.threads} threads): {bandwidth / 1e9:.1f} GB/s")
    kv_bytes = {"f16": 2.0, "f32": 4.0, "q8_0": 34 / 32}[args.kv_type]
    for et in args.experts.split(","):
        t0 = time.perf_counter()
        path = random_mimo2(Path(args.cache), et, args.layers)
        made = time.perf_counter() - t0
        ctx = args.context + args.decode // 2
        active = active_bytes(path, args.layers, (ctx, min(ctx, 129)), kv_bytes)
        roofline = active / bandwidth
        load_s, prompt_tps, decode_s, kv = run(path, args)
        print(f"[experts {et:5s}] file {path.stat().st_size / 2**30:.1f} GiB ({made:.0f} s to write) | "
              f"load {load_s:.1f} s | prompt {prompt_tps:6.1f} tokens/s (512 positions) | "
              f"decode {decode_s * 1000:6.1f} ms/token vs roofline {roofline * 1000:5.1f} ms "
              f"({active / 2**20:.0f} MiB active per token) = {roofline / decode_s * 100:3.0f}% of roofline | "
              f"KV {kv[0]} B per position + {kv[1] / 2**20:.1f} MiB SWA rings")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
