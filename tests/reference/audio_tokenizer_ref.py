"""Independent float32 CPU-torch reference of the MiMo audio tokenizer.

Written from spec/asr.md §2–§7 only, to be compared against mimo-ggml's
numpy front-end (``mimo_ggml.audio``) and, later, its ggml encoder.  It reads
the weights straight from a Hugging Face checkpoint folder (config.json +
*.safetensors in the official MiMo-Audio-Tokenizer layout), never from GGUF,
so a converter bug cannot hide in both sides.

Public API (all arrays are numpy; waveforms float32 1-D):

- ``resample_ref(x, sr_in, sr_out)`` — windowed-sinc resampler as one
  torch ``conv1d`` with one output channel per phase and stride a;
- ``mel_filterbank_ref()`` / ``log_mel_ref(chunk, log=True)`` — torch.stft
  front-end; ``log=False`` returns the linear mel energies;
- ``chunk_bounds_ref(n)`` / ``pad_chunk_ref(x)`` / ``pad_codes_ref(codes)`` —
  §3 chunking, short-chunk padding and §7 repeat-last-frame padding;
- ``ReferenceTokenizer(checkpoint_dir, bf16_rope=True)`` with
  ``.stages(chunk)`` (every §15 stage of one chunk), ``.encode(wave)`` and
  ``.rvq(pooled)``;
- ``run_reference(checkpoint_dir, wave24k)`` -> dict of stage arrays;
- ``encode_reference(checkpoint_dir, audio_24k)`` -> (codes [T, 8] int64,
  gaps [T, 8] float32).

``gaps[t, s]`` is, for frame t and RVQ stage s, the difference between the
second-smallest and the smallest squared distance (≥ 0).  A code may
legitimately differ in another implementation only where this gap is tiny.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE = 24_000
CHUNK = 720_000
N_FFT = 960
HOP = 240
N_MELS = 128
LN_EPS = 1e-5
N_STAGES = 8

__all__ = [
    "resample_ref",
    "mel_filterbank_ref",
    "log_mel_ref",
    "chunk_bounds_ref",
    "pad_chunk_ref",
    "pad_codes_ref",
    "ReferenceTokenizer",
    "run_reference",
    "encode_reference",
]


# ---------------------------------------------------------------------------
# front-end
# ---------------------------------------------------------------------------


def _phase_kernels(a: int, b: int, width: int = 6, rolloff: float = 0.99) -> tuple[torch.Tensor, int]:
    """[b, 1, 2w + a] conv1d weights, one output channel per output phase."""
    fc = min(a, b) * rolloff
    w = math.ceil(width * a / fc)
    k = torch.arange(2 * w + a, dtype=torch.float32)
    j = torch.arange(b, dtype=torch.float32)
    u = (k[None, :] - w) / a - j[:, None] / b
    xs = torch.clamp(u * fc, -width, width)
    win = torch.cos(xs * (math.pi / (2 * width))) ** 2
    px = math.pi * xs
    sinc = torch.where(px == 0, torch.ones_like(px), torch.sin(px) / torch.where(px == 0, torch.ones_like(px), px))
    return ((fc / a) * sinc * win)[:, None, :], w


def resample_ref(x, sr_in: int, sr_out: int) -> np.ndarray:
    """Spec §2.3 resampler: strided correlation, phases interleaved, ceil(b·N/a) kept."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if sr_in == sr_out:
        return x.numpy().copy()
    g = math.gcd(sr_in, sr_out)
    a, b = sr_in // g, sr_out // g
    kern, w = _phase_kernels(a, b)
    xp = F.pad(x[None, None], (w, w + a))
    with torch.no_grad():
        y = F.conv1d(xp, kern, stride=a)  # [1, b, frames]
    y = y[0].t().reshape(-1)
    return y[: math.ceil(b * x.numel() / a)].numpy()


def mel_filterbank_ref(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SAMPLE_RATE) -> torch.Tensor:
    """[n_fft//2+1, n_mels] HTK triangles (torch float32), no Slaney normalisation."""
    freqs = torch.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_hi = 2595.0 * math.log10(1.0 + (sr / 2) / 700.0)
    mels = torch.linspace(0.0, mel_hi, n_mels + 2)
    p = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    fb = torch.zeros(n_fft // 2 + 1, n_mels)
    for m in range(n_mels):
        left = (freqs - p[m]) / (p[m + 1] - p[m])
        right = (p[m + 2] - freqs) / (p[m + 2] - p[m + 1])
        fb[:, m] = torch.clamp(torch.minimum(left, right), min=0.0)
    return fb


def log_mel_ref(chunk, log: bool = True) -> np.ndarray:
    """[T_mel, 128]: torch.stft (periodic Hann, reflect centre), |X|, mel, ln(max(·,1e-7))."""
    x = torch.as_tensor(np.asarray(chunk, dtype=np.float32))
    spec = torch.stft(
        x,
        n_fft=N_FFT,
        hop_length=HOP,
        win_length=N_FFT,
        window=torch.hann_window(N_FFT, periodic=True),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    ).abs()  # [481, T]
    mel = (mel_filterbank_ref().t() @ spec).t().contiguous()  # [T, 128]
    if log:
        mel = torch.log(torch.clamp(mel, min=1e-7))
    return mel.numpy()


def chunk_bounds_ref(n: int) -> list[tuple[int, int]]:
    """§3: 30 s chunk boundaries, a tail shorter than 960 samples joins the last chunk."""
    if n <= 0:
        return []
    starts = list(range(0, n, CHUNK))
    if len(starts) > 1 and n - starts[-1] < N_FFT:
        starts.pop()
    ends = starts[1:] + [n]
    return list(zip(starts, ends))


def pad_chunk_ref(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return np.pad(x, (0, max(0, N_FFT - len(x))))


def pad_codes_ref(codes: np.ndarray, group: int = 4) -> np.ndarray:
    """§7: repeat the last frame until the frame count is a multiple of ``group``."""
    extra = (-len(codes)) % group
    if extra == 0:
        return codes
    return np.concatenate([codes, np.repeat(codes[-1:], extra, axis=0)], axis=0)


# ---------------------------------------------------------------------------
# encoder + RVQ
# ---------------------------------------------------------------------------


def _load_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {folder}")
    out = {}
    for f in files:
        with safe_open(str(f), framework="pt") as h:
            for name in h.keys():
                if name.startswith("decoder."):
                    continue
                out[name] = h.get_tensor(name).to(torch.float32)
    return out


class ReferenceTokenizer:
    """The tokenizer encoder of one checkpoint folder, in float32 torch.

    ``bf16_rope=True`` (default, spec §5 numerics note) rounds the RoPE
    inverse frequencies to bfloat16 as the official pipeline does;
    ``False`` uses the exact float32 θ_i.
    """

    def __init__(self, checkpoint_dir, *, bf16_rope: bool = True):
        self.folder = Path(checkpoint_dir)
        cfg = json.loads((self.folder / "config.json").read_text())
        self.cfg = cfg
        self.d = int(cfg["d_model"])
        self.n_layers = int(cfg["encoder_layers"])
        self.heads = int(cfg["encoder_attention_heads"])
        self.head_dim = self.d // self.heads
        self.skip = cfg.get("encoder_skip_layer_id", 3)
        self.kernel = int(cfg.get("kernel_size", 3))
        self.stride = int(cfg.get("stride_size", 2))
        self.pool = int(cfg.get("avg_pooler", 2))
        self.theta = float(cfg.get("rope_theta", 10000.0))
        self.bf16_rope = bf16_rope
        self.w = _load_weights(self.folder)
        q = "encoder.quantizer." if any(k.startswith("encoder.quantizer.") for k in self.w) else "encoder.quant."
        self.codebooks = []
        s = 0
        while f"{q}vq.layers.{s}._codebook.embed" in self.w:
            self.codebooks.append(self.w[f"{q}vq.layers.{s}._codebook.embed"])
            s += 1

    # -- pieces --------------------------------------------------------------

    def _ln(self, x, prefix):
        return F.layer_norm(x, (self.d,), self.w[prefix + ".weight"], self.w[prefix + ".bias"], LN_EPS)

    def _lin(self, x, prefix, bias=True):
        return F.linear(x, self.w[prefix + ".weight"], self.w[prefix + ".bias"] if bias else None)

    def inv_freq(self) -> torch.Tensor:
        hd = self.head_dim
        f = 1.0 / (self.theta ** (torch.arange(0, hd, 2, dtype=torch.int64).to(torch.float32) / hd))
        if self.bf16_rope:
            f = f.to(torch.bfloat16).to(torch.float32)
        return f

    def _rope(self, x, cos, sin):
        # x: [H, T, hd]; rotate-half pairing i <-> i + hd/2
        h = self.head_dim // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
        return x * cos + rot * sin

    def _layer(self, x, i, cos, sin):
        p = f"encoder.layers.{i}"
        T = x.shape[0]
        h = self._ln(x, p + ".self_attn_layer_norm")
        q = self._lin(h, p + ".self_attn.q_proj")
        k = self._lin(h, p + ".self_attn.k_proj", bias=False)  # the key projection has no bias
        v = self._lin(h, p + ".self_attn.v_proj")
        q, k, v = (t.view(T, self.heads, self.head_dim).transpose(0, 1) for t in (q, k, v))
        q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
        att = torch.softmax((q @ k.transpose(1, 2)) / math.sqrt(self.head_dim), dim=-1)
        o = (att @ v).transpose(0, 1).reshape(T, self.d)
        x = x + self._lin(o, p + ".self_attn.out_proj")
        h = self._ln(x, p + ".final_layer_norm")
        return x + self._lin(F.gelu(self._lin(h, p + ".fc1")), p + ".fc2")

    def rvq(self, pooled, n_stages: int = N_STAGES) -> tuple[np.ndarray, np.ndarray]:
        """Residual VQ of [T, d] frames: codes [T, n] int64, best/second gaps [T, n] float32."""
        r = torch.as_tensor(np.asarray(pooled, dtype=np.float32))
        codes, gaps = [], []
        for s in range(n_stages):
            e = self.codebooks[s]
            dist = (r * r).sum(-1, keepdim=True) - 2.0 * (r @ e.t()) + (e * e).sum(-1)[None, :]
            idx = torch.argmin(dist, dim=-1)  # first minimum: ties go to the lowest index
            if e.shape[0] > 1:
                two = torch.topk(dist, 2, dim=-1, largest=False).values
                gaps.append(two[:, 1] - two[:, 0])
            else:
                gaps.append(torch.full((r.shape[0],), float("inf")))
            codes.append(idx)
            r = r - e[idx]
        return torch.stack(codes, 1).numpy().astype(np.int64), torch.stack(gaps, 1).numpy().astype(np.float32)

    # -- whole chunk ---------------------------------------------------------

    @torch.no_grad()
    def encode_mel(self, mel, n_stages: int = N_STAGES, keep_layers: bool = True) -> dict:
        """Every stage from a [T_mel, n_mels] log-mel: conv stem → layers → pool → RVQ."""
        m = torch.as_tensor(np.asarray(mel, dtype=np.float32))
        out: dict = {"tok_mel": m.numpy()}
        x = F.gelu(F.conv1d(m.t()[None], self.w["encoder.conv1.weight"], self.w["encoder.conv1.bias"], padding=1))
        out["tok_conv1_out"] = x[0].t().numpy()
        x = F.gelu(
            F.conv1d(x, self.w["encoder.conv2.weight"], self.w["encoder.conv2.bias"], stride=self.stride, padding=1)
        )
        x = x[0].t().contiguous()  # [T_enc, d]
        out["tok_conv2_out"] = x.numpy()
        T = x.shape[0]
        ang = torch.arange(T, dtype=torch.float32)[:, None] * self.inv_freq()[None, :]
        ang = torch.cat([ang, ang], dim=-1)
        cos, sin = torch.cos(ang), torch.sin(ang)
        kept = None
        for i in range(self.n_layers):
            x = self._layer(x, i, cos, sin)
            if keep_layers:
                out[f"tok_layer{i}_out"] = x.numpy()
            if self.skip is not None and i == int(self.skip) - 1:
                kept = x.clone()
        if kept is not None:
            x = x + kept
        x = self._ln(x, "encoder.layer_norm")
        out["tok_xfmr_out"] = x.numpy()
        if self.pool != 1:
            extra = (-T) % self.pool
            if extra:
                x = torch.cat([x, torch.zeros(extra, self.d)], dim=0)
            y = F.conv1d(x.t()[None], self.w["encoder.down_sample_layer.0.weight"], None, stride=self.pool)
            x = self._ln(F.gelu(y)[0].t(), "encoder.down_sample_norm")
        out["tok_pool_out"] = x.numpy()
        codes, gaps = self.rvq(x, n_stages)
        out["tok_codes"] = codes
        out["tok_code_gaps"] = gaps
        return out

    def stages(self, chunk, n_stages: int = N_STAGES, keep_layers: bool = True) -> dict:
        """All §15 stages of one 24 kHz chunk (short chunks are padded to 960 first)."""
        return self.encode_mel(log_mel_ref(pad_chunk_ref(chunk)), n_stages, keep_layers)

    def encode(self, wave24k, n_stages: int = N_STAGES) -> tuple[np.ndarray, np.ndarray]:
        """Codes of a whole waveform: independent 30 s chunks, concatenated (no ×4 padding)."""
        wave = np.asarray(wave24k, dtype=np.float32)
        codes, gaps = [], []
        for s, e in chunk_bounds_ref(len(wave)):
            st = self.stages(wave[s:e], n_stages, keep_layers=False)
            codes.append(st["tok_codes"])
            gaps.append(st["tok_code_gaps"])
        return np.concatenate(codes), np.concatenate(gaps)


def run_reference(
    checkpoint_dir,
    wave24k,
    *,
    bf16_rope: bool = True,
    n_stages: int = N_STAGES,
    all_chunks: bool = False,
) -> dict:
    """Every stage for a 24 kHz waveform.

    Keys: the §15 stages of chunk 0 (``tok_mel``, ``tok_conv1_out``,
    ``tok_conv2_out``, ``tok_layer{i}_out``, ``tok_xfmr_out``,
    ``tok_pool_out``, ``tok_codes``, ``tok_code_gaps``), plus
    ``chunk_bounds`` (list of (start, end)), ``codes`` / ``gaps`` over all
    chunks [T_a, 8], and ``audio_codes`` (§7 repeat-padded to a multiple of 4).
    With ``all_chunks=True`` also ``chunk_stages``: one stage dict per chunk.
    """
    tok = ReferenceTokenizer(checkpoint_dir, bf16_rope=bf16_rope)
    wave = np.asarray(wave24k, dtype=np.float32)
    bounds = chunk_bounds_ref(len(wave))
    if not bounds:
        raise ValueError("empty waveform")
    per_chunk = []
    for c, (s, e) in enumerate(bounds):
        per_chunk.append(tok.stages(wave[s:e], n_stages, keep_layers=(c == 0 or all_chunks)))
    out = dict(per_chunk[0])
    out["chunk_bounds"] = bounds
    out["codes"] = np.concatenate([p["tok_codes"] for p in per_chunk])
    out["gaps"] = np.concatenate([p["tok_code_gaps"] for p in per_chunk])
    out["audio_codes"] = pad_codes_ref(out["codes"])
    if all_chunks:
        out["chunk_stages"] = per_chunk
    return out


def encode_reference(
    checkpoint_dir, audio_24k, *, bf16_rope: bool = True, n_stages: int = N_STAGES
) -> tuple[np.ndarray, np.ndarray]:
    """(codes [T, 8] int64, gaps [T, 8] float32) of a 24 kHz waveform, chunks concatenated."""
    return ReferenceTokenizer(checkpoint_dir, bf16_rope=bf16_rope).encode(audio_24k, n_stages)
