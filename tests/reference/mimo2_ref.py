"""Independent float32 CPU-torch reference of the MiMo-V2 MoE text backbone.

Written from spec/moe.md §1–§4 and §6 only, to check mimo-ggml's ``mimo2``
runtime where transformers cannot (its MiMoV2Flash port hard-codes
"SWA nkv = 2 x full nkv" and the ``(i+1) % 6`` full-layer rule, so it cannot
express V2.5-Pro's equal KV heads and irregular full-layer list).  It reads
the weights straight from a Hugging Face checkpoint folder (config.json in
the hub spelling + *.safetensors), never from GGUF, so a converter bug cannot
hide in both sides.  Checkpoint formats decoded here from the spec text:
float (bf16/f16/f32), FP8 E4M3 block-scaled (§6.1, per-chunk tiles for a
TP-chunked fused ``qkv_proj``), compressed-tensors AWQ int4 (§6.2) and MXFP4
(§6.3).

Public API::

    ref = Mimo2Reference(folder, window_keys=129)
    logits = ref.logits(token_ids)          # numpy float32 (T, vocab), no KV cache
    ids = ref.greedy(prompt_ids, n)         # n greedy tokens (full recompute per step)
    hs = ref.hidden_states(token_ids, [0, 2, 5])
        # {0: (T, H), 2: ..., 5: ...} residual stream after those decoder layers (pre-final-norm,
        # the last layer's too), plus hs["post_norm"] = model.norm of the last layer's output
    ref.embedding(), ref.lm_head()          # numpy float32 (vocab, H)

The math helpers ``rms_norm``, ``rope_neox`` and ``attend_with_sinks`` are
shared with the DFlash and MTP references (spec/dflash.md §3.3 and
spec/mtp.md §1.3 give their sinks and RoPE the backbone's semantics).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def _mxfp4(packed: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """§6.3: two E2M1 codes per byte (element 2b low nibble), one E8M0 byte per 32 inputs."""
    b = packed.to(torch.int64)
    codes = torch.stack([b & 15, b >> 4], dim=-1).reshape(b.shape[0], -1)
    vals = E2M1[codes & 7] * torch.where(codes >= 8, -1.0, 1.0)
    s = torch.pow(2.0, scale.to(torch.float64) - 127).to(torch.float32)
    return vals * s.repeat_interleave(32, dim=1)


def _awq(packed: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, shape, group: int) -> torch.Tensor:
    """§6.2: int32 words of 8 nibbles (element 8w+i at bits 4i, value + 8); zero points packed along rows."""
    n, k = (int(shape[0]), int(shape[1]))
    w = packed.to(torch.int64) & 0xFFFFFFFF
    u = torch.stack([(w >> (4 * i)) & 15 for i in range(8)], dim=-1).reshape(n, -1)[:, :k]
    if zero is None:
        z = torch.full((n, k // group), 8, dtype=torch.int64)
    else:
        zw = zero.to(torch.int64) & 0xFFFFFFFF
        z = torch.stack([(zw >> (4 * i)) & 15 for i in range(8)], dim=1).reshape(-1, k // group)[:n]
    return ((u - z.repeat_interleave(group, dim=1)).to(torch.float32)
            * scale.to(torch.float32).repeat_interleave(group, dim=1))


def _fp8(codes: torch.Tensor, scale: torch.Tensor, block: tuple[int, int], rows_per_chunk: int | None) -> torch.Tensor:
    """§6.1: float(e4m3) x scale tile; a TP-chunked tensor tiles each chunk on its own."""
    w = codes.view(torch.float8_e4m3fn).to(torch.float32)
    n, k = w.shape
    br, bc = block
    rpc = rows_per_chunk or n
    tiles = -(-rpc // br)
    out = torch.empty_like(w)
    for c in range(n // rpc):
        s = scale[c * tiles : (c + 1) * tiles].to(torch.float32)
        full = s.repeat_interleave(br, 0)[:rpc].repeat_interleave(bc, 1)[:, :k]
        out[c * rpc : (c + 1) * rpc] = w[c * rpc : (c + 1) * rpc] * full
    return out


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last axis, weight multiplied directly."""
    return w.to(torch.float32) * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


def rope_neox(x: torch.Tensor, pos: torch.Tensor, theta: float, n_rot: int) -> torch.Tensor:
    """§3.2: NeoX rotate-half on the first n_rot dims of each head (pairs i, i + n_rot/2); x (T, heads, d)."""
    half = n_rot // 2
    inv = 1.0 / theta ** (torch.arange(half, dtype=torch.float64) * 2 / n_rot)
    ang = pos[:, None].to(torch.float64) * inv[None, :]
    cos, sin = ang.cos().to(torch.float32)[:, None, :], ang.sin().to(torch.float32)[:, None, :]
    x1, x2, rest = x[..., :half], x[..., half:n_rot], x[..., n_rot:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)


def attend_with_sinks(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: torch.Tensor,
                      sinks: torch.Tensor | None) -> torch.Tensor:
    """Softmax attention, q (Tq, nh, d), k (Tk, nkv, d), v (Tk, nkv, dv), visible (Tq, Tk) bool.

    Query head h uses KV head h // (nh / nkv); scale 1/sqrt(d); a sink (§3.4) is
    one extra unscaled logit per head in the denominator, with no value.
    Returns (Tq, nh * dv).
    """
    nh, nkv = q.shape[1], k.shape[1]
    k = k.repeat_interleave(nh // nkv, dim=1)
    v = v.repeat_interleave(nh // nkv, dim=1)
    s = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~visible[None], float("-inf"))
    if sinks is not None:
        sink = sinks.to(torch.float32)[:, None, None].expand(nh, q.shape[0], 1)
        p = torch.softmax(torch.cat([s, sink], dim=-1), dim=-1)[..., :-1]
    else:
        p = torch.softmax(s, dim=-1)
    return torch.einsum("hij,jhd->ihd", p, v).reshape(q.shape[0], -1)


class Mimo2Reference:
    """The decoder of spec §3–§4 over a checkpoint folder (float32 throughout)."""

    def __init__(self, folder: str | Path, window_keys: int = 129):
        folder = Path(folder)
        cfg = json.loads((folder / "config.json").read_text())
        self.cfg = cfg
        self.t: dict[str, torch.Tensor] = {}
        for f in sorted(folder.glob("*.safetensors")):
            self.t.update(load_file(str(f)))
        index = folder / "model.safetensors.index.json"
        meta = json.loads(index.read_text()).get("metadata", {}) if index.is_file() else {}
        qc = cfg.get("quantization_config") or {}
        self.fp8_block = tuple(qc.get("weight_block_size") or (128, 128))
        groups = qc.get("config_groups") or {}
        wcfg = next((g["weights"] for g in groups.values() if g.get("weights")), {})
        self.awq_group = int(wcfg.get("group_size") or 0)

        self.n_layer = int(cfg["num_hidden_layers"])
        self.nh = int(cfg["num_attention_heads"])
        self.dk = int(cfg.get("head_dim") or 192)
        self.dv = int(cfg.get("v_head_dim") or 128)
        self.n_rot = int(self.dk * float(cfg.get("partial_rotary_factor", 0.334)))
        self.swa = [int(bool(x)) for x in cfg["hybrid_layer_pattern"]]
        self.moe = [int(bool(x)) for x in cfg.get("moe_layer_freq") or [0] + [1] * (self.n_layer - 1)]
        self.nkv = [int(cfg["swa_num_key_value_heads"] if s else cfg["num_key_value_heads"]) for s in self.swa]
        self.theta = [float(cfg["swa_rope_theta"] if s else cfg["rope_theta"]) for s in self.swa]
        self.eps = float(cfg["layernorm_epsilon"])
        vs = cfg.get("attention_value_scale")
        self.value_scale = 1.0 if vs is None else float(vs)
        self.top_k = int(cfg["num_experts_per_tok"])
        rsf = cfg.get("routed_scaling_factor")
        self.rsf = 1.0 if rsf is None else float(rsf)
        self.window_keys = window_keys
        conv = cfg.get("conversion_metadata") or {}
        self.global_qkv = conv.get("qkv_layout") == "global_q_k_v"
        self.tp = int(meta.get("tp_size") or cfg["num_key_value_heads"])

    # -- weights -----------------------------------------------------------------------------
    def weight(self, prefix: str, rows_per_chunk: int | None = None) -> torch.Tensor:
        t = self.t
        if prefix + ".weight_packed" in t:
            z = t.get(prefix + ".weight_zero_point")
            return _awq(t[prefix + ".weight_packed"], t[prefix + ".weight_scale"], z,
                        t[prefix + ".weight_shape"].tolist(), self.awq_group)
        w = t[prefix + ".weight"]
        if w.dtype == torch.float8_e4m3fn:
            return _fp8(w, t[prefix + ".weight_scale_inv"], self.fp8_block, rows_per_chunk)
        if w.dtype == torch.uint8:
            return _mxfp4(w, t[prefix + ".weight_scale"])
        return w.to(torch.float32)

    def qkv(self, il: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.qkv_weights(f"model.layers.{il}.self_attn", self.nkv[il], self.tp)

    def qkv_weights(self, p: str, nkv: int, tp: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Head-ordered Wq, Wk, Wv of the attention at prefix ``p`` (split, or fused over ``tp`` ranks)."""
        nh, dk, dv = self.nh, self.dk, self.dv
        if p + ".qkv_proj.weight" not in self.t:
            return self.weight(p + ".q_proj"), self.weight(p + ".k_proj"), self.weight(p + ".v_proj")
        if self.global_qkv:
            w = self.weight(p + ".qkv_proj")
            return w[: nh * dk], w[nh * dk : (nh + nkv) * dk], w[(nh + nkv) * dk :]
        # §6.1: tp chunks of [Q_c | K_c | V_c]
        qc, kc, vc = nh // tp * dk, nkv // tp * dk, nkv // tp * dv
        rpc = qc + kc + vc
        w = self.weight(p + ".qkv_proj", rows_per_chunk=rpc)
        chunks = [w[c * rpc : (c + 1) * rpc] for c in range(tp)]
        return (torch.cat([c[:qc] for c in chunks]), torch.cat([c[qc : qc + kc] for c in chunks]),
                torch.cat([c[qc + kc :] for c in chunks]))

    # -- math --------------------------------------------------------------------------------
    def rms(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return rms_norm(x, self.t[name], self.eps)

    def rope(self, x: torch.Tensor, pos: torch.Tensor, theta: float) -> torch.Tensor:
        return rope_neox(x, pos, theta, self.n_rot)

    def attention(self, il: int, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return self.self_attention(f"model.layers.{il}.self_attn", x, pos, nkv=self.nkv[il], tp=self.tp,
                                   theta=self.theta[il], window_keys=self.window_keys if self.swa[il] else None)

    def self_attention(self, p: str, x: torch.Tensor, pos: torch.Tensor, *, nkv: int, tp: int, theta: float,
                       window_keys: int | None) -> torch.Tensor:
        """Causal attention of the rows ``x`` at positions ``pos`` (SWA when window_keys is set),
        with the sinks at ``{p}.attention_sink_bias`` if the checkpoint has them."""
        T = x.shape[0]
        nh, dk, dv = self.nh, self.dk, self.dv
        wq, wk, wv = self.qkv_weights(p, nkv, tp)
        q = self.rope((x @ wq.T).view(T, nh, dk), pos, theta)
        k = self.rope((x @ wk.T).view(T, nkv, dk), pos, theta)
        v = (x @ wv.T).view(T, nkv, dv) * self.value_scale
        i, j = pos[:, None], pos[None, :]
        visible = j <= i
        if window_keys is not None:
            visible = visible & (i - j < window_keys)
        o = attend_with_sinks(q, k, v, visible, self.t.get(p + ".attention_sink_bias"))
        return o @ self.weight(p + ".o_proj").T

    def mlp(self, prefix: str, x: torch.Tensor) -> torch.Tensor:
        g, u, d = (self.weight(f"{prefix}.{n}_proj") for n in ("gate", "up", "down"))
        return (torch.nn.functional.silu(x @ g.T) * (x @ u.T)) @ d.T

    def moe_block(self, il: int, x: torch.Tensor) -> torch.Tensor:
        p = f"model.layers.{il}.mlp"
        s = torch.sigmoid(x @ self.t[p + ".gate.weight"].to(torch.float32).T)  # §4: fp32 router
        c = s + self.t[p + ".gate.e_score_correction_bias"].to(torch.float32)
        idx = torch.topk(c, self.top_k, dim=-1).indices
        w = s.gather(1, idx)
        w = w / (w.sum(-1, keepdim=True) + 1e-20) * self.rsf
        out = torch.zeros_like(x)
        for e in idx.unique().tolist():
            rows, slot = (idx == e).nonzero(as_tuple=True)
            out[rows] += w[rows, slot, None] * self.mlp(f"{p}.experts.{e}", x[rows])
        return out

    def _decoder(self, ids, keep: frozenset[int] = frozenset()) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """Residual stream after each layer in ``keep``, and the last layer's output after model.norm."""
        ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
        pos = torch.arange(ids.shape[0])
        h = self.t["model.embed_tokens.weight"].to(torch.float32)[ids]
        kept = {}
        for il in range(self.n_layer):
            lp = f"model.layers.{il}"
            h = h + self.attention(il, self.rms(h, f"{lp}.input_layernorm.weight"), pos)
            x = self.rms(h, f"{lp}.post_attention_layernorm.weight")
            h = h + (self.moe_block(il, x) if self.moe[il] else self.mlp(f"{lp}.mlp", x))
            if il in keep:
                kept[il] = h
        return kept, self.rms(h, "model.norm.weight")

    @torch.no_grad()
    def logits(self, ids) -> np.ndarray:
        _, h = self._decoder(ids)
        return (h @ self.weight("lm_head").T).numpy()

    @torch.no_grad()
    def hidden_states(self, ids, layers) -> dict:
        """{layer: (T, H) residual stream after that decoder layer} for ``layers`` (pre-final-norm, the
        last layer included), and ``"post_norm"``: the last layer's output after model.norm."""
        layers = [int(il) for il in layers]
        bad = [il for il in layers if not 0 <= il < self.n_layer]
        if bad:
            raise ValueError(f"layers {bad} outside 0..{self.n_layer - 1}")
        kept, post = self._decoder(ids, frozenset(layers))
        out = {il: kept[il].numpy() for il in layers}
        out["post_norm"] = post.numpy()
        return out

    def embedding(self) -> np.ndarray:
        return self.t["model.embed_tokens.weight"].to(torch.float32).numpy()

    def lm_head(self) -> np.ndarray:
        return self.weight("lm_head").numpy()

    def greedy(self, prompt, n: int) -> list[int]:
        ids = list(int(i) for i in prompt)
        out = []
        for _ in range(n):
            nxt = int(np.argmax(self.logits(ids)[-1]))
            out.append(nxt)
            ids.append(nxt)
        return out
