"""The ``mimo-ggml`` command line (also ``python -m mimo_ggml``).

Sub-commands: ``transcribe`` (audio files -> text, srt, vtt, json), ``info``
(this build and, optionally, a GGUF file), ``convert`` (Hugging Face
checkpoints -> GGUF), ``quantize`` (GGUF -> GGUF), and ``generate`` /
``chat`` (text with the MiMo-V2 MoE models). Quiet by default; ``-v`` (before
or after the sub-command) shows the native logs.

``transcribe`` never loses work: every output path is checked before the
model loads; outputs are named ``<input name>.<format>`` (``talk.flac.srt``,
as whisper.cpp does) and existing files are replaced only with
``--overwrite``; segments print as they finish; Ctrl-C stops within a second
at any point (exit 130) and writes what had finished, marked partial. Files
are written through a temporary file renamed into place.

Exit codes: 0 done, 2 bad input or arguments (one line on stderr), 130
interrupted, 141 standard output closed early (``| head``) with nothing else
to write.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path

from .arguments import cli_devices
from .errors import InvalidArgumentError, MimoError

CONVERTERS = ("asr", "audio-tokenizer", "mimo2", "dflash")

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE
INTERRUPT_GRACE_S = 0.4  # after Ctrl-C the main thread has this long before the watchdog finishes for it
STDIN = "-"

# Python parameter names in library messages -> the flags a CLI user typed
_FLAGS = {
    "max_new_tokens": "--max-new-tokens",
    "max_clip_s": "--max-clip",
    "max_segment_s": "--max-segment",
    "batch_size": "--batch-size",
    "max_duration_s": "--max-duration",
    "n_threads": "--threads",
    "kv_type": "--kv-type",
    "n_ctx": "--n-ctx",
    "swa_window_keys": "--swa-window-keys",
    "max_tokens": "--max-tokens",
    "top_p": "--top-p",
    "top_k": "--top-k",
    "tokenizer=PATH": "--tokenizer PATH",
    "tokenizer=": "--tokenizer ",
    "download=False": "downloads off",
}


def _flag_words(message: str) -> str:
    for name, flag in _FLAGS.items():
        message = re.sub(r"(?<![\w-])" + re.escape(name) + r"(?![\w])", flag, message)
    return message


def _error(message: str) -> None:
    print(f"mimo-ggml: error: {_flag_words(message)}", file=sys.stderr, flush=True)


class CliError(Exception):
    """A problem with what the user asked for: one line, exit 2."""


class _StopOutput(Exception):
    """Standard output was closed by the reader (``| head``)."""


# ---------------------------------------------------------------------------
# Ctrl-C: never swallowed, never more than a second, work kept
# ---------------------------------------------------------------------------


class Interrupts:
    """SIGINT raises KeyboardInterrupt in the main thread as usual, and a
    watchdog thread learns of it at once through the signal wakeup fd (which
    the C-level handler writes even while the main thread is inside a long
    native call). If the main thread has not finished INTERRUPT_GRACE_S later,
    the watchdog writes the partial results itself and ends the process with
    exit 130; a second Ctrl-C ends it at once."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._pending: list = []  # objects with write_partial(), for work in progress
        self._finished = False
        self.seen = False  # a SIGINT has arrived

    def install(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return False
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except (ValueError, OSError):
            os.close(r)
            os.close(w)
            return False
        signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.Thread(target=self._watch, args=(r,), name="mimo-ggml-interrupt", daemon=True).start()
        return True

    def track(self, item) -> None:
        with self.lock:
            self._pending.append(item)

    def untrack(self, item) -> None:
        with self.lock:
            if item in self._pending:
                self._pending.remove(item)

    def finish_partial(self) -> None:
        """Write every tracked piece of unfinished work as a partial result (once)."""
        with self.lock:
            if self._finished:
                return
            self._finished = True
            pending, self._pending = self._pending, []
        for item in pending:
            try:
                item.write_partial()
            except BaseException as exc:  # noqa: BLE001 - report, then go on with the others
                try:
                    _error(f"could not write the partial result: {exc}")
                except BaseException:  # noqa: BLE001
                    pass

    def _watch(self, r: int) -> None:
        import select

        _name_this_thread(WATCHDOG_THREAD_NAME)
        while True:
            try:
                data = os.read(r, 64)
            except OSError:
                return
            if not data:
                return
            if signal.SIGINT not in data:
                continue
            self.seen = True
            if data.count(signal.SIGINT) > 1:
                os._exit(EXIT_INTERRUPTED)
            ready, _, _ = select.select([r], [], [], INTERRUPT_GRACE_S)
            if ready:  # another signal: a second Ctrl-C ends at once
                more = os.read(r, 64)
                if signal.SIGINT in more:
                    os._exit(EXIT_INTERRUPTED)
            # the main thread is stuck (a long native call): finish for it
            if self.lock.acquire(timeout=0.3):
                try:
                    self.finish_partial()
                finally:
                    self.lock.release()
            try:
                sys.stderr.write("mimo-ggml: interrupted\n")
                sys.stderr.flush()
            except BaseException:  # noqa: BLE001
                pass
            os._exit(EXIT_INTERRUPTED)


INTERRUPTS = Interrupts()
WATCHDOG_THREAD_NAME = "mimo-sigint"  # its OS name: shows that main() has installed the Ctrl-C handling


def _name_this_thread(name: str) -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME (Linux)
    except Exception:  # other systems: the name is only a debugging aid
        pass


# ---------------------------------------------------------------------------
# transcribe
# ---------------------------------------------------------------------------


def _positive_int(flag: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a whole number, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be at least 1, got {value}")
        return value

    return parse


def _seconds(flag: str, minimum: float, allow_zero: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a number of seconds, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")) or (
                value < minimum and not (allow_zero and value == 0)):
            raise argparse.ArgumentTypeError(
                f"{flag} must be at least {minimum:g} seconds{' (or 0)' if allow_zero else ''}, got {text}")
        return value

    return parse


def _output_name(name: str) -> str:
    return "stdin" if name == STDIN else Path(name).name


def _plan_outputs(args) -> tuple[list[str], dict[str, dict[str, Path]]]:
    """Formats and, per input, {format: path}; every check that can fail
    before the model loads (inputs, -o, collisions, existing files)."""
    from .writers import FORMATS

    if sum(1 for f in args.files if f == STDIN) > 1:
        raise CliError("'-' (standard input) can be given only once")
    for name in args.files:
        if name == STDIN:
            continue
        path = Path(name)
        if not path.exists():
            raise CliError(f"audio file not found: {name}")
        if path.is_dir():
            raise CliError(f"{name} is a folder, not an audio file")
    formats = list(FORMATS) if args.output_format == "all" else [args.output_format] if args.output_format else []
    if args.output_dir is None and not formats:
        return [], {}
    if not formats:
        formats = ["txt"]
    out_dir = Path(args.output_dir) if args.output_dir else Path(".")
    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"-o/--output-dir {out_dir} exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        import tempfile

        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise CliError(f"-o/--output-dir {out_dir} cannot be written to: {exc.strerror or exc}") from None
    plan: dict[str, dict[str, Path]] = {}
    owner: dict[Path, str] = {}
    for name in args.files:
        targets = {}
        for fmt in formats:
            target = out_dir / f"{_output_name(name)}.{fmt}"
            key = Path(os.path.abspath(target))
            if key in owner:
                raise CliError(f"{owner[key]} and {name} would both be written to {target}; "
                               "rename one of them or run them separately")
            owner[key] = name
            targets[fmt] = target
        plan[name] = targets
    existing = [str(p) for t in plan.values() for p in t.values() if p.exists()]
    if existing and not args.overwrite:
        shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
        one = len(existing) == 1
        raise CliError(f"{shown} already exist{'s' if one else ''}; pass --overwrite to replace "
                       f"{'it' if one else 'them'}, or choose another -o/--output-dir")
    return formats, plan


def _stream_options(args) -> dict:
    """Keyword arguments for Session.transcribe_stream from the flags that
    were given (only those, so a Session without them still works when they
    are not used)."""
    import inspect

    from .session import Session

    opts = {"language": args.language, "max_new_tokens": args.max_new_tokens}
    wanted = {}
    if args.max_clip is not None:
        wanted["max_clip_s"] = (args.max_clip if args.max_clip > 0 else None, "--max-clip")
    if args.no_vad:
        wanted["vad"] = (False, "--no-vad")
    elif args.vad_model is not None:
        wanted["vad"] = (args.vad_model, "--vad-model")
    if args.max_segment is not None:
        wanted["max_segment_s"] = (args.max_segment, "--max-segment")
    if args.batch_size is not None:
        wanted["batch_size"] = (args.batch_size, "--batch-size")
    params = inspect.signature(Session.transcribe_stream).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key, (value, flag) in wanted.items():
        if key not in params and not takes_any:
            raise CliError(f"{flag} is not supported by this version's transcription pipeline")
        opts[key] = value
    return opts


class _Progress:
    """A tqdm bar in seconds of audio with an ETA. It takes any number of
    progress(done_s, total_s) calls (per segment today, per token later):
    decreasing values are ignored and tqdm throttles the redraws."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=0.0, desc=label, unit="s", file=sys.stderr, leave=False, dynamic_ncols=True,
                            mininterval=0.2, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s "
                                                        "audio [{elapsed}<{remaining}, {rate_fmt}]")

    def start(self, total_s: float) -> None:
        if self.bar is not None:
            self.bar.total = float(total_s)
            self.bar.refresh()

    def __call__(self, done_s: float, total_s: float) -> None:
        if self.bar is None:
            return
        if total_s and self.bar.total != total_s:
            self.bar.total = float(total_s)
        delta = min(float(done_s), self.bar.total or float(done_s)) - self.bar.n
        if delta > 0:
            self.bar.update(delta)

    def print(self, line: str) -> None:
        if self.bar is not None:
            from tqdm import tqdm

            with tqdm.external_write_mode(file=sys.stderr):
                _print(line)
        else:
            _print(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _print(line: str) -> None:
    try:
        print(line, flush=True)
    except BrokenPipeError:
        # the reader is gone: no more output, and no error at exit either
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        raise _StopOutput from None


class _FileRun:
    """One input's transcription in progress: its finished segments, and how
    to write them (in full, or as a partial result after Ctrl-C)."""

    def __init__(self, name: str, targets: dict[str, Path], language: str) -> None:
        self.name = name
        self.targets = targets
        self.language = language
        self.segments: list = []
        self.duration = 0.0
        self.complete = False

    def result(self, partial: bool):
        from .results import Transcription

        with INTERRUPTS.lock:
            segments = list(self.segments)
        return Transcription.from_segments(segments, language=self.language, duration=self.duration,
                                           partial=partial)

    def write(self, partial: bool = False) -> None:
        from .writers import write_transcription

        if not self.targets:
            return
        with INTERRUPTS.lock:
            result = self.result(partial)
            for fmt, path in self.targets.items():
                write_transcription(result, path, fmt)

    def write_partial(self) -> None:
        self.write(partial=not self.complete)


def _cmd_transcribe(args) -> int:
    formats, plan = _plan_outputs(args)
    options = _stream_options(args)
    from .audio import TARGET_SAMPLE_RATE, load_audio, read_binary_stream
    from .models import resolve_asr_files
    from .session import Session

    stdin_audio = None
    if STDIN in args.files:
        if sys.stdin is None or sys.stdin.isatty():
            raise CliError("'-' reads audio from standard input, but it is a terminal; pipe a file in "
                           "(mimo-ggml transcribe - < talk.flac)")
        stdin_audio = read_binary_stream(sys.stdin.buffer)
        if not stdin_audio:
            raise CliError("standard input is empty; pipe an audio file in")
    lm_path, tok_path = resolve_asr_files(args.model, args.tokenizer)
    show_progress = args.progress if args.progress is not None else sys.stderr.isatty()
    several = len(args.files) > 1
    status = 0
    stdout_open = True
    with Session(lm_path, tok_path, **_devices(args), n_threads=args.threads, kv_type=args.kv_type) as asr:
        for name in args.files:
            run = _FileRun(name, plan.get(name, {}), args.language)
            progress = _Progress(show_progress, _output_name(name))
            try:
                source = stdin_audio if name == STDIN else name
                wave = load_audio(source, max_duration_s=args.max_duration, allow_special_files=True)
                run.duration = len(wave) / TARGET_SAMPLE_RATE
                progress.start(run.duration)
                if several and stdout_open:
                    try:
                        progress.print(f"==> {name} <==")
                    except _StopOutput:
                        stdout_open = False
                INTERRUPTS.track(run)
                for seg in asr.transcribe_stream((wave, TARGET_SAMPLE_RATE), progress=progress, **options):
                    with INTERRUPTS.lock:
                        run.segments.append(seg)
                    text = seg.text.strip()
                    if text and stdout_open:
                        try:
                            progress.print(text)
                        except _StopOutput:
                            stdout_open = False
                            if not run.targets:
                                raise
                progress.close()
                run.complete = True
                run.write()
                INTERRUPTS.untrack(run)
            except (MimoError, FileNotFoundError) as exc:  # one bad file does not stop the others
                progress.close()
                INTERRUPTS.untrack(run)
                _error(f"{name}: {exc}")
                status = EXIT_ERROR
                continue
            finally:
                progress.close()
    if not stdout_open and not plan:
        return EXIT_BROKEN_PIPE
    return status


def _cmd_info(args) -> int:
    from .system import system_info

    info = system_info()
    if args.model:
        from . import _core

        path = Path(args.model)
        if not path.is_file():
            raise CliError(f"{args.model} is not a file" if path.exists() else f"model file not found: {args.model}")
        # the validated reader: a malformed file is a typed error naming what is wrong (MimoError -> exit 2)
        summary = _core.gguf_info(str(path))
        metadata = {k: v for k, v in summary["metadata"].items() if not k.startswith("tokenizer.ggml.")}
        info["model"] = {"path": str(args.model), "metadata": metadata, "tensors": summary["tensors"],
                         "tensor_types": summary["tensor_types"]}
    print(json.dumps(info, indent=2, ensure_ascii=False, default=str))
    return 0


def _cmd_convert(args) -> int:
    out = Path(args.output)
    if args.kind == "asr":
        from .convert.asr import convert_asr

        convert_asr(args.source, out, dtype=args.dtype or "f16", fuse_qkv=not args.no_fuse_qkv,
                    include_tts=not args.no_tts)
    elif args.kind == "audio-tokenizer":
        from .convert.audio_tokenizer import convert_audio_tokenizer

        convert_audio_tokenizer(args.source, out, dtype=args.dtype or "f16")
    elif args.kind == "dflash":
        from .convert.dflash import convert_dflash

        convert_dflash(args.source, out, dtype=args.dtype or "bf16", target_vocab=args.target_vocab)
    else:
        from .convert.mimo2 import convert_mimo2

        convert_mimo2(args.source, out, dtype=args.dtype, expert_type=args.expert_type,
                      swa_window_keys=args.swa_window_keys, fuse_qkv=args.fuse_qkv, mtp=not args.no_mtp)
    print(out)
    return 0


def _cmd_quantize(args) -> int:
    from .convert.quantize import quantize_gguf

    quantize_gguf(args.input, args.output, args.type)
    print(args.output)
    return 0


def _text_session(args):
    from .text import TextSession

    if args.draft not in (None, "mtp") and not Path(args.draft).is_file():  # before minutes of model loading
        raise CliError(f"--draft: no such drafter file: {args.draft} (a DFlash GGUF from `mimo-ggml convert dflash`, "
                       "or 'mtp' for the model's own MTP blocks)")
    if not 2 <= args.draft_block <= 64:
        raise CliError(f"--draft-block must be between 2 and 64, got {args.draft_block}")

    return TextSession(args.model, **_devices(args), n_threads=args.threads, kv_type=args.kv_type,
                       n_ctx=args.n_ctx, swa_window_keys=args.swa_window_keys, draft=args.draft,
                       draft_block=args.draft_block)


def _sampling(args) -> dict:
    return dict(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                seed=args.seed)


def _print_stats(result) -> None:
    t = result.timings
    print(f"[{result.prompt_tokens} prompt tokens, {t['prompt_tokens_per_s']:.1f} tokens/s | "
          f"{result.completion_tokens} generated, {t['tokens_per_s']:.1f} tokens/s | {result.finish_reason}]",
          file=sys.stderr, flush=True)
    d = result.draft_stats
    if d is not None:
        by_position = " ".join(f"{r:.2f}" for r in d["acceptance_by_position"])
        print(f"[draft: {d['rounds']} verify passes, {d['accepted']}/{d['proposed']} drafts accepted, "
              f"mean accepted length {d['mean_accepted_length']:.2f} | by position {by_position} | "
              f"drafting {d['draft_s']:.2f} s, verifying {d['verify_s']:.2f} s]", file=sys.stderr, flush=True)


def _read_stdin_text() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"standard input is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                       "convert it, e.g. with iconv -t UTF-8") from None


def _cmd_generate(args) -> int:
    prompt = _read_stdin_text() if args.prompt == STDIN else args.prompt
    with _text_session(args) as session:
        stream = session.generate(prompt, stream=True, **_sampling(args))
        for piece in stream:
            print(piece, end="", flush=True)
        print(flush=True)
        if args.stats:
            _print_stats(stream.result)
    return 0


def _cmd_chat(args) -> int:
    messages = [{"role": "system", "content": args.system}] if args.system else []
    interactive = sys.stdin.isatty()
    with _text_session(args) as session:
        while True:
            if interactive:
                print("> ", end="", flush=True)
            line = sys.stdin.readline()
            if not line:  # EOF
                break
            line = line.rstrip("\n")
            if line.strip() == "/exit":
                break
            if not line.strip():
                continue
            messages.append({"role": "user", "content": line})
            stream = session.chat(messages, stream=True, cache_prompt=True, **_sampling(args))
            for piece in stream:
                print(piece, end="", flush=True)
            print(flush=True)
            reply = stream.result.text
            for marker in ("<|im_start|>", "<|im_end|>"):
                reply = reply.replace(marker, "")
            messages.append({"role": "assistant", "content": reply})
            if args.stats:
                _print_stats(stream.result)
    return 0


def _cmd_serve(args) -> int:
    from .server.options import run_from_args

    return run_from_args(args)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("mimo-ggml")
    except Exception:  # running from a source tree
        from . import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    from .models import DEFAULT_MODEL

    p = argparse.ArgumentParser(prog="mimo-ggml", description="Run Xiaomi MiMo models on ggml.")
    p.add_argument("--version", action="version", version=f"mimo-ggml {_version()}")
    p.add_argument("-v", "--verbose", action="store_true", help="show native (ggml) logs")
    # -v after the sub-command too (SUPPRESS: an absent one leaves the top-level value alone)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show native (ggml) logs")
    sub = p.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("transcribe", parents=[common], help="transcribe audio files with MiMo-V2.5-ASR")
    tr.add_argument("files", nargs="+",
                    help="audio files (wav, flac, ogg, mp3, m4a, mp4, webm, aac, ...; any rate and channels); "
                         "'-' reads standard input")
    tr.add_argument("-m", "--model", default=DEFAULT_MODEL,
                    help=f"mimo_asr GGUF file, folder, or Hugging Face repo id (default: {DEFAULT_MODEL}, Q4_K)")
    tr.add_argument("--tokenizer", help="audio-tokenizer GGUF, folder or repo id (default: next to the model, "
                                        "or cstr/mimo-tokenizer-GGUF for a repo id)")
    tr.add_argument("-l", "--language", default="auto", choices=("auto", "en", "zh"))
    tr.add_argument("-t", "--threads", type=_positive_int("--threads"), default=None,
                    help="CPU threads (default: all cores)")
    tr.add_argument("--device", default="auto", help="auto, cpu, cuda:0, metal, ...")
    tr.add_argument("--kv-type", default="f16", choices=("f16", "q8_0", "f32"))
    tr.add_argument("--output-format", "-f", choices=("txt", "srt", "vtt", "json", "all"),
                    help="also write files in this format (default with -o: txt)")
    tr.add_argument("-o", "--output-dir", help="folder for the output files, named <input name>.<format> "
                                               "(default: current folder)")
    tr.add_argument("--overwrite", action="store_true", help="replace output files that already exist")
    tr.add_argument("--max-new-tokens", type=_positive_int("--max-new-tokens"), default=None,
                    help="token cap per segment")
    from .vad import DEFAULT_MAX_SEGMENT_S

    tr.add_argument("--max-segment", type=_seconds("--max-segment", 1.0), default=None,
                    help=f"longest segment in seconds (default: {DEFAULT_MAX_SEGMENT_S:g}, suited to subtitles)")
    tr.add_argument("--no-vad", action="store_true",
                    help="no voice-activity detection: transcribe everything, in clips cut at pauses")
    tr.add_argument("--vad-model", help="Silero VAD .onnx file to use (default: found automatically)")
    tr.add_argument("--batch-size", type=_positive_int("--batch-size"), default=None,
                    help="segments decoded together (default 8; 1: one after another)")
    tr.add_argument("--max-clip", type=_seconds("--max-clip", 2.0, allow_zero=True), default=None,
                    help="split longer audio at pauses into clips of this many seconds (0: one pass)")
    from .audio import DEFAULT_MAX_DURATION_S

    tr.add_argument("--max-duration", type=_seconds("--max-duration", 1.0), default=DEFAULT_MAX_DURATION_S,
                    help=f"refuse inputs longer than this many seconds (default: {DEFAULT_MAX_DURATION_S:g})")
    progress = tr.add_mutually_exclusive_group()
    progress.add_argument("--progress", action="store_true", default=None,
                          help="show a progress bar on stderr (default: when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    tr.set_defaults(func=_cmd_transcribe)

    info = sub.add_parser("info", parents=[common], help="show this build's ggml, devices and CPU features (and a GGUF's metadata)")
    info.add_argument("model", nargs="?", help="a GGUF file to describe")
    info.set_defaults(func=_cmd_info)

    conv = sub.add_parser("convert", parents=[common], help="convert a Hugging Face checkpoint folder to GGUF")
    conv.add_argument("kind", choices=CONVERTERS, help="which model the folder holds")
    conv.add_argument("source", help="checkpoint folder (config.json + *.safetensors)")
    conv.add_argument("output", help="GGUF file to write")
    conv.add_argument("--dtype", choices=("f16", "f32", "bf16", "q8_0"),
                      help="type of the float matrices (default: f16 for asr / audio-tokenizer; mimo2 keeps the "
                           "checkpoint's precision, FP8 becoming bf16; bf16 for dflash); bf16 is for mimo2 and "
                           "dflash only, q8_0 for dflash only")
    conv.add_argument("--no-fuse-qkv", action="store_true", help="asr: write separate q/k/v instead of attn.qkv")
    conv.add_argument("--no-tts", action="store_true", help="asr: leave out the TTS-only modules")
    conv.add_argument("--expert-type", help="mimo2: expert type (default lossless: MXFP4 -> mxfp4, AWQ -> q4_0 / "
                                            "q5_0; or bf16, f16, f32, q8_0, q4_1)")
    conv.add_argument("--swa-window-keys", type=int, default=None,
                      help="mimo2: keys a sliding-window query sees, stored in the file (default: the "
                           "checkpoint's window + 1, 129 for the releases as SGLang / transformers; 128: vLLM / "
                           "llama.cpp)")
    conv.add_argument("--fuse-qkv", action="store_true", help="mimo2: write a fused attn_qkv")
    conv.add_argument("--no-mtp", action="store_true",
                      help="mimo2: leave out the multi-token-prediction layers (exported by default as blocks "
                           "after the trunk, mimo2.nextn_predict_layers)")
    conv.add_argument("--target-vocab", type=int, default=None,
                      help="dflash: vocabulary size of the target whose embedding and head the drafter borrows "
                           "(checked against the mask token id, stored as dflash-draft.vocab_size)")
    conv.set_defaults(func=_cmd_convert)

    q = sub.add_parser("quantize", parents=[common], help="quantize a GGUF's matrices with ggml (norms, biases, codebooks kept)")
    q.add_argument("input")
    q.add_argument("output")
    q.add_argument("type", help="q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K or q6_K")
    q.set_defaults(func=_cmd_quantize)

    for name, func, text in (("generate", _cmd_generate, "generate text with a MiMo-V2 / V2.5 MoE model (mimo2 GGUF)"),
                             ("chat", _cmd_chat, "chat with a MiMo-V2 / V2.5 MoE model on stdin (/exit or EOF ends)")):
        g = sub.add_parser(name, parents=[common], help=text)
        g.add_argument("-m", "--model", required=True, help="mimo2 GGUF file")
        if name == "generate":
            g.add_argument("-p", "--prompt", required=True, help="prompt text ('-': read stdin)")
        else:
            g.add_argument("--system", help="system message")
        g.add_argument("-n", "--max-tokens", type=int, default=256 if name == "generate" else 1024)
        g.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default)")
        g.add_argument("--top-p", type=float, default=1.0)
        g.add_argument("--top-k", type=int, default=0)
        g.add_argument("--seed", type=int, default=0)
        g.add_argument("-t", "--threads", type=int, default=None, help="CPU threads (default: all cores)")
        g.add_argument("--device", default="auto", help="auto, cpu, cuda:0, metal, ...")
        g.add_argument("--kv-type", default="f16", choices=("f16", "q8_0", "f32"))
        g.add_argument("--n-ctx", type=int, default=4096, help="context positions")
        g.add_argument("--swa-window-keys", type=int, default=None,
                       help="keys a sliding-window query sees (default: the file's, 129)")
        g.add_argument("--draft", metavar="PATH|mtp", default=None,
                       help="speculative decoding: a DFlash drafter GGUF (mimo-ggml convert dflash) or 'mtp' (the "
                            "model file's own MTP blocks); greedy output is unchanged")
        g.add_argument("--draft-block", type=int, default=8,
                       help="tokens per verify pass with --draft: the last token and up to N-1 drafts (default 8)")
        g.add_argument("--stats", action="store_true",
                       help="print token counts, speed and (with --draft) the acceptance figures to stderr")
        g.set_defaults(func=func)

    from .server.options import add_arguments as add_serve_arguments

    sv = sub.add_parser("serve", help="OpenAI-compatible HTTP server (speech recognition, chat); needs [server]")
    add_serve_arguments(sv).set_defaults(func=_cmd_serve)
    _add_rpc_commands(p, sub)
    return p


def _devices(args) -> dict:
    """The device keyword arguments of a model from --device, --rpc and --layer-split."""
    try:
        return cli_devices(args.device, getattr(args, "rpc", None), getattr(args, "layer_split", None))
    except InvalidArgumentError as exc:
        raise CliError(str(exc)) from None


def _add_rpc_commands(p: argparse.ArgumentParser, sub) -> None:
    """``rpc-server``, and ``--rpc HOST:PORT,...`` / ``--layer-split`` on every command with ``--device``."""
    def endpoints(text: str) -> list[str]:
        eps = [e.strip() for e in text.split(",") if e.strip()]
        if not eps:
            raise argparse.ArgumentTypeError("expected HOST:PORT[,HOST:PORT...]")
        for e in eps:
            host, sep, port = e.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise argparse.ArgumentTypeError(f"expected HOST:PORT[,HOST:PORT...], got {e!r}")
        return eps

    def shares(text: str) -> list[float]:
        try:
            out = [float(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected numbers such as 1,2,2, got {text!r}") from None
        if any(not v >= 0 for v in out) or not sum(out) > 0:
            raise argparse.ArgumentTypeError(f"shares must be non-negative and not all 0, got {text!r}")
        return out

    for parser in list(sub.choices.values()):
        if any("--device" in a.option_strings for a in parser._actions):
            parser.add_argument("--rpc", type=endpoints, metavar="HOST:PORT[,...]",
                                help="`mimo-ggml rpc-server`s to split the model's layers over, after --device "
                                     "(the local part); the whole model on one server: --device rpc:HOST:PORT")
            parser.add_argument("--layer-split", type=shares, metavar="SHARES",
                                help="with --rpc: each device's share of the layers, --device first "
                                     "(e.g. 1,2,2; default equal)")

    srv = sub.add_parser(
        "rpc-server", help="serve this machine's CPU to other mimo-ggml processes over ggml RPC",
        description="Serve this machine's CPU (or --device) to mimo-ggml clients that pass "
                    "device='rpc:HOST:PORT' or --rpc HOST:PORT. WARNING: the ggml RPC protocol has NO "
                    "authentication and no encryption: anyone who can reach the port can use this machine's "
                    "compute and memory through it. It binds to 127.0.0.1 by default; "
                    "expose it only on a trusted, private network. Both ends must run the same mimo-ggml "
                    "version (the same RPC protocol). Stop it with Ctrl-C.")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    srv.add_argument("--port", type=int, default=50052, help="TCP port (default 50052)")
    srv.add_argument("-t", "--threads", type=int, default=None, help="CPU threads (default: all cores)")
    srv.add_argument("--cache", metavar="DIR", default=None,
                     help="folder where the server caches large tensors by hash, so a client that reloads a "
                          "model sends only hashes")
    srv.add_argument("--device", default="cpu", help="device to serve (default cpu; e.g. cuda:0)")

    def run_server(args) -> int:
        import os
        import signal

        from . import _core

        threads = args.threads or (os.cpu_count() or 1)
        if args.cache:
            os.makedirs(args.cache, exist_ok=True)
        # the native loop never returns to Python: let Ctrl-C / SIGTERM end the process directly
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        print(f"mimo-ggml rpc-server on {args.host}:{args.port} (no authentication)", file=sys.stderr, flush=True)
        _core.rpc_start_server(args.host, args.port, args.cache or "", threads, [args.device])
        return 1

    srv.set_defaults(func=run_server)



def _exit_interrupted(signum=None, frame=None) -> None:
    try:
        sys.stdout.flush()
    except BaseException:  # noqa: BLE001
        pass
    os._exit(EXIT_INTERRUPTED)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Called without ``argv`` it is the program itself (``mimo-ggml``,
    ``python -m mimo_ggml``): it then ends the process with that code as soon
    as the work is done and the output flushed, so a Ctrl-C can never land in
    the interpreter's shutdown (where Python has put back the default action
    and the process would die by SIGINT instead of exiting 130)."""
    try:
        code = _main(argv)
    finally:
        # a Ctrl-C after the work is done still exits 130, quietly
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, _exit_interrupted)
    if argv is None:
        _flush_and_exit(code)
    return code


def _flush_and_exit(code: int) -> None:
    try:
        logging.shutdown()
    except Exception:  # noqa: BLE001
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken: nothing more can reach it
            pass
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask"):
        # from here a Ctrl-C stays pending; one that came just before runs its handler
        # (exit 130) at the next Python function entry, or is seen pending
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        _checkpoint()
        if INTERRUPTS.seen or signal.SIGINT in signal.sigpending():
            code = EXIT_INTERRUPTED
    os._exit(code)


def _checkpoint() -> None:
    """A Python function entry, where the interpreter runs pending signal handlers."""


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    try:
        print(f"mimo-ggml: warning: {_flag_words(str(message))}", file=sys.stderr, flush=True)
    except OSError:
        pass


def _main(argv: list[str] | None) -> int:
    try:
        INTERRUPTS.install()  # first: a Ctrl-C from here on is never swallowed
        import warnings

        warnings.showwarning = _show_warning  # one plain line, not a source excerpt
        args = build_parser().parse_args(argv)
        if args.verbose:
            logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
        return args.func(args)
    except KeyboardInterrupt:
        try:
            INTERRUPTS.finish_partial()
            print("mimo-ggml: interrupted", file=sys.stderr, flush=True)
        except BaseException:  # noqa: BLE001 - stderr gone or a second Ctrl-C: exit all the same
            _exit_interrupted()
        return EXIT_INTERRUPTED
    except _StopOutput:
        return EXIT_BROKEN_PIPE
    except BrokenPipeError:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return EXIT_BROKEN_PIPE
    except UnicodeDecodeError as exc:
        _error(f"input is not UTF-8 text: {exc}")
        return EXIT_ERROR
    except (CliError, MimoError, FileNotFoundError, ValueError, OSError) as exc:
        _error(str(exc) or type(exc).__name__)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
