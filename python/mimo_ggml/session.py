"""Speech recognition with MiMo-V2.5-ASR: :class:`Session`.

One Session loads the three parts once — the audio tokenizer (audio → RVQ
codes), the audio adapter (codes → LM input features) and the Qwen2 language
model — and transcribes any number of inputs::

    with Session("mimo-asr-q4_k.gguf", n_threads=2) as asr:
        result = asr.transcribe("meeting.flac", language="en")
        print(result.text)
        for seg in result.segments:
            print(seg.start, seg.end, seg.text)

Long audio is split at pauses into clips of at most ``max_clip_s`` seconds
(spec asr.md §13); each clip is transcribed with the full prompt and becomes
one segment with its real start and end times.
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable, Iterator, Optional

import numpy as np

from .adapter import AsrAdapter
from .audio import TARGET_SAMPLE_RATE, load_audio, split_on_pauses
from .errors import InvalidArgumentError, UnsupportedModelError
from .lm import LanguageModel
from .models import find_asr_model, find_audio_tokenizer, is_hub_reference
from .postprocess import postprocess_ids
from .prompt import AsrSpecialIds, build_asr_prompt, normalize_language, pad_codes
from .results import Segment, Transcription
from .text_tokenizer import TextTokenizer
from .tokenizer import AudioTokenizer

# progress(done_seconds, total_seconds): called as clips finish
ProgressCallback = Callable[[float, float], None]

MAX_CONTEXT = 8192  # the LM's max_position_embeddings (spec §11)
DEFAULT_MAX_NEW_TOKENS = 1024  # spec §12.1 step 6


def default_token_budget(clip_seconds: float) -> int:
    """New tokens allowed for a clip: generous for fast speech (~12 tokens/s
    covers Chinese read quickly) and never above the spec's 1024 default."""
    return min(DEFAULT_MAX_NEW_TOKENS, 32 + math.ceil(12.0 * clip_seconds))


class Session:
    """A loaded MiMo-V2.5-ASR model.

    model: a ``mimo_asr`` GGUF file, a folder holding one, or a Hugging Face
    repo id (``"cstr/mimo-asr-GGUF"``) found in the local Hugging Face cache.
    tokenizer: the audio-tokenizer GGUF (default: next to the model file).
    device, n_threads, kv_type: as for :class:`mimo_ggml.LanguageModel`.
    download: allow huggingface_hub to download a repo that is not cached.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        tokenizer: str | os.PathLike | None = None,
        *,
        device: str = "auto",
        n_threads: Optional[int] = None,
        kv_type: str = "f16",
        n_ctx: int = 4096,
        download: bool = True,
    ):
        from . import _core

        self.model_path = find_asr_model(model, download=download)
        self.tokenizer_path = find_audio_tokenizer(
            self.model_path, tokenizer, download=download, lm_from_hub=tokenizer is None and is_hub_reference(model)
        )
        fields = _core.gguf_strings(str(self.model_path), ["tokenizer.ggml.tokens", "tokenizer.ggml.merges"])
        if "tokenizer.ggml.merges" not in fields or "<|empty|>" not in fields.get("tokenizer.ggml.tokens", []):
            raise UnsupportedModelError(
                f"{self.model_path} is a legacy MiMo-ASR file (truncated vocabulary without <|empty|> or no BPE "
                "merges); download a current mimo-asr-*.gguf or convert the checkpoint with `mimo-ggml convert asr`"
            )
        self.text_tokenizer = TextTokenizer.from_gguf_fields(fields["tokenizer.ggml.tokens"], fields["tokenizer.ggml.merges"])
        self.special = AsrSpecialIds.from_tokenizer(self.text_tokenizer)
        # never emit <|empty|> (speech output) or the vocabulary padding rows
        self._banned = [self.special.empty] + [
            i for i, t in enumerate(fields["tokenizer.ggml.tokens"]) if t.startswith("[PAD") and t.endswith("]")
        ]
        self._parts: list = []
        try:
            self.audio_tokenizer = self._own(AudioTokenizer(self.tokenizer_path, device=device, n_threads=n_threads))
            self.adapter = self._own(AsrAdapter(self.model_path, device=device, n_threads=n_threads))
            self.lm = self._own(LanguageModel(self.model_path, device=device, n_threads=n_threads, n_ctx=n_ctx,
                                              kv_type=kv_type))
        except BaseException:
            self.close()
            raise

    def _own(self, part):
        self._parts.append(part)
        return part

    # -- transcription ------------------------------------------------------
    def transcribe(
        self,
        audio,
        sample_rate: Optional[int] = None,
        *,
        language: str = "auto",
        max_new_tokens: Optional[int] = None,
        max_clip_s: Optional[float] = 60.0,
        instruction: Optional[str] = None,
        progress: Optional[ProgressCallback] = None,
    ) -> Transcription:
        """Transcribe a file path, bytes, file object, array (with
        ``sample_rate``) or ``(array, rate)`` tuple.

        language: "auto" (the model tags the language), "en" or "zh".
        max_new_tokens: cap per clip (default grows with clip length, at
        most 1024). max_clip_s: split longer audio at pauses (None: one pass).
        """
        timings: dict[str, float] = {}
        segments = list(self._segments(audio, sample_rate, language, max_new_tokens, max_clip_s, instruction,
                                       progress, timings))
        lang = normalize_language(language)
        detected = next((s.language for s in segments if s.language), None)
        final_lang = detected or (None if lang == "auto" else lang)
        joiner = "" if final_lang == "zh" else " "
        text = joiner.join(s.text for s in segments if s.text)
        return Transcription(text=text, language=final_lang, duration=timings.pop("_duration"),
                             segments=segments, timings=timings)

    def transcribe_stream(
        self,
        audio,
        sample_rate: Optional[int] = None,
        *,
        language: str = "auto",
        max_new_tokens: Optional[int] = None,
        max_clip_s: Optional[float] = 60.0,
        instruction: Optional[str] = None,
        progress: Optional[ProgressCallback] = None,
    ) -> Iterator[Segment]:
        """Like :meth:`transcribe`, yielding each segment as its clip finishes."""
        yield from self._segments(audio, sample_rate, language, max_new_tokens, max_clip_s, instruction, progress, {})

    def _segments(self, audio, sample_rate, language, max_new_tokens, max_clip_s, instruction, progress, timings):
        if max_new_tokens is not None and max_new_tokens < 1:
            raise InvalidArgumentError(f"max_new_tokens must be >= 1 or None, got {max_new_tokens}")
        if max_clip_s is not None and not max_clip_s >= 2.0:
            raise InvalidArgumentError(f"max_clip_s must be at least 2 seconds or None, got {max_clip_s}")
        normalize_language(language)  # validate before any work
        t0 = time.perf_counter()
        wave = load_audio(audio, sample_rate)
        _add(timings, "load_audio", time.perf_counter() - t0)
        total = len(wave) / TARGET_SAMPLE_RATE
        timings["_duration"] = total
        clips = split_on_pauses(wave, TARGET_SAMPLE_RATE, max_clip_s=max_clip_s)
        for index, (start, end) in enumerate(clips):
            seg = self._transcribe_clip(index, wave[start:end], start, end, language, max_new_tokens, instruction,
                                        timings)
            if progress is not None:
                progress(end / TARGET_SAMPLE_RATE, total)
            yield seg

    def _prepare_clip(self, clip, language, instruction):
        """Audio codes, prompt and LM input embeddings of one 24 kHz clip."""
        codes = pad_codes(self.audio_tokenizer.encode((clip, TARGET_SAMPLE_RATE)))
        prompt = build_asr_prompt(self.text_tokenizer, len(codes) // 4, language, instruction)
        features = self.adapter.features(codes)
        speech = prompt.is_speech()
        inputs = np.empty((prompt.n_groups, self.lm.n_embd), dtype=np.float32)
        inputs[speech] = features
        inputs[~speech] = self.lm.embed(prompt.text_ids[~speech])
        return codes, prompt, inputs

    def stages(self, audio, sample_rate: Optional[int] = None, *, language: str = "auto",
               instruction: Optional[str] = None) -> dict:
        """The intermediate results of spec asr.md §15 for one clip (the
        whole input, unsplit): ``audio_codes``, ``prompt_ids``,
        ``ilt_input``/``ilt_output``, ``audio_features``, ``inputs_embeds``,
        ``last_hidden`` and ``logits_step0``. For checking a port stage by
        stage; :meth:`transcribe` is the fast path."""
        wave = load_audio(audio, sample_rate)
        codes, prompt, inputs = self._prepare_clip(wave, language, instruction)
        out = {"audio_codes": codes, "prompt_ids": prompt.text_ids, "inputs_embeds": inputs}
        out.update(self.adapter.stages(codes))
        self.lm.reset()
        logits, hidden = self.lm.eval(embeddings=inputs, return_hidden=True)
        self.lm.reset()
        out["last_hidden"], out["logits_step0"] = hidden[0], logits[0]
        return out

    def _transcribe_clip(self, index, clip, start, end, language, max_new_tokens, instruction, timings) -> Segment:
        t0 = time.perf_counter()
        codes, prompt, inputs = self._prepare_clip(clip, language, instruction)
        t2 = time.perf_counter()

        budget = default_token_budget(len(clip) / TARGET_SAMPLE_RATE) if max_new_tokens is None else max_new_tokens
        budget = min(budget, self.lm.n_ctx - prompt.n_groups)
        if budget < 1:
            raise InvalidArgumentError(
                f"a {len(clip) / TARGET_SAMPLE_RATE:.0f} s clip needs {prompt.n_groups} positions, more than the "
                f"context of {self.lm.n_ctx}; use max_clip_s or a larger n_ctx"
            )
        self.lm.reset()
        logits = self.lm.eval(embeddings=inputs)[0]
        t3 = time.perf_counter()
        tokens: list[int] = []
        finish = "length"
        stops = set(self.special.stop_ids)
        while True:
            logits[self._banned] = -np.inf
            token = int(np.argmax(logits))  # greedy; ties -> lowest id
            tokens.append(token)
            if token in stops:
                finish = "stop"
                break
            if len(tokens) >= budget:
                break
            logits = self.lm.step(token)
        t4 = time.perf_counter()
        text, lang = postprocess_ids(tokens, self.text_tokenizer, self.special.stop_ids)
        _add(timings, "audio_encode", t2 - t0)
        _add(timings, "lm_prefill", t3 - t2)
        _add(timings, "lm_decode", t4 - t3)
        generated = tokens[:-1] if finish == "stop" else tokens
        return Segment(id=index, start=start / TARGET_SAMPLE_RATE, end=end / TARGET_SAMPLE_RATE, text=text,
                       tokens=generated, finish_reason=finish,
                       language=lang or (None if normalize_language(language) == "auto" else normalize_language(language)))

    # -- lifetime -------------------------------------------------------------
    def close(self) -> None:
        """Free every loaded part now (also done by ``with``)."""
        for part in self._parts:
            part.close()
        self._parts = []

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _add(timings: dict, key: str, seconds: float) -> None:
    timings[key] = timings.get(key, 0.0) + seconds
