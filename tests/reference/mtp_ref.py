"""Independent float32 CPU-torch reference of MiMo-V2's MTP draft layers (spec/mtp.md §1.2, §1.3, §2.1).

Reads ``model.mtp.layers.{k}`` and the backbone's ``embed_tokens`` / ``lm_head``
straight from the Hugging Face folder (FP8 / bf16 decoding and the TP-chunked
qkv rule come from :class:`.mimo2_ref.Mimo2Reference`, with SWA geometry and
``ckpt_tp = num_key_value_heads``), never from GGUF.  No KV cache: every call
recomputes all rows it is given.

Public API::

    ref = MtpReference(folder, window_keys=129, hidden="post_norm")
    h = ref.backbone_hidden(token_ids)        # (T, H) hidden fed to hnorm (post- or pre-model.norm)
    logits = ref.layer_logits(k, hidden_rows, tokens, positions)   # (n, vocab)
    ref.draft_logits(hidden, tokens, s, anchor, K)   # (K, vocab): §2.1 drafting of d_1..d_K
    ref.draft(hidden, tokens, s, anchor, K)          # [d_1, ..., d_K] (argmax)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .mimo2_ref import Mimo2Reference

HIDDEN_CHOICES = ("post_norm", "pre_norm")  # spec/mtp.md §3: SGLang/vLLM vs llama.cpp


class MtpReference:
    def __init__(self, folder: str | Path, window_keys: int = 129, hidden: str = "post_norm"):
        if hidden not in HIDDEN_CHOICES:
            raise ValueError(f"hidden must be one of {HIDDEN_CHOICES}, not {hidden!r}")
        self.backbone = Mimo2Reference(folder, window_keys=window_keys)
        self.hidden = hidden
        cfg = self.backbone.cfg
        self.n_layers = sum(1 for n in self.backbone.t if n.startswith("model.mtp.layers.") and n.endswith(".eh_proj.weight"))
        # §1.3: always the SWA attention variant, RoPE at swa_rope_theta
        self.nkv = int(cfg["swa_num_key_value_heads"])
        self.theta = float(cfg["swa_rope_theta"])
        self.ckpt_tp = int(cfg["num_key_value_heads"])  # §1.1: the MTP qkv_proj is chunked over these ranks
        self.window_keys = window_keys

    # -- backbone side -------------------------------------------------------------------------
    def backbone_hidden(self, ids) -> np.ndarray:
        """The hidden state §3 feeds to hnorm, for every position of ``ids``."""
        last = self.backbone.n_layer - 1
        hs = self.backbone.hidden_states(ids, [last])
        return hs["post_norm"] if self.hidden == "post_norm" else hs[last]

    # -- one layer -----------------------------------------------------------------------------
    @torch.no_grad()
    def layer_logits(self, k: int, hidden_rows, tokens, positions) -> np.ndarray:
        """§1.2 for rows (hid_i, tok_i) at RoPE positions ``positions``; causal SWA over these rows only."""
        if not 0 <= k < self.n_layers:
            raise ValueError(f"MTP layer {k} outside 0..{self.n_layers - 1}")
        bb = self.backbone
        mp = f"model.mtp.layers.{k}"
        hid = torch.as_tensor(np.asarray(hidden_rows, dtype=np.float32))
        tok = torch.as_tensor(np.asarray(tokens, dtype=np.int64))
        pos = torch.as_tensor(np.asarray(positions, dtype=np.int64))
        e = bb.rms(bb.t["model.embed_tokens.weight"].to(torch.float32)[tok], f"{mp}.enorm.weight")
        g = bb.rms(hid, f"{mp}.hnorm.weight")
        x = torch.cat([e, g], dim=-1) @ bb.weight(f"{mp}.eh_proj").T  # embedding half first
        x = x + bb.self_attention(f"{mp}.self_attn", bb.rms(x, f"{mp}.input_layernorm.weight"), pos,
                                  nkv=self.nkv, tp=self.ckpt_tp, theta=self.theta, window_keys=self.window_keys)
        x = x + bb.mlp(f"{mp}.mlp", bb.rms(x, f"{mp}.pre_mlp_layernorm.weight"))
        out = bb.rms(x, f"{mp}.final_layernorm.weight")
        return (out @ bb.weight("lm_head").T).numpy()

    # -- drafting ------------------------------------------------------------------------------
    def draft_logits(self, hidden_rows_all, tokens_all, s: int, anchor: int, K: int, drafts=None) -> np.ndarray:
        """§2.1: logits of d_1..d_K for anchor t_s, given target hiddens h_0..h_{s-1} and tokens t_0..t_{s-1}.

        Layer k runs rows i = 0..s-1 with (h_i, tok(i+k+1)) at RoPE position i, where tok(j) = t_j
        for j < s, t_s = anchor and tok(s+m) = d_m; d_{k+1} comes from row s-1.  Every layer sees the
        target's hidden (no chaining).  ``drafts`` forces d_1..d_{K-1} (teacher forcing) instead of
        each layer's argmax.
        """
        if not 1 <= K <= self.n_layers:
            raise ValueError(f"K = {K} outside 1..{self.n_layers}")
        if s < 1:
            raise ValueError("drafting needs at least one target row (s >= 1)")
        hid = np.asarray(hidden_rows_all, dtype=np.float32)[:s]
        seq = [int(t) for t in np.asarray(tokens_all).reshape(-1)[:s]] + [int(anchor)]
        if hid.shape[0] != s or len(seq) != s + 1:
            raise ValueError(f"need {s} hidden rows and {s} tokens before the anchor")
        out = []
        for k in range(K):
            logits = self.layer_logits(k, hid, seq[k + 1 : s + k + 1], np.arange(s))
            out.append(logits[s - 1])
            seq.append(int(drafts[k]) if drafts is not None and k < len(drafts) else int(np.argmax(logits[s - 1])))
        return np.stack(out)

    def draft(self, hidden_rows_all, tokens_all, s: int, anchor: int, K: int) -> list[int]:
        return [int(np.argmax(row)) for row in self.draft_logits(hidden_rows_all, tokens_all, s, anchor, K)]
