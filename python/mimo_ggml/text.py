"""Text generation with the MiMo-V2 / V2.5 / V2.5-Pro MoE models:
:class:`TextModel` (a ``mimo2`` GGUF loaded once, written by ``mimo-ggml
convert mimo2`` or llama.cpp's converter) and :class:`TextSession` (one
generation context, its KV cache, on a model; sessions on one model may run
in different threads at the same time)::

    model = TextModel.load("mimo-v2.5-mxfp4.gguf", n_threads=8)
    with model.session(n_ctx=8192) as s:             # or TextSession(model)
        r = s.generate("The capital of France is", max_tokens=32)
        print(r.text, r.finish_reason, r.timings["tokens_per_s"])
        for piece in s.chat([{"role": "user", "content": "Hi!"}], stream=True):
            print(piece, end="", flush=True)

``TextSession("model.gguf")`` loads a model of its own. The decode loop
(sampling, stop ids, the token budget) runs natively, one token per call;
Python turns tokens into text and watches for stop strings.

Speculative decoding: ``draft="dflash.gguf"`` (a DFlash drafter converted
with ``mimo-ggml convert dflash``, or a loaded :class:`DraftModel`) or
``draft="mtp"`` (the model file's own MTP blocks) makes every generation
propose up to ``draft_block - 1`` tokens and verify them in one target
pass.  Greedy output is the plain output token for token; sampled output
keeps the target's distribution.  ``GenerationResult.draft_stats`` holds the
acceptance figures::

    with model.session(draft="mtp", draft_block=4) as s:
        r = s.generate("def fib(n):", max_tokens=128)
        print(r.draft_stats["mean_accepted_length"])

Prompts are strings (tokenized with the byte-level BPE the GGUF carries) or
sequences of token ids (which work without tokenizer fields).  Sampling is
greedy by default (temperature 0, deterministic); with temperature > 0 it is
seeded.  Generation stops at the model's end tokens (the file's EOS,
``<|im_end|>``, ``<|endoftext|>``), at any ``stop`` string or id, after
``max_tokens`` new tokens, or when the context is full.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from . import _core
from .lifetime import Closeable
from .arguments import device_arguments, integer, optional_integer, real, text
from .chat_template import render_chat
from .concurrency import OperationLock
from .errors import InvalidArgumentError, ModelLoadError
from .text_tokenizer import TextTokenizer

__all__ = ["TextModel", "TextSession", "DraftModel", "GenerationResult", "TextStream"]

END_TOKENS = ("<|im_end|>", "<|endoftext|>")
Prompt = Union[str, Sequence[int], np.ndarray]


@dataclass
class GenerationResult:
    """One generation.

    ``tokens`` are the generated ids (a stop id that ended the generation is
    not included; tokens that spelled a stop string are).  ``finish_reason``
    is ``"stop"`` (an end token or stop string) or ``"length"``
    (``max_tokens`` reached or the context full).  ``timings`` holds
    ``prompt_s`` / ``generate_s`` (seconds), ``prompt_tokens_per_s``,
    ``tokens_per_s`` (decode steps per second), ``prompt_eval_tokens``
    (prompt positions evaluated; fewer than ``prompt_tokens`` when a cached
    prefix was reused) and ``cached_tokens``.  ``draft_stats`` (speculative
    sessions only, else None): ``rounds`` (verify passes), ``proposed`` /
    ``accepted`` drafts, ``mean_accepted_length`` (tokens per verify pass,
    accepted drafts plus the target's own token), ``acceptance_by_position``
    (the share of drafts accepted at block position 1, 2, …), and the
    seconds spent drafting (``draft_s``) and verifying (``verify_s``).
    """

    text: str
    tokens: list[int]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    timings: dict[str, float] = field(default_factory=dict)
    draft_stats: Optional[dict[str, Any]] = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens": [int(t) for t in self.tokens],
            "prompt_tokens": int(self.prompt_tokens),
            "completion_tokens": int(self.completion_tokens),
            "finish_reason": self.finish_reason,
            "timings": dict(self.timings),
            "draft_stats": dict(self.draft_stats) if self.draft_stats is not None else None,
        }


class TextStream:
    """Iterator of text pieces from ``generate(..., stream=True)``; after it
    is exhausted, ``result`` holds the :class:`GenerationResult`."""

    def __init__(self, gen: Iterator[str]):
        self._gen = gen
        self.result: Optional[GenerationResult] = None

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> str:
        try:
            return next(self._gen)
        except StopIteration as stop:
            self.result = stop.value
            raise

    def close(self) -> None:
        self._gen.close()


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class TextModel(Closeable):
    """A loaded MiMo-V2 MoE text model, shared by its sessions.

    model: a ``mimo2`` GGUF file. device: ``"auto"`` (first GPU, else CPU),
    ``"cpu"``, ``"cuda:0"``, ``"metal"``, ``"rpc:HOST:PORT"``… devices: instead of one ``device``, a list
    (``["cpu", "rpc:HOST:PORT", ...]``) over which each stack of layers is
    split in order, in proportion to ``layer_split`` (one share per device;
    None: equal shares); everything outside the layers stays on the first. n_threads: CPU threads per session
    (None: all cores). repack_weights: on CPU, keep quantized matrices in
    ggml's repacked layouts. mtp: also load the MTP blocks the file carries
    (``mimo2.nextn_predict_layers``), for ``draft="mtp"`` sessions.

    ``close()`` drops the model's hold on the weights; sessions still open
    keep working, and the memory is freed when the last of them closes.
    """

    def __init__(self, model: str | os.PathLike, *, device: str = "auto", n_threads: Optional[int] = None,
                 repack_weights: bool = True, mtp: bool = True, devices: Optional[Sequence[str]] = None,
                 layer_split: Optional[Sequence[float]] = None):
        self.model_path = os.fspath(model)
        self._native = _core.TextModel(self.model_path, **device_arguments(device, devices, layer_split),
                                       n_threads=optional_integer("n_threads", n_threads),
                                       repack_weights=bool(repack_weights), mtp=bool(mtp))
        self._tokenizer: Optional[TextTokenizer] = None
        self._tokenizer_error: Optional[str] = None
        self._banned: list[int] = []
        keys = ["tokenizer.ggml.tokens", "tokenizer.ggml.merges"]
        fields = self._native.string_arrays(keys)
        if all(k in fields for k in keys):
            tokens = fields["tokenizer.ggml.tokens"]
            self._tokenizer = TextTokenizer.from_gguf_fields(tokens, fields["tokenizer.ggml.merges"])
            # vocabulary padding rows ("[PAD151673]") are never real output
            self._banned = [i for i, t in enumerate(tokens) if t.startswith("[PAD") and t.endswith("]")]
        else:
            self._tokenizer_error = (
                f"{self.model_path} carries no tokenizer (tokenizer.ggml.tokens / tokenizer.ggml.merges), so text "
                "prompts cannot be encoded; pass token ids instead, or convert the checkpoint folder with its "
                "tokenizer.json (`mimo-ggml convert mimo2`)"
            )

    @classmethod
    def load(cls, model: str | os.PathLike, **kwargs) -> "TextModel":
        """Load a model (the same arguments as the constructor)."""
        return cls(model, **kwargs)

    def session(self, *, kv_type: str = "f16", n_ctx: int = 4096, swa_window_keys: Optional[int] = None,
                n_batch: int = 512, **draft) -> "TextSession":
        """A new generation context on this model (its own KV cache); the
        ``draft*`` / ``mtp_*`` arguments of :class:`TextSession` too."""
        return TextSession(self, kv_type=kv_type, n_ctx=n_ctx, swa_window_keys=swa_window_keys, n_batch=n_batch,
                           **draft)

    def load_draft(self, path: str | os.PathLike) -> "DraftModel":
        """A DFlash drafter for this model (shareable by its sessions)."""
        return DraftModel(path, self)

    @property
    def tokenizer(self) -> TextTokenizer:
        """The GGUF's text tokenizer (ModelLoadError if the file has none)."""
        if self._tokenizer is None:
            raise ModelLoadError(self._tokenizer_error or "no tokenizer")
        return self._tokenizer

    has_tokenizer = property(lambda self: self._tokenizer is not None)
    chat_template = property(lambda self: self._native.chat_template)
    n_vocab = property(lambda self: self._native.n_vocab)
    n_embd = property(lambda self: self._native.n_embd)
    n_layer = property(lambda self: self._native.n_layer)
    n_expert = property(lambda self: self._native.n_expert)
    n_expert_used = property(lambda self: self._native.n_expert_used)
    device = property(lambda self: self._native.device)
    n_threads = property(lambda self: self._native.n_threads)
    swa_layers = property(lambda self: list(self._native.swa_layers))
    moe_layers = property(lambda self: list(self._native.moe_layers))
    fused_qkv = property(lambda self: list(self._native.fused_qkv))
    weights_bytes = property(lambda self: self._native.weights_bytes)
    # {device name: bytes}: where the weights live (several devices with ``devices=``)
    weights_bytes_by_device = property(lambda self: dict(self._native.weights_bytes_by_device))
    n_mtp = property(lambda self: self._native.n_mtp)  # MTP blocks loaded

    def render_chat(self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True) -> str:
        """``messages`` as a prompt string through the GGUF's own
        ``tokenizer.chat_template`` (ChatML when the file has none), with the
        file's BOS/EOS token strings as template variables."""
        variables = {}
        if self._tokenizer is not None:
            for name, idx in (("bos_token", self._native.bos_token_id), ("eos_token", self._native.eos_token_id)):
                token = self._tokenizer.id_to_token(int(idx)) if 0 <= idx < self.n_vocab else None
                if token is not None:
                    variables[name] = token
        return render_chat(messages, self.chat_template, add_generation_prompt=add_generation_prompt, **variables)

    def stop_ids(self) -> list[int]:
        """The ids that end a generation by default."""
        ids = []
        if self._native.eos_token_id >= 0:
            ids.append(int(self._native.eos_token_id))
        if self._tokenizer is not None:
            for t in END_TOKENS:
                i = self._tokenizer.token_to_id(t)
                if i is not None and i not in ids:
                    ids.append(i)
        return ids

    def close(self) -> None:
        """Drop this handle's reference to the weights (open sessions keep theirs)."""
        self._native.close()


class DraftModel(Closeable):
    """A DFlash block drafter (``mimo-ggml convert dflash`` GGUF) loaded for
    one :class:`TextModel`: it borrows that model's embedding table and head,
    so it must have been made for it (checked: width, captured layers, mask
    id).  Pass it as ``draft=`` to any number of that model's sessions."""

    def __init__(self, path: str | os.PathLike, target: TextModel):
        if not isinstance(target, TextModel):
            raise InvalidArgumentError("DraftModel needs the TextModel it drafts for")
        self.path = os.fspath(path)
        self.target = target
        self._native = _core.DraftModel(self.path, target._native)

    n_layer = property(lambda self: self._native.n_layer)
    block_size = property(lambda self: self._native.block_size)
    window_keys = property(lambda self: self._native.window_keys)
    causal = property(lambda self: self._native.causal)
    mask_token_id = property(lambda self: self._native.mask_token_id)
    target_layers = property(lambda self: list(self._native.target_layers))
    weights_bytes = property(lambda self: self._native.weights_bytes)

    def close(self) -> None:
        self._native.close()


_MTP_HIDDEN = ("post_norm", "pre_norm")


class TextSession(Closeable):
    """A generation context (KV cache) on a :class:`TextModel`.

    model: a TextModel, or a ``mimo2`` GGUF path (then ``device`` or
    ``devices`` and ``layer_split``, ``n_threads`` and ``repack_weights`` go to a model this session owns and
    closes).  kv_type: ``"f16"`` (default), ``"q8_0"`` or ``"f32"``.  n_ctx:
    positions the context holds.  swa_window_keys: keys a sliding-window
    query sees, itself included (None: the file's
    ``mimo2.attention.sliding_window_keys``, default 129 as SGLang and
    transformers; llama.cpp and vLLM use 128).  n_batch: positions per
    prompt graph; it also sizes the sliding-window KV rings
    (``swa_window_keys - 1 + n_batch`` slots each).

    Speculative decoding (spec dflash.md, mtp.md): draft: None, ``"mtp"``
    (the model's MTP blocks), a DFlash drafter GGUF path or a
    :class:`DraftModel`. draft_block: tokens per verify pass (the anchor and
    up to ``draft_block - 1`` drafts; default 8, at most MTP blocks + 1 for
    ``"mtp"``). DFlash runtime options (None: the drafter file's values):
    draft_window (keys a drafter query sees; 0 = no window), draft_causal
    (a test knob; the drafter is non-causal), draft_rope_base_ctx /
    draft_rope_base_block (RoPE bases of the context keys and of the block).
    MTP options: mtp_blocks (how many MTP blocks draft, None: all),
    mtp_hidden (``"post_norm"``, the default as SGLang and vLLM, or
    ``"pre_norm"`` as llama.cpp).

    One operation runs at a time on a session: calls from other threads
    wait. Open one session per thread on a shared model for parallel work.
    """

    def __init__(
        self,
        model: "TextModel | str | os.PathLike",
        device: str = "auto",
        n_threads: Optional[int] = None,
        kv_type: str = "f16",
        n_ctx: int = 4096,
        swa_window_keys: Optional[int] = None,
        *,
        n_batch: int = 512,
        repack_weights: bool = True,
        draft: "DraftModel | str | os.PathLike | None" = None,
        draft_block: int = 8,
        draft_window: Optional[int] = None,
        draft_causal: Optional[bool] = None,
        draft_rope_base_ctx: Optional[float] = None,
        draft_rope_base_block: Optional[float] = None,
        mtp_blocks: Optional[int] = None,
        mtp_hidden: str = "post_norm",
        devices: Optional[Sequence[str]] = None,
        layer_split: Optional[Sequence[float]] = None,
    ):
        if isinstance(model, TextModel):
            self.model, self._owns_model = model, False
        else:
            self.model = TextModel(model, device=device, n_threads=n_threads, repack_weights=repack_weights,
                                   devices=devices, layer_split=layer_split)
            self._owns_model = True
        self.model_path = self.model.model_path
        self._owned_draft: Optional[DraftModel] = None
        try:
            native_draft = self._draft(draft)
            if mtp_hidden not in _MTP_HIDDEN:
                raise InvalidArgumentError(f"mtp_hidden must be one of {', '.join(_MTP_HIDDEN)}, got {mtp_hidden!r}")
            self._native = self.model._native.session(
                n_ctx=integer("n_ctx", n_ctx), kv_type=text("kv_type", kv_type),
                swa_window_keys=optional_integer("swa_window_keys", swa_window_keys),
                n_batch=integer("n_batch", n_batch), draft=native_draft,
                draft_block=integer("draft_block", draft_block),
                draft_window=optional_integer("draft_window", draft_window),
                draft_causal=None if draft_causal is None else bool(draft_causal),
                rope_base_ctx=None if draft_rope_base_ctx is None else real("draft_rope_base_ctx", draft_rope_base_ctx),
                rope_base_block=(None if draft_rope_base_block is None
                                 else real("draft_rope_base_block", draft_rope_base_block)),
                mtp_blocks=0 if mtp_blocks is None else integer("mtp_blocks", mtp_blocks),
                mtp_pre_norm=mtp_hidden == "pre_norm")
        except BaseException:
            if self._owned_draft is not None:
                self._owned_draft.close()
            if self._owns_model:
                self.model.close()
            raise
        self._context: list[int] = []  # the ids whose K/V the cache holds, in order
        self._busy = OperationLock("TextSession")

    def _draft(self, draft):
        """The native drafter argument: None, "mtp" or a loaded DFlash drafter."""
        if draft is None:
            return None
        if isinstance(draft, DraftModel):
            if draft.target is not self.model:
                raise InvalidArgumentError("this DraftModel was loaded for another TextModel")
            return draft._native
        if isinstance(draft, str) and draft == "mtp":
            if self.model.n_mtp == 0:
                raise ModelLoadError(
                    f"{self.model_path} has no MTP blocks loaded (a file converted before MTP export, or "
                    "TextModel(mtp=False)); convert the checkpoint again with `mimo-ggml convert mimo2`, or use a "
                    "DFlash drafter")
            return "mtp"
        if isinstance(draft, (str, os.PathLike)):
            self._owned_draft = DraftModel(draft, self.model)
            return self._owned_draft._native
        raise InvalidArgumentError('draft must be None, "mtp", a DFlash drafter GGUF path or a DraftModel')

    @property
    def draft(self) -> str:
        """The session's drafter: "", "dflash" or "mtp"."""
        return self._native.draft

    def propose(self, tokens: Sequence[int] | np.ndarray, k: Optional[int] = None) -> tuple[list[int], np.ndarray]:
        """The drafter on its own: reset, evaluate ``tokens[:-1]`` as the
        committed context, and return the greedy proposals after the anchor
        ``tokens[-1]`` (``k`` of them, default ``draft_block - 1``) with the
        drafter's logits rows (k, n_vocab) they came from."""
        ids = self._ids(tokens)
        with self._busy.hold():
            self._context = []
            out = self._native.propose(ids, optional_integer("k", k))
            self._context = ids[:-1]
        return list(out[0]), out[1]

    # -- tokenizer ------------------------------------------------------------
    @property
    def has_tokenizer(self) -> bool:
        return self.model.has_tokenizer

    @property
    def tokenizer(self) -> TextTokenizer:
        """The GGUF's text tokenizer (ModelLoadError if the file has none)."""
        return self.model.tokenizer

    def tokenize(self, text_: str) -> list[int]:
        return self.tokenizer.encode(text_)

    def detokenize(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode(ids)

    def stop_ids(self) -> list[int]:
        """The ids that end a generation by default."""
        return self.model.stop_ids()

    # -- low level ------------------------------------------------------------
    def eval(self, tokens: Sequence[int] | np.ndarray, *, n_out: int = 1, all_logits: bool = False) -> np.ndarray:
        """Append ``tokens`` to the context; return float32 logits (n_out, n_vocab)
        of the last ``n_out`` positions (every position with ``all_logits``)."""
        ids = self._ids(tokens)
        with self._busy.hold():
            out = self._native.eval(ids, None, -1 if all_logits else integer("n_out", n_out))
            self._context.extend(ids)
        return out

    def reset(self) -> None:
        """Forget the context (the KV cache memory is kept)."""
        with self._busy.hold():
            self._native.reset()
            self._context = []

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` positions. Sliding-window layers keep only a
        ring of recent positions, so going far back raises InvalidArgumentError
        (then ``reset()`` and evaluate again)."""
        with self._busy.hold():
            self._native.truncate(integer("n", n))
            del self._context[int(n):]

    def can_truncate(self, n: int) -> bool:
        return bool(self._native.can_truncate(integer("n", n)))

    @staticmethod
    def _ids(tokens) -> list[int]:
        """Token ids as a list of ints (their range is checked natively)."""
        if isinstance(tokens, (str, bytes)):
            raise InvalidArgumentError("token ids must be a sequence of integers, not a string")
        try:
            arr = np.asarray(tokens)
        except Exception:  # noqa: BLE001 - ragged input etc.
            raise InvalidArgumentError("token ids must be a 1-D sequence of integers") from None
        if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
            raise InvalidArgumentError("token ids must be a non-empty 1-D sequence of integers")
        return [int(i) for i in arr]

    def _prompt_ids(self, prompt: Prompt) -> list[int]:
        if isinstance(prompt, str):
            if not prompt:
                raise InvalidArgumentError("the prompt is empty")
            ids = self.tokenizer.encode(prompt)
            if not ids:
                raise InvalidArgumentError("the prompt encodes to no tokens")
            return ids
        return self._ids(prompt)

    def _stops(self, stop) -> tuple[list[int], list[str]]:
        ids = self.stop_ids()
        strings: list[str] = []
        if stop is None:
            return ids, strings
        items = [stop] if isinstance(stop, (str, int, np.integer)) else stop
        if not isinstance(items, Iterable):
            raise InvalidArgumentError("stop must be a string, a token id, or a list of them")
        for s in items:
            if isinstance(s, str):
                if not s:
                    raise InvalidArgumentError("stop strings must not be empty")
                strings.append(s)
            elif isinstance(s, (int, np.integer)) and not isinstance(s, bool):
                if int(s) not in ids:
                    ids.append(int(s))
            else:
                raise InvalidArgumentError(f"stop entries must be strings or token ids, got {s!r}")
        if strings:
            self.tokenizer  # noqa: B018 - stop strings need text: raise early without a tokenizer
        return ids, strings

    # -- generation -----------------------------------------------------------
    def generate(
        self,
        prompt: Prompt,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
        stop: Union[str, int, Sequence[Union[str, int]], None] = None,
        stream: bool = False,
        *,
        cache_prompt: bool = False,
    ) -> Union[GenerationResult, TextStream]:
        """Continue ``prompt`` (a string or token ids) by up to ``max_tokens``
        tokens. Returns a :class:`GenerationResult`, or with ``stream=True`` a
        :class:`TextStream` of text pieces (its ``result`` is set at the end;
        ``close()`` stops the generation).

        The context starts fresh each call, so the same call gives the same
        output; ``cache_prompt=True`` keeps the longest common prefix with the
        previous context instead (faster multi-turn chat; rounding may differ
        from a fresh evaluation in the last bits).
        """
        ids = self._prompt_ids(prompt)
        sampling = dict(max_tokens=integer("max_tokens", max_tokens), temperature=real("temperature", temperature),
                        top_k=integer("top_k", top_k), top_p=real("top_p", top_p), seed=integer("seed", seed))
        if len(ids) >= self._native.n_ctx:
            raise InvalidArgumentError(
                f"the prompt has {len(ids)} tokens; the context holds {self._native.n_ctx} (raise n_ctx)"
            )
        stop_ids, stop_strings = self._stops(stop)
        if stream and not self.has_tokenizer:
            raise ModelLoadError(self.model._tokenizer_error or "no tokenizer")
        gen = self._run(ids, sampling, stop_ids, stop_strings, cache_prompt)
        if stream:
            return TextStream(gen)
        while True:
            try:
                next(gen)
            except StopIteration as done:
                return done.value

    def chat(self, messages: Sequence[Mapping[str, str]], **kwargs) -> Union[GenerationResult, TextStream]:
        """``generate`` on ``messages`` rendered with the model's chat
        template (:meth:`TextModel.render_chat`; ChatML without one)."""
        return self.generate(self.model.render_chat(messages), **kwargs)

    def _run(self, ids: list[int], sampling: dict, stop_ids: list[int], stop_strings: list[str],
             cache_prompt: bool) -> Iterator[str]:
        with self._busy.hold():
            return (yield from self._generate_locked(ids, sampling, stop_ids, stop_strings, cache_prompt))

    def _generate_locked(self, ids, sampling, stop_ids, stop_strings, cache_prompt):
        native = self._native
        tok_ = self.model._tokenizer
        detok = tok_.detokenizer() if tok_ is not None else None
        reuse = 0
        if cache_prompt:
            reuse = min(_common_prefix(self._context, ids), len(ids) - 1)
            if reuse > 0 and native.can_truncate(reuse):
                native.truncate(reuse)
                del self._context[reuse:]
            else:
                reuse = 0
        if reuse == 0:
            native.reset()
            self._context = []
        out: list[int] = []
        text_, sent = "", 0
        finish = ""
        cut = False  # a stop string ended the text
        longest = max((len(s) for s in stop_strings), default=0)
        t0 = time.perf_counter()
        try:
            generator = native.generator(ids[reuse:], banned=self.model._banned, stop=stop_ids, **sampling)
            t1 = time.perf_counter()
            while (step := generator.next()) is not None:
                tok, _logprob, is_stop = step
                if is_stop:
                    break
                out.append(tok)
                if detok is None:
                    continue
                before = len(text_)
                text_ += detok.feed(tok)
                if stop_strings:
                    hit = self._find_stop(text_, stop_strings, max(0, before - longest + 1))
                    if hit is not None:
                        text_ = text_[:hit]
                        finish, cut = "stop", True
                        break
                    safe = len(text_) - self._held_back(text_, stop_strings)
                else:
                    safe = len(text_)
                if safe > sent:
                    yield text_[sent:safe]
                    sent = safe
        finally:
            # the cache holds the prompt and every generated token fed back so far
            self._context = (ids + out)[:native.n_past]
            if native.n_past > len(self._context):  # a speculative round ran past a stop string
                if native.can_truncate(len(self._context)):
                    native.truncate(len(self._context))
                else:
                    native.reset()
                    self._context = []
        finish = finish or generator.finish_reason
        if detok is not None:
            if not cut:
                text_ += detok.finish()  # a dangling partial character becomes U+FFFD
            if sent < len(text_):
                yield text_[sent:]
        t2 = time.perf_counter()
        prompt_s, gen_s = t1 - t0, t2 - t1
        evaluated = len(ids) - reuse if sampling["max_tokens"] > 0 else 0
        decode_steps = max(0, native.n_past - len(ids)) if sampling["max_tokens"] > 0 else 0
        return GenerationResult(
            text=text_,
            tokens=out,
            prompt_tokens=len(ids),
            completion_tokens=len(out),
            finish_reason=finish,
            timings={
                "prompt_s": prompt_s,
                "generate_s": gen_s,
                "prompt_eval_tokens": float(evaluated),
                "cached_tokens": float(reuse),
                "prompt_tokens_per_s": evaluated / prompt_s if prompt_s > 0 and evaluated else 0.0,
                "tokens_per_s": decode_steps / gen_s if gen_s > 0 and decode_steps else 0.0,
            },
            draft_stats=generator.draft_stats,
        )

    @staticmethod
    def _find_stop(text: str, stops: list[str], start: int) -> Optional[int]:
        hits = [i for i in (text.find(s, start) for s in stops) if i >= 0]
        return min(hits) if hits else None

    @staticmethod
    def _held_back(text: str, stops: list[str]) -> int:
        """Length of the longest suffix of ``text`` that begins some stop string."""
        best = 0
        for s in stops:
            for k in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:k]):
                    best = k
                    break
        return best

    # -- properties -------------------------------------------------------------
    n_vocab = property(lambda self: self.model.n_vocab)
    n_embd = property(lambda self: self.model.n_embd)
    n_layer = property(lambda self: self.model.n_layer)
    n_expert = property(lambda self: self.model.n_expert)
    n_expert_used = property(lambda self: self.model.n_expert_used)
    device = property(lambda self: self.model.device)
    n_threads = property(lambda self: self.model.n_threads)
    swa_layers = property(lambda self: self.model.swa_layers)
    moe_layers = property(lambda self: self.model.moe_layers)
    fused_qkv = property(lambda self: self.model.fused_qkv)
    weights_bytes = property(lambda self: self.model.weights_bytes)
    weights_bytes_by_device = property(lambda self: self.model.weights_bytes_by_device)
    n_ctx = property(lambda self: self._native.n_ctx)
    n_past = property(lambda self: self._native.n_past)
    n_batch = property(lambda self: self._native.n_batch)
    kv_type = property(lambda self: self._native.kv_type)
    swa_window_keys = property(lambda self: self._native.swa_window_keys)
    kv_bytes = property(lambda self: self._native.kv_bytes)
    kv_bytes_per_token = property(lambda self: self._native.kv_bytes_per_token)
    kv_bytes_swa = property(lambda self: self._native.kv_bytes_swa)

    # -- lifetime -----------------------------------------------------------------
    def close(self) -> None:
        """Free the KV cache now (also done by ``with``); a model (or drafter)
        the session loaded itself is closed with it."""
        self._native.close()
        if self._owned_draft is not None:
            self._owned_draft.close()
        if self._owns_model:
            self.model.close()
