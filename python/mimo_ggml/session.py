"""Speech recognition with MiMo-V2.5-ASR: :class:`AsrModel` and :class:`Session`.

An AsrModel is the loaded model — the audio tokenizer, the audio adapter and
the Qwen2 language model, each file opened once, on one device — and is
shared read-only by any number of sessions. A Session holds the per-request
state (KV cache, graphs) and transcribes; sessions on one model may run in
different threads at the same time::

    model = AsrModel.load("mimo-asr-q4_k.gguf", n_threads=2)
    with model.session() as asr:                     # or Session(model)
        result = asr.transcribe("meeting.flac", language="en")
        print(result.text)
        for seg in result.segments:
            print(seg.start, seg.end, seg.text)

``Session("mimo-asr-q4_k.gguf")`` loads a model of its own (closed with the
session). Long audio is split at pauses into clips of at most ``max_clip_s``
seconds (spec asr.md §13); each clip is transcribed with the full prompt and
becomes one segment with its real start and end times. Every clip is one
native call: codes, adapter features, prefill and the decode loop all run in
C++ with the GIL released; Python keeps the edges (audio decoding,
resampling, log-mel, prompt text, post-processing).
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, fields
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from . import _core
from .lifetime import Closeable
from .arguments import device_arguments, integer, optional_integer, text
from .audio import DEFAULT_MAX_DURATION_S, TARGET_SAMPLE_RATE, load_audio, split_on_pauses
from .audio_tokenizer import clip_mels
from .concurrency import OperationLock
from .errors import InvalidArgumentError, UnsupportedModelError
from .models import DEFAULT_MODEL, resolve_asr_files
from .postprocess import language_tag_probability, postprocess_ids
from .prompt import AsrSpecialIds, asr_prompt_parts, normalize_language
from .results import Segment, Transcription
from .text_tokenizer import TextTokenizer
from .vad import DEFAULT_MAX_SEGMENT_S, speech_segments

__all__ = ["AsrModel", "Session", "TranscribeOptions", "default_token_budget"]

# progress(done_seconds, total_seconds): called as decoding advances and as clips finish
ProgressCallback = Callable[[float, float], None]
# on_token(segment_index, token_id) -> False to cancel (GenerationCancelled)
TokenCallback = Callable[[int, int], Optional[bool]]

DEFAULT_MAX_NEW_TOKENS = 1024  # spec §12.1 step 6
AUDIO_SAMPLES_PER_CODE = TARGET_SAMPLE_RATE // 25  # the tokenizer's 25 Hz code rate
_VOCAB_KEYS = ["tokenizer.ggml.tokens", "tokenizer.ggml.merges"]


def default_token_budget(clip_seconds: float) -> int:
    """New tokens allowed for a clip: generous for fast speech (~12 tokens/s
    covers Chinese read quickly) and never above the spec's 1024 default."""
    return min(DEFAULT_MAX_NEW_TOKENS, 32 + math.ceil(12.0 * clip_seconds))


def _padding_rows(tokens: list[str]) -> list[int]:
    """Ids of the vocabulary's ``[PAD…]`` filler rows."""
    return [i for i, t in enumerate(tokens) if t.startswith("[PAD") and t.endswith("]")]


class AsrModel(Closeable):
    """A loaded MiMo-V2.5-ASR model, shared by its sessions.

    model: a ``mimo_asr`` GGUF file, a folder holding one, or a Hugging Face
    repo id (``"cstr/mimo-asr-GGUF"``) found in the local Hugging Face cache.
    tokenizer: the audio-tokenizer GGUF (default: next to the model file).
    device: ``"auto"`` (first GPU, else CPU), ``"cpu"``, ``"cuda:0"``,
    ``"rpc:HOST:PORT"`` (a ``mimo-ggml rpc-server``)… devices: instead of one ``device``, a list
    (``["cpu", "rpc:HOST:PORT", ...]``) over which each stack of layers is
    split in order, in proportion to ``layer_split`` (one share per device;
    None: equal shares); everything outside the layers stays on the first.
    n_threads: CPU threads per session (None: all cores).
    download: allow huggingface_hub to download a repo that is not cached.

    The model is immutable: any number of sessions, in any threads, share its
    weights. ``close()`` drops the model's hold on them; sessions still open
    keep working, and the memory is freed when the last of them closes.
    """

    def __init__(
        self,
        model: str | os.PathLike = DEFAULT_MODEL,
        tokenizer: str | os.PathLike | None = None,
        *,
        device: str = "auto",
        n_threads: Optional[int] = None,
        download: bool = True,
        devices: Optional[Sequence[str]] = None,
        layer_split: Optional[Sequence[float]] = None,
    ):
        where = device_arguments(device, devices, layer_split)  # checked before any download
        self.download = bool(download)
        # every Hub repo involved is resolved before any download (one message lists what is missing)
        self.model_path, self.tokenizer_path = resolve_asr_files(model, tokenizer, download=download)
        self._native = _core.AsrModel(str(self.model_path), str(self.tokenizer_path), **where,
                                      n_threads=optional_integer("n_threads", n_threads))
        try:
            fields = self._native.string_arrays(_VOCAB_KEYS)
            vocab = fields.get("tokenizer.ggml.tokens", [])
            if "tokenizer.ggml.merges" not in fields or "<|empty|>" not in vocab:
                raise UnsupportedModelError(
                    f"{self.model_path} is a legacy MiMo-ASR file (truncated vocabulary without <|empty|> or no BPE "
                    "merges); download a current mimo-asr-*.gguf or convert the checkpoint with `mimo-ggml convert asr`"
                )
            self.text_tokenizer = TextTokenizer.from_gguf_fields(vocab, fields["tokenizer.ggml.merges"])
            self.special = AsrSpecialIds.from_tokenizer(self.text_tokenizer)
            self.padding_ids = _padding_rows(vocab)
        except BaseException:
            self._native.close()
            raise

    @classmethod
    def load(cls, model: str | os.PathLike, tokenizer: str | os.PathLike | None = None, **kwargs) -> "AsrModel":
        """Load a model (the same arguments as the constructor)."""
        return cls(model, tokenizer, **kwargs)

    def session(self, *, kv_type: str = "f16", n_ctx: int = 4096, ban_padding_tokens: bool = False) -> "Session":
        """A new session on this model (its own KV cache and scratch memory)."""
        return Session(self, kv_type=kv_type, n_ctx=n_ctx, ban_padding_tokens=ban_padding_tokens)

    # model facts, read from the loaded files
    group_size = property(lambda self: self._native.group_size)
    channels = property(lambda self: self._native.channels)
    empty_ids = property(lambda self: list(self._native.empty_ids))
    n_vocab = property(lambda self: self._native.n_vocab)
    n_embd = property(lambda self: self._native.n_embd)
    device = property(lambda self: self._native.device)
    n_threads = property(lambda self: self._native.n_threads)
    weights_bytes = property(lambda self: self._native.weights_bytes)
    # {device name: bytes}: where the weights live (several devices with ``devices=``)
    weights_bytes_by_device = property(lambda self: dict(self._native.weights_bytes_by_device))
    closed = property(lambda self: self._native.closed)

    def close(self) -> None:
        """Drop this handle's reference to the weights (open sessions keep theirs)."""
        self._native.close()


@dataclass(frozen=True)
class TranscribeOptions:
    """The options of :meth:`Session.transcribe` and :meth:`Session.transcribe_stream`.

    language: "auto" (the model tags the language), "en" or "zh".
    max_new_tokens: cap per clip (None: grows with the clip's length, at
    most 1024). max_clip_s: without the VAD, split longer audio at pauses
    (None: one pass).
    instruction: replaces the pinned instruction text of the prompt.
    progress(done_s, total_s): called as decoding advances (against each
    clip's token budget) and as clips finish.
    on_token(segment_index, token_id): called for every generated id;
    returning False cancels (:class:`~mimo_ggml.errors.GenerationCancelled`).
    batch_size: clips decoded together (1: one after another). Every LM step
    then reads the weights once for all of them; results are the same. The
    default 8, by bench/longform.py: 8 and 16 gave the same throughput on an
    AVX2 host (1.11x batch 1) and 16 gained 5% more on an AVX-512 one
    (1.38x against 1.31x), while 8 prints the first segments sooner.
    vad: where speech is: True (Silero VAD, found as :mod:`mimo_ggml.vad`
    says), a path to its .onnx file, or False for the plain clips of
    ``max_clip_s`` cut at pauses (every sample decoded).
    max_segment_s: longest speech segment with the VAD (default 15 s, suited
    to subtitles); silence between segments is never decoded.
    max_duration_s, allow_special_files: limits of the audio input, as
    :func:`mimo_ggml.audio.load_audio` takes them.
    """

    language: str = "auto"
    max_new_tokens: Optional[int] = None
    max_clip_s: Optional[float] = 60.0
    instruction: Optional[str] = None
    progress: Optional[ProgressCallback] = None
    on_token: Optional[TokenCallback] = None
    batch_size: int = 8
    vad: "bool | str | os.PathLike" = True
    max_segment_s: Optional[float] = DEFAULT_MAX_SEGMENT_S
    max_duration_s: Optional[float] = DEFAULT_MAX_DURATION_S
    allow_special_files: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 64:
            raise InvalidArgumentError(f"batch_size must be an integer from 1 to 64, got {self.batch_size!r}")
        normalize_language(self.language)
        n = self.max_new_tokens
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise InvalidArgumentError(f"max_new_tokens must be an integer >= 1 or None, got {n!r}")
        if self.max_clip_s is not None and not (isinstance(self.max_clip_s, (int, float)) and self.max_clip_s >= 2.0):
            raise InvalidArgumentError(f"max_clip_s must be at least 2 seconds or None, got {self.max_clip_s!r}")
        for name in ("progress", "on_token"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise InvalidArgumentError(f"{name} must be callable or None")

    @classmethod
    def of(cls, options: dict) -> "TranscribeOptions":
        unknown = set(options) - {f.name for f in fields(cls)}
        if unknown:
            raise InvalidArgumentError(f"unknown transcription option(s) {sorted(unknown)}; accepted: "
                                       f"{', '.join(f.name for f in fields(cls))}")
        return cls(**options)


class Session(Closeable):
    """A transcription session on an :class:`AsrModel`.

    model: an AsrModel, or what :class:`AsrModel` takes (a path, folder or
    repo id; then ``tokenizer``, ``device`` (or ``devices`` and
    ``layer_split``), ``n_threads`` and ``download`` go to the model, which this session owns and closes).
    kv_type: ``"f16"`` (default), ``"f32"`` or ``"q8_0"``. n_ctx: LM
    positions per clip (prompt + text).
    ban_padding_tokens: never emit the vocabulary's ``[PAD…]`` filler rows
    (default False: like the upstream decoder, only ``<|empty|>`` is banned).

    One operation runs at a time on a session: calls from other threads
    wait. Open one session per thread on a shared model for parallel work.
    """

    def __init__(
        self,
        model: "AsrModel | str | os.PathLike",
        tokenizer: str | os.PathLike | None = None,
        *,
        device: str = "auto",
        n_threads: Optional[int] = None,
        kv_type: str = "f16",
        n_ctx: int = 4096,
        download: bool = True,
        ban_padding_tokens: bool = False,
        devices: Optional[Sequence[str]] = None,
        layer_split: Optional[Sequence[float]] = None,
    ):
        if isinstance(model, AsrModel):
            if tokenizer is not None:
                raise InvalidArgumentError("tokenizer is part of the AsrModel; pass it to AsrModel.load instead")
            self.model, self._owns_model = model, False
        else:
            self.model = AsrModel(model, tokenizer, device=device, n_threads=n_threads, download=download,
                                  devices=devices, layer_split=layer_split)
            self._owns_model = True
        try:
            self._native = self.model._native.session(n_ctx=integer("n_ctx", n_ctx), kv_type=text("kv_type", kv_type))
        except BaseException:
            if self._owns_model:
                self.model.close()
            raise
        special = self.model.special
        self._banned = [special.empty] + (self.model.padding_ids if ban_padding_tokens else [])
        self._stops = list(special.stop_ids)
        self._prompts: dict = {}  # (language, instruction) -> (prefix ids, suffix ids)
        self._busy = OperationLock("Session")

    # shortcuts kept for callers of the earlier single-object Session
    model_path = property(lambda self: self.model.model_path)
    tokenizer_path = property(lambda self: self.model.tokenizer_path)
    text_tokenizer = property(lambda self: self.model.text_tokenizer)
    special = property(lambda self: self.model.special)
    n_ctx = property(lambda self: self._native.n_ctx)
    kv_type = property(lambda self: self._native.kv_type)
    kv_bytes = property(lambda self: self._native.kv_bytes)

    # -- transcription ------------------------------------------------------
    def transcribe(self, audio, sample_rate: Optional[int] = None, **options) -> Transcription:
        """Transcribe a file path, bytes, file object, array (with
        ``sample_rate``) or ``(array, rate)`` tuple. The keyword options are
        the fields of :class:`TranscribeOptions` (language, max_new_tokens,
        max_clip_s, instruction, progress, on_token)."""
        opts = TranscribeOptions.of(options)
        timings: dict[str, float] = {}
        with self._busy.hold():
            segments = list(self._segments(audio, sample_rate, opts, timings))
        duration = timings.pop("_duration")
        return Transcription.from_segments(segments, language=normalize_language(opts.language), duration=duration,
                                           timings=timings)

    def transcribe_stream(self, audio, sample_rate: Optional[int] = None, **options) -> Iterator[Segment]:
        """Like :meth:`transcribe`, yielding each segment as its clip finishes
        (the options are checked at the call, the work runs as it is iterated)."""
        opts = TranscribeOptions.of(options)

        def stream():
            with self._busy.hold():
                yield from self._segments(audio, sample_rate, opts, {})

        return stream()

    def _prompt(self, language: str, instruction: Optional[str]) -> tuple[list[int], list[int]]:
        key = (language, instruction)
        if key not in self._prompts:
            self._prompts[key] = asr_prompt_parts(self.model.text_tokenizer, language, instruction)
        return self._prompts[key]

    def _segments(self, audio, sample_rate, opts: "TranscribeOptions", timings):
        lang = normalize_language(opts.language)
        prefix, suffix = self._prompt(lang, opts.instruction)  # validates the instruction before any work
        t0 = time.perf_counter()
        wave = load_audio(audio, sample_rate, max_duration_s=opts.max_duration_s,
                          allow_special_files=opts.allow_special_files)
        _add(timings, "load_audio", time.perf_counter() - t0)
        total = len(wave) / TARGET_SAMPLE_RATE
        timings["_duration"] = total
        if opts.vad is False:
            spans = [(a, b, None) for a, b in split_on_pauses(wave, TARGET_SAMPLE_RATE, max_clip_s=opts.max_clip_s)]
        else:
            t0 = time.perf_counter()
            spans = [(g.start, g.end, g.no_speech_prob) for g in
                     speech_segments(wave, TARGET_SAMPLE_RATE, max_segment_s=opts.max_segment_s, vad=opts.vad,
                                     download=self.model.download)]
            _add(timings, "vad", time.perf_counter() - t0)
        clips = [_Clip(i, a, b, opts, no_speech) for i, (a, b, no_speech) in enumerate(spans)]
        run = self._run_batched if opts.batch_size > 1 and len(clips) > 1 else self._run_one_by_one
        for clip, out in run(wave, clips, prefix, suffix, opts, total, timings):
            for phase in ("audio_encode", "lm_prefill", "lm_decode"):
                _add(timings, phase, out[phase])
            if opts.progress is not None:
                opts.progress(clip.end / TARGET_SAMPLE_RATE, total)
            yield self._segment(clip, out, lang)

    def _token_callback(self, clips: list["_Clip"], opts: "TranscribeOptions", total: float, cancel=None):
        """The native per-token callback: progress against each clip's token
        budget, the user's on_token, and a cancel flag; None when nothing
        needs it."""
        progress, on_token = opts.progress, opts.on_token
        if progress is None and on_token is None and cancel is None:
            return None

        def callback(index: int, token: int):
            if cancel is not None and cancel.is_set():
                return False
            clip = clips[index]
            clip.n_tokens += 1
            if progress is not None:
                progress(clip.start / TARGET_SAMPLE_RATE + clip.seconds * min(1.0, clip.n_tokens / clip.budget),
                         total)
            return None if on_token is None else on_token(index, token)

        return callback

    def _mels(self, wave, clip, timings) -> list:
        t0 = time.perf_counter()
        mels = clip_mels(wave[clip.start:clip.end])
        _add(timings, "audio_encode", time.perf_counter() - t0)  # the log-mel front-end is part of encoding
        return mels

    def _run_one_by_one(self, wave, clips, prefix, suffix, opts, total, timings):
        callback = self._token_callback(clips, opts, total)
        for clip in clips:
            on_token = None if callback is None else (lambda token, i=clip.index: callback(i, token))
            out = self._native.transcribe_clip(self._mels(wave, clip, timings), prefix, suffix, clip.budget,
                                               stop=self._stops, banned=self._banned, on_token=on_token)
            yield clip, out

    def _run_batched(self, wave, clips, prefix, suffix, opts, total, timings):
        """All clips in one native call that decodes opts.batch_size of them
        together; it runs in a worker thread so that segments are yielded as
        they finish (in order) and Ctrl-C or closing the stream cancels it."""
        requests = [(self._mels(wave, c, timings), prefix, suffix, c.budget) for c in clips]
        # positions one clip can need: its prompt (audio groups bounded from above) and its budget
        fixed = len(prefix) + len(suffix) + 8
        need = max(fixed + (c.end - c.start) // (4 * AUDIO_SAMPLES_PER_CODE) + c.budget for c in clips)
        n_ctx_seq = min(self.n_ctx, -(-need // 64) * 64)
        done: dict[int, dict] = {}
        failure: list[BaseException] = []
        finished = threading.Event()
        cancel = threading.Event()
        ready = threading.Condition()

        def on_clip(index: int, out: dict) -> None:
            with ready:
                done[index] = out
                ready.notify_all()

        def work() -> None:
            try:
                self._native.transcribe_batch(requests, opts.batch_size, n_ctx_seq, stop=self._stops,
                                              banned=self._banned, on_token=self._token_callback(clips, opts, total,
                                                                                                 cancel),
                                              on_clip=on_clip)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(exc)
            finally:
                with ready:
                    finished.set()
                    ready.notify_all()

        worker = threading.Thread(target=work, name="mimo-ggml-batch", daemon=True)
        worker.start()
        try:
            for clip in clips:
                with ready:
                    while clip.index not in done and not finished.is_set():
                        ready.wait(0.2)  # a timeout keeps Ctrl-C deliverable to this thread
                    out = done.pop(clip.index, None)
                if out is None:
                    raise failure[0] if failure else InvalidArgumentError("internal: a batched clip gave no result")
                yield clip, out
        finally:
            cancel.set()
            worker.join()

    def _segment(self, clip: "_Clip", out: dict, lang: str) -> Segment:
        tokens = list(out["tokens"])
        logprobs = out["logprobs"]
        text_, detected = postprocess_ids(tokens, self.model.text_tokenizer, self._stops)
        tag_prob = (language_tag_probability(tokens, logprobs, self.model.text_tokenizer)
                    if lang == "auto" and detected else None)
        return Segment(id=clip.index, start=clip.start / TARGET_SAMPLE_RATE, end=clip.end / TARGET_SAMPLE_RATE,
                       text=text_, tokens=tokens, finish_reason=out["finish_reason"],
                       language=detected or (None if lang == "auto" else lang),
                       avg_logprob=float(np.mean(logprobs)) if logprobs else None,
                       no_speech_prob=clip.no_speech_prob, language_probability=tag_prob)

    def stages(self, audio, sample_rate: Optional[int] = None, *, language: str = "auto",
               instruction: Optional[str] = None) -> dict:
        """The intermediate results of spec asr.md §15 for one clip (the
        whole input, unsplit): ``audio_codes``, ``prompt_ids``,
        ``ilt_input``/``ilt_output``, ``audio_features``, ``inputs_embeds``,
        ``last_hidden`` and ``logits_step0``. For checking a port stage by
        stage; :meth:`transcribe` is the fast path."""
        prefix, suffix = self._prompt(normalize_language(language), instruction)
        wave = load_audio(audio, sample_rate)
        with self._busy.hold():
            out = self._native.stages(clip_mels(wave), prefix, suffix)
        n_groups = len(out["audio_codes"]) // self.model.group_size
        out["prompt_ids"] = np.asarray(prefix + [self.model.special.empty] * n_groups + suffix, dtype=np.int32)
        return out

    # -- lifetime -------------------------------------------------------------
    def close(self) -> None:
        """Free the session's memory now (also done by ``with``); a model the
        session loaded itself is closed with it."""
        self._native.close()
        if self._owns_model:
            self.model.close()


class _Clip:
    """One clip of an input: its samples [start, end) at 24 kHz, its token budget."""

    def __init__(self, index: int, start: int, end: int, opts: "TranscribeOptions",
                 no_speech_prob: Optional[float] = None):
        self.index, self.start, self.end = index, start, end
        self.no_speech_prob = no_speech_prob
        self.seconds = (end - start) / TARGET_SAMPLE_RATE
        self.budget = default_token_budget(self.seconds) if opts.max_new_tokens is None else opts.max_new_tokens
        self.n_tokens = 0


def _add(timings: dict, key: str, seconds: float) -> None:
    timings[key] = timings.get(key, 0.0) + seconds
