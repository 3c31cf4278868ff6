"""Independent float32 CPU-torch reference of the DFlash drafter forward (spec/dflash.md §2–§3, Corrections).

Reads the drafter's Hugging Face folder (``config.json`` + safetensors +
``mask_embedding.pt`` through torch.load), never GGUF; the target's embedding
table and head are passed in as arrays.  No KV cache: every call projects all
context features and runs the whole block again.

Public API::

    ref = DFlashReference(folder, target_embed, target_head)    # (V, H) arrays of the target
    logits = ref.block_logits(features, anchor)    # (k, V): rows 1..k of the block at positions n..n+k
    ids = ref.proposals(features, anchor)          # argmax of each row

``features`` is ``[n, n_cap * H_target]``: for positions 0..n-1 the captured
target layers concatenated in ``target_layer_ids`` order.  Knobs (spec
defaults, None = from the config): ``window`` (HF convention, a query at p
sees a context key at j iff p - j < window; None = no window), ``causal``
(block rows see block rows <= their own; default bidirectional),
``rope_base_ctx`` / ``rope_base_block`` (rope_theta), ``n_rot``
(int(head_dim * partial_rotary_factor), NeoX pairs i, i + n_rot/2).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from .mimo2_ref import attend_with_sinks, rms_norm, rope_neox

FROM_CONFIG = "from_config"  # window default: the checkpoint's own (swa_window_size when use_swa)


class DFlashReference:
    def __init__(self, folder: str | Path, target_embed, target_head, *, window=FROM_CONFIG, causal: bool = False,
                 rope_base_ctx: float | None = None, rope_base_block: float | None = None, n_rot: int | None = None):
        folder = Path(folder)
        cfg = json.loads((folder / "config.json").read_text())
        dc = cfg["dflash_config"]
        self.t: dict[str, torch.Tensor] = {}
        for f in sorted(folder.glob("*.safetensors")):
            for name, v in load_file(str(f)).items():
                self.t[name.removeprefix("model.")] = v.to(torch.float32)
        mask = torch.load(str(folder / "mask_embedding.pt"), weights_only=True)
        mask_id = dc.get("mask_token_id")
        if isinstance(mask, dict):
            mask_id = mask["mask_token_id"] if mask.get("mask_token_id") is not None else mask_id
            mask = mask["embedding"]
        self.mask_token_id = int(mask_id)
        self.mask_embedding = mask.to(torch.float32).reshape(-1)

        self.n_layer = int(cfg["num_hidden_layers"])
        self.nh = int(cfg["num_attention_heads"])
        self.nkv = int(cfg.get("num_key_value_heads") or self.nh)
        self.hd = int(cfg.get("head_dim") or int(cfg["hidden_size"]) // self.nh)
        self.vd = int(cfg.get("v_head_dim") or self.hd)
        self.eps = float(cfg["rms_norm_eps"])
        self.block_size = int(dc.get("block_size", cfg.get("block_size")))
        self.value_scale = float(dc.get("attention_value_scale", 1.0))
        if window == FROM_CONFIG:
            window = int(dc.get("swa_window_size", cfg.get("sliding_window"))) if dc.get("use_swa") else None
        self.window = window
        self.causal = causal
        theta = float(cfg.get("rope_theta", 10000.0))
        self.rope_base_ctx = theta if rope_base_ctx is None else float(rope_base_ctx)
        self.rope_base_block = theta if rope_base_block is None else float(rope_base_block)
        self.n_rot = int(self.hd * float(cfg.get("partial_rotary_factor", 1.0))) if n_rot is None else int(n_rot)
        self.target_layer_ids = list(dc["target_layer_ids"])
        self.embed = torch.as_tensor(np.asarray(target_embed, dtype=np.float32))
        self.head = torch.as_tensor(np.asarray(target_head, dtype=np.float32))

    # -- pieces --------------------------------------------------------------------------------
    def rms(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return rms_norm(x, self.t[name], self.eps)

    def head_norm(self, x: torch.Tensor, heads: int, d: int, name: str) -> torch.Tensor:
        """Per-head RMSNorm (q_norm / k_norm share one [d] weight across heads)."""
        return rms_norm(x.view(x.shape[0], heads, d), self.t[name], self.eps)

    def context(self, features) -> torch.Tensor:
        """§2: ctx = RMSNorm(fc(features); hidden_norm), one [H] vector per context position."""
        f = torch.as_tensor(np.asarray(features, dtype=np.float32))
        return self.rms(f @ self.t["fc.weight"].T, "hidden_norm.weight")

    def block_inputs(self, anchor: int, n_proposals: int) -> torch.Tensor:
        """§3.2: h0 = [E_target[anchor], mask_embedding x n_proposals] (drafter-local mask row)."""
        return torch.cat([self.embed[int(anchor)][None], self.mask_embedding[None].expand(n_proposals, -1)])

    @torch.no_grad()
    def block_hidden(self, features, h0) -> np.ndarray:
        """Final-normed drafter output for block rows ``h0`` at positions n..n+rows-1 after n context rows."""
        ctx = self.context(features)
        h = torch.as_tensor(np.asarray(h0, dtype=np.float32)).clone()
        n, rows = ctx.shape[0], h.shape[0]
        pos_ctx, pos_blk = torch.arange(n), torch.arange(n, n + rows)
        # visibility: context keys by the window (they all precede the block), block keys by `causal`
        p, j = pos_blk[:, None], pos_ctx[None, :]
        ctx_visible = torch.ones(rows, n, dtype=torch.bool) if self.window is None else (p - j < self.window)
        blk_visible = torch.ones(rows, rows, dtype=torch.bool)
        if self.causal:
            blk_visible = torch.tril(blk_visible)
        visible = torch.cat([ctx_visible, blk_visible], dim=1)
        nh, nkv, hd, vd = self.nh, self.nkv, self.hd, self.vd
        for il in range(self.n_layer):
            lp = f"layers.{il}."
            wq, wk, wv = (self.t[f"{lp}self_attn.{x}_proj.weight"] for x in "qkv")
            # §3.1: context K/V from ctx directly (no input_layernorm), at the context positions
            k_ctx = rope_neox(self.head_norm(ctx @ wk.T, nkv, hd, lp + "self_attn.k_norm.weight"), pos_ctx,
                              self.rope_base_ctx, self.n_rot)
            v_ctx = (ctx @ wv.T).view(n, nkv, vd) * self.value_scale
            x = self.rms(h, lp + "input_layernorm.weight")
            q = rope_neox(self.head_norm(x @ wq.T, nh, hd, lp + "self_attn.q_norm.weight"), pos_blk,
                          self.rope_base_block, self.n_rot)
            k = rope_neox(self.head_norm(x @ wk.T, nkv, hd, lp + "self_attn.k_norm.weight"), pos_blk,
                          self.rope_base_block, self.n_rot)
            v = (x @ wv.T).view(rows, nkv, vd) * self.value_scale
            a = attend_with_sinks(q, torch.cat([k_ctx, k]), torch.cat([v_ctx, v]), visible,
                                  self.t.get(lp + "self_attn.attention_sink_bias"))
            h = h + a @ self.t[lp + "self_attn.o_proj.weight"].T
            y = self.rms(h, lp + "post_attention_layernorm.weight")
            g, u, d = (self.t[f"{lp}mlp.{x}_proj.weight"] for x in ("gate", "up", "down"))
            h = h + (torch.nn.functional.silu(y @ g.T) * (y @ u.T)) @ d.T
        return self.rms(h, "norm.weight").numpy()

    # -- what a runtime compares against ---------------------------------------------------------
    def block_logits(self, features, anchor: int, block_size: int | None = None,
                     n_proposals: int | None = None) -> np.ndarray:
        """Target-head logits of block rows 1..k, k = n_proposals or block_size - 1 (spec §3.2: a block
        of 1 + k rows at positions n..n+k; row i predicts the token at n + i)."""
        B = self.block_size if block_size is None else int(block_size)
        k = B - 1 if n_proposals is None else int(n_proposals)
        if not 1 <= k <= B - 1:
            raise ValueError(f"n_proposals {k} outside 1..{B - 1}")
        out = self.block_hidden(features, self.block_inputs(anchor, k))
        return out[1:] @ self.head.numpy().T

    def proposals(self, features, anchor: int, block_size: int | None = None,
                  n_proposals: int | None = None) -> list[int]:
        return [int(i) for i in np.argmax(self.block_logits(features, anchor, block_size, n_proposals), axis=-1)]
