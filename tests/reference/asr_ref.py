"""Independent float32 CPU-torch reference of the MiMo-V2.5-ASR pipeline
after the audio tokenizer (spec/asr.md §7–§12), for parity tests.

The audio adapter (§9 steps 3–5, §10) is written here from the spec only;
its weights are read straight from the Hugging Face checkpoint folder
(config.json + *.safetensors in the official layout), never from GGUF, so a
converter bug cannot hide in both sides. The language model is transformers'
``Qwen2ForCausalLM`` loaded from the same folder (the audio and TTS tensors
are reported as unexpected and ignored). The prompt ids come from the
product's ``mimo_ggml.prompt`` (deterministic text logic with its own tests)
over a ``TextTokenizer`` built from the checkpoint's tokenizer.json.

Public API (numpy in, numpy out):

- ``adapter_reference(ckpt_dir, codes_padded, is_speech=None)`` ->
  ``ilt_input`` / ``ilt_output`` [G, 4, d_in] and ``audio_features``
  [G, n_embd] for codes [4·G, 8];
- ``inputs_embeds_reference(ckpt_dir, text_ids, is_speech, audio_features)``
  -> ``text_embeds``, ``audio_features``, ``inputs_embeds`` [G, n_embd];
- ``transcribe_reference(ckpt_dir, tokenizer_ckpt_dir, audio_24k, language,
  max_new_tokens)`` -> every §15 stage from codes to greedy ids.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "load_checkpoint",
    "asr_text_tokenizer",
    "adapter_reference",
    "inputs_embeds_reference",
    "load_lm",
    "transcribe_reference",
]

SPEC_EMPTY_IDS = [1024, 1024, 128, 128, 128, 128, 128, 128]
SPEC_SPEECH_VOCAB = [1025, 1025, 129, 129, 129, 129, 129, 129]

_CACHE: dict = {}


def _cached(kind: str, folder, build):
    folder = Path(folder).resolve()
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()))
    key = (kind, str(folder), stamp)
    if key not in _CACHE:
        _CACHE[key] = build(folder)
    return _CACHE[key]


def _per_channel(value, n: int, default: list[int]) -> list[int]:
    # "1025-1025-129-..." (official spelling) or a JSON list
    if value is None:
        return list(default)
    if isinstance(value, str):
        value = value.split("-")
    out = [int(v) for v in value]
    assert len(out) == n, f"expected {n} per-channel values, got {out}"
    return out


def load_checkpoint(ckpt_dir) -> tuple[dict, dict[str, torch.Tensor]]:
    """(merged config, {name: float32 tensor}) of a checkpoint folder."""

    def build(folder: Path):
        from safetensors.torch import load_file

        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        cfg = {**cfg, **(cfg.get("audio_config") or {})}
        tensors: dict[str, torch.Tensor] = {}
        for f in sorted(folder.glob("*.safetensors")):
            for k, v in load_file(str(f)).items():
                tensors[k] = v.to(torch.float32)
        return cfg, tensors

    return _cached("ckpt", ckpt_dir, build)


def _audio_hparams(cfg: dict) -> dict:
    channels = int(cfg.get("audio_channels", 8))
    return {
        "channels": channels,
        "group": int(cfg.get("group_size", 4)),
        "layers": int(cfg.get("input_local_layers", 6)),
        "d": int(cfg.get("input_local_dim", 1024)),
        "heads": int(cfg.get("input_local_attn_heads", 64)),
        "head_dim": int(cfg.get("input_local_head_dim", 16)),
        "vocab": _per_channel(cfg.get("speech_vocab_size"), channels, SPEC_SPEECH_VOCAB),
        "empty": _per_channel(cfg.get("speech_zeroemb_idx"), channels, SPEC_EMPTY_IDS),
        "full_attention": bool(cfg.get("input_full_attention", True)),
        "theta": float(cfg.get("rope_theta", 640000.0)),
        "eps": float(cfg.get("rms_norm_eps", 1e-6)),
    }


def asr_text_tokenizer(ckpt_dir):
    """A mimo_ggml TextTokenizer over the checkpoint's tokenizer.json, padded
    to the config's vocab_size with [PAD<id>] placeholders as a GGUF stores it."""

    def build(folder: Path):
        from mimo_ggml.text_tokenizer import TextTokenizer

        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        by_id = {int(i): s for s, i in data["model"]["vocab"].items()}
        for a in data.get("added_tokens", []):
            by_id[int(a["id"])] = a["content"]
        tokens = [by_id.get(i, f"[PAD{i}]") for i in range(int(cfg["vocab_size"]))]
        merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
        return TextTokenizer(tokens, merges)

    return _cached("text_tokenizer", ckpt_dir, build)


# ---------------------------------------------------------------------------
# audio adapter (§9 steps 3–5, §10)
# ---------------------------------------------------------------------------


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rope(x: torch.Tensor, theta: float) -> torch.Tensor:
    """NeoX / rotate-half RoPE over all head dims; x [..., S, hd], positions 0..S-1."""
    s, hd = x.shape[-2], x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = torch.arange(s, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def _ilt(x: torch.Tensor, t: dict[str, torch.Tensor], hp: dict) -> torch.Tensor:
    """Input local transformer on x [G, S, d] (groups independent)."""
    G, S, d = x.shape
    nh, hd, eps = hp["heads"], hp["head_dim"], hp["eps"]
    mask = None
    if not hp["full_attention"]:
        mask = torch.full((S, S), float("-inf")).triu(1)
    for i in range(hp["layers"]):
        p = f"input_local_transformer.layers.{i}."
        h = _rms(x, t[p + "input_layernorm.weight"], eps)

        def proj(name, bias=True):
            y = h @ t[p + f"self_attn.{name}_proj.weight"].T
            return y + t[p + f"self_attn.{name}_proj.bias"] if bias else y

        q = proj("q").view(G, S, nh, hd).transpose(1, 2)  # [G, nh, S, hd]
        k = proj("k").view(G, S, nh, hd).transpose(1, 2)
        v = proj("v").view(G, S, nh, hd).transpose(1, 2)
        q, k = _rope(q, hp["theta"]), _rope(k, hp["theta"])
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        if mask is not None:
            scores = scores + mask
        a = torch.softmax(scores, dim=-1) @ v  # [G, nh, S, hd]
        a = a.transpose(1, 2).reshape(G, S, nh * hd)
        x = x + a @ t[p + "self_attn.o_proj.weight"].T
        h = _rms(x, t[p + "post_attention_layernorm.weight"], eps)
        gate = h @ t[p + "mlp.gate_proj.weight"].T
        up = h @ t[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ t[p + "mlp.down_proj.weight"].T
    return _rms(x, t["input_local_transformer.norm.weight"], eps)


def adapter_reference(ckpt_dir, codes_padded, is_speech=None) -> dict:
    """§9 steps 3–5 for codes [4·G, channels] (time order, already padded).

    Every group is speech unless ``is_speech`` [G] says otherwise; then the
    embedding sum of non-speech groups is zeroed before the ILT (step 3) and
    their ILT output after it (step 4). Returns float32 numpy arrays:
    ``ilt_input`` [G, 4, d] (after the step-3 masking), ``ilt_output``
    [G, 4, d] (before the step-4 masking), ``audio_features`` [G, n_embd].
    """
    cfg, t = load_checkpoint(ckpt_dir)
    hp = _audio_hparams(cfg)
    S, C, d = hp["group"], hp["channels"], hp["d"]
    codes = torch.as_tensor(np.asarray(codes_padded, dtype=np.int64))
    assert codes.ndim == 2 and codes.shape[1] == C and codes.shape[0] % S == 0, codes.shape
    G = codes.shape[0] // S
    speech = torch.ones(G) if is_speech is None else torch.as_tensor(np.asarray(is_speech, dtype=np.float32))

    with torch.no_grad():
        s = torch.zeros(codes.shape[0], d)
        for c in range(C):
            col = codes[:, c]
            keep = col != hp["empty"][c]
            # rows at the empty id are masked, never looked up
            s[keep] += t[f"speech_embeddings.{c}.weight"][col[keep]]
        s = s.view(G, S, d) * speech[:, None, None]
        y = _ilt(s, t, hp)
        feats = (y * speech[:, None, None]).reshape(G, S * d) @ t["speech_group_downcast.weight"].T
    return {"ilt_input": s.numpy(), "ilt_output": y.numpy(), "audio_features": feats.numpy()}


def inputs_embeds_reference(ckpt_dir, text_ids, is_speech, audio_features) -> dict:
    """§9 steps 6–7. ``audio_features`` is [G, n_embd] (rows of text groups
    are ignored) or only the speech groups' rows [sum(is_speech), n_embd].
    Returns ``text_embeds``, ``audio_features`` (full G, zero at text
    groups) and ``inputs_embeds``, each [G, n_embd] float32."""
    cfg, t = load_checkpoint(ckpt_dir)
    ids = np.asarray(text_ids, dtype=np.int64)
    speech = np.asarray(is_speech, dtype=bool)
    G = ids.shape[0]
    emb = t["model.embed_tokens.weight"]
    af = np.asarray(audio_features, dtype=np.float32)
    full = np.zeros((G, emb.shape[1]), dtype=np.float32)
    if af.shape[0] == G:
        full[speech] = af[speech]
    else:
        assert af.shape[0] == int(speech.sum()), (af.shape, int(speech.sum()))
        full[speech] = af
    text = emb[torch.as_tensor(ids)].numpy().copy()
    text[speech] = 0.0  # the <|empty|> row is never used
    return {"text_embeds": text, "audio_features": full, "inputs_embeds": text + full}


# ---------------------------------------------------------------------------
# whole pipeline
# ---------------------------------------------------------------------------


def load_lm(ckpt_dir):
    """transformers' Qwen2ForCausalLM from the checkpoint folder (float32, eager attention)."""

    def build(folder: Path):
        import transformers
        from transformers import Qwen2ForCausalLM

        level = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        try:
            model, info = Qwen2ForCausalLM.from_pretrained(
                str(folder), dtype=torch.float32, attn_implementation="eager", output_loading_info=True
            )
        finally:
            transformers.logging.set_verbosity(level)
            transformers.logging.enable_progress_bar()
        assert not info["missing_keys"], f"LM weights missing: {info['missing_keys']}"
        return model.eval()

    return _cached("lm", ckpt_dir, build)


def transcribe_reference(
    ckpt_dir,
    tokenizer_ckpt_dir,
    audio_24k=None,
    language: str = "auto",
    max_new_tokens: int = 32,
    *,
    instruction: str | None = None,
    codes=None,
    ban_padding: bool = False,
) -> dict:
    """The whole ASR pipeline on a 24 kHz waveform (or on given ``codes``
    [T, 8], skipping the tokenizer).

    Greedy decoding with ``<|empty|>`` banned, as upstream does (and the
    vocabulary's ``[PAD…]`` rows too with ``ban_padding``; ties to the lowest
    id), stopping after ``<|im_end|>`` or
    ``<|endoftext|>`` (which is included in ``greedy_ids``) or after
    ``max_new_tokens`` ids. Returns:

    - ``codes`` [T_a, 8], ``gaps`` [T_a, 8] (RVQ near-tie gaps; None when
      codes were given), ``audio_codes`` [4·G_a, 8] (§7 padded);
    - ``prompt_ids`` [G] (row 0 of the matrix per group), ``prompt_matrix``
      [9, 4G], ``is_speech`` [G], ``audio_start``, ``n_audio_groups``;
    - ``ilt_input`` / ``ilt_output`` [G, 4, d], ``audio_features``,
      ``text_embeds``, ``inputs_embeds`` [G, n_embd];
    - ``last_hidden`` [n_embd], ``logits_step0`` [V];
    - ``step_logits`` [n, V] (logits each greedy id was chosen from),
      ``greedy_ids`` [n], ``margins`` [n] (top-1 minus top-2 of the allowed
      logits), ``stopped`` (ended on a stop id), ``text`` (raw decode of the
      ids before any stop id, special tokens kept).
    """
    from mimo_ggml.prompt import AsrSpecialIds, build_asr_prompt

    from reference.prompt_matrix import prompt_matrix

    from reference.audio_tokenizer_ref import encode_reference, pad_codes_ref

    cfg, _ = load_checkpoint(ckpt_dir)
    hp = _audio_hparams(cfg)
    gaps = None
    if codes is None:
        codes, gaps = encode_reference(tokenizer_ckpt_dir, np.asarray(audio_24k, dtype=np.float32))
    codes = np.asarray(codes, dtype=np.int64)
    padded = pad_codes_ref(codes, hp["group"])

    tok = asr_text_tokenizer(ckpt_dir)
    special = AsrSpecialIds.from_tokenizer(tok)
    prompt = build_asr_prompt(tok, padded.shape[0] // hp["group"], language, instruction)
    matrix = prompt_matrix(prompt, padded, hp["empty"])

    # §9 steps 1–2 from the matrix alone
    S = hp["group"]
    text_ids = matrix[0, ::S]
    G = text_ids.shape[0]
    is_speech = text_ids == special.empty
    group_codes = matrix[1:, :].T.reshape(G * S, hp["channels"])  # frame-major rows of 8 codes
    stages = adapter_reference(ckpt_dir, group_codes, is_speech)
    emb = inputs_embeds_reference(ckpt_dir, text_ids, is_speech, stages["audio_features"])

    lm = load_lm(ckpt_dir)
    vocab = lm.config.vocab_size
    banned = [special.empty]
    if ban_padding:
        banned += [i for i in range(vocab) if tok.id_to_token(i).startswith("[PAD")]
    stop = set(special.stop_ids)
    ids: list[int] = []
    step_logits: list[np.ndarray] = []
    margins: list[float] = []
    with torch.no_grad():
        out = lm(inputs_embeds=torch.as_tensor(emb["inputs_embeds"])[None], use_cache=True, output_hidden_states=True)
        last_hidden = out.hidden_states[-1][0, -1].numpy().copy()
        logits = out.logits[0, -1].clone()
        logits0 = logits.numpy().copy()
        past = out.past_key_values
        stopped = False
        for _ in range(max_new_tokens):
            masked = logits.clone()
            masked[banned] = float("-inf")
            nxt = int(torch.argmax(masked))  # first maximum: ties to the lowest id
            top2 = torch.topk(masked, 2).values
            step_logits.append(logits.numpy().copy())
            margins.append(float(top2[0] - top2[1]))
            ids.append(nxt)
            if nxt in stop:
                stopped = True
                break
            out = lm(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1].clone()
    body = ids[:-1] if stopped else ids
    return {
        "codes": codes,
        "gaps": gaps,
        "audio_codes": padded,
        "prompt_ids": np.asarray(text_ids, dtype=np.int64),
        "prompt_matrix": matrix,
        "is_speech": is_speech,
        "audio_start": prompt.audio_start,
        "n_audio_groups": prompt.n_audio_groups,
        "ilt_input": stages["ilt_input"],
        "ilt_output": stages["ilt_output"],
        "audio_features": emb["audio_features"],
        "text_embeds": emb["text_embeds"],
        "inputs_embeds": emb["inputs_embeds"],
        "last_hidden": last_hidden,
        "logits_step0": logits0,
        "step_logits": np.stack(step_logits) if step_logits else np.zeros((0, vocab), np.float32),
        "greedy_ids": np.asarray(ids, dtype=np.int64),
        "margins": np.asarray(margins, dtype=np.float32),
        "stopped": stopped,
        "text": tok.decode(body),
    }
