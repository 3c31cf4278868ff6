"""The ``mimo-ggml`` command line (also ``python -m mimo_ggml``).

Sub-commands: ``transcribe`` (audio files -> text, srt, vtt, json), ``info``
(this build and, optionally, a GGUF file), ``convert`` (Hugging Face
checkpoints -> GGUF), ``quantize`` (GGUF -> GGUF), and ``generate`` /
``chat`` (text with the MiMo-V2 MoE models). Quiet by default; ``-v`` shows
the native logs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .errors import MimoError

CONVERTERS = ("asr", "audio-tokenizer", "mimo2")


def _cmd_transcribe(args) -> int:
    from .session import Session
    from .writers import FORMATS, write_transcription

    formats = list(FORMATS) if args.output_format == "all" else [args.output_format] if args.output_format else []
    out_dir = Path(args.output_dir) if args.output_dir else Path(".") if formats else None
    if out_dir is not None and not formats:
        formats = ["txt"]
    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        print(f"mimo-ggml: error: audio file not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    status = 0
    with Session(args.model, args.tokenizer, device=args.device, n_threads=args.threads, kv_type=args.kv_type) as asr:
        for name in args.files:
            progress = None
            if args.progress:
                def progress(done, total, name=name):
                    print(f"{name}: {done:.1f}/{total:.1f} s ({100.0 * done / max(total, 1e-9):.0f}%)",
                          file=sys.stderr, flush=True)
            try:
                result = asr.transcribe(name, language=args.language, max_new_tokens=args.max_new_tokens,
                                        max_clip_s=args.max_clip if args.max_clip > 0 else None, progress=progress)
            except MimoError as exc:  # one bad file does not stop the others
                print(f"mimo-ggml: error: {name}: {exc}", file=sys.stderr)
                status = 2
                continue
            print(result.text, flush=True)
            if out_dir is not None:
                out_dir.mkdir(parents=True, exist_ok=True)
                for fmt in formats:
                    write_transcription(result, out_dir / f"{Path(name).stem}.{fmt}", fmt)
    return status


def _cmd_info(args) -> int:
    from .system import system_info

    info = system_info()
    if args.model:
        import gguf

        r = gguf.GGUFReader(args.model)
        fields = {}
        for name, field in r.fields.items():
            if name.startswith("GGUF.") or name.startswith("tokenizer.ggml."):
                continue
            value = field.contents()
            fields[name] = value
        types: dict[str, int] = {}
        for t in r.tensors:
            types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        info["model"] = {"path": str(args.model), "metadata": fields, "tensors": len(r.tensors), "tensor_types": types}
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
    else:
        from .convert.mimo2 import convert_mimo2

        convert_mimo2(args.source, out, dtype=args.dtype, expert_type=args.expert_type,
                      swa_window_keys=args.swa_window_keys, fuse_qkv=args.fuse_qkv)
    print(out)
    return 0


def _cmd_quantize(args) -> int:
    from .convert.quantize import quantize_gguf

    quantize_gguf(args.input, args.output, args.type)
    print(args.output)
    return 0


def _text_session(args):
    from .text import TextSession

    return TextSession(args.model, device=args.device, n_threads=args.threads, kv_type=args.kv_type,
                       n_ctx=args.n_ctx, swa_window_keys=args.swa_window_keys)


def _sampling(args) -> dict:
    return dict(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                seed=args.seed)


def _print_stats(result) -> None:
    t = result.timings
    print(f"[{result.prompt_tokens} prompt tokens, {t['prompt_tokens_per_s']:.1f} tokens/s | "
          f"{result.completion_tokens} generated, {t['tokens_per_s']:.1f} tokens/s | {result.finish_reason}]",
          file=sys.stderr, flush=True)


def _cmd_generate(args) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mimo-ggml", description="Run Xiaomi MiMo models on ggml.")
    p.add_argument("-v", "--verbose", action="store_true", help="show native (ggml) logs")
    sub = p.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("transcribe", help="transcribe audio files with MiMo-V2.5-ASR")
    tr.add_argument("files", nargs="+", help="audio files (wav, flac, ogg, mp3; any rate and channels)")
    tr.add_argument("-m", "--model", required=True, help="mimo_asr GGUF file, folder, or Hugging Face repo id")
    tr.add_argument("--tokenizer", help="audio-tokenizer GGUF (default: next to the model)")
    tr.add_argument("-l", "--language", default="auto", choices=("auto", "en", "zh"))
    tr.add_argument("-t", "--threads", type=int, default=None, help="CPU threads (default: all cores)")
    tr.add_argument("--device", default="auto", help="auto, cpu, cuda:0, metal, ...")
    tr.add_argument("--kv-type", default="f16", choices=("f16", "q8_0", "f32"))
    tr.add_argument("--output-format", "-f", choices=("txt", "srt", "vtt", "json", "all"),
                    help="also write files in this format (default with -o: txt)")
    tr.add_argument("-o", "--output-dir", help="folder for the output files (default: current folder)")
    tr.add_argument("--max-new-tokens", type=int, default=None, help="token cap per clip")
    tr.add_argument("--max-clip", type=float, default=60.0, help="split longer audio at pauses (0: one pass)")
    tr.add_argument("--progress", action="store_true", help="print progress to stderr")
    tr.set_defaults(func=_cmd_transcribe)

    info = sub.add_parser("info", help="show this build's ggml, devices and CPU features (and a GGUF's metadata)")
    info.add_argument("model", nargs="?", help="a GGUF file to describe")
    info.set_defaults(func=_cmd_info)

    conv = sub.add_parser("convert", help="convert a Hugging Face checkpoint folder to GGUF")
    conv.add_argument("kind", choices=CONVERTERS, help="which model the folder holds")
    conv.add_argument("source", help="checkpoint folder (config.json + *.safetensors)")
    conv.add_argument("output", help="GGUF file to write")
    conv.add_argument("--dtype", choices=("f16", "f32", "bf16"),
                      help="type of the float matrices (default: f16 for asr / audio-tokenizer; mimo2 keeps the "
                           "checkpoint's precision, FP8 becoming bf16); bf16 is for mimo2 only")
    conv.add_argument("--no-fuse-qkv", action="store_true", help="asr: write separate q/k/v instead of attn.qkv")
    conv.add_argument("--no-tts", action="store_true", help="asr: leave out the TTS-only modules")
    conv.add_argument("--expert-type", help="mimo2: expert type (default lossless: MXFP4 -> mxfp4, AWQ -> q4_0 / "
                                            "q5_0; or bf16, f16, f32, q8_0, q4_1)")
    conv.add_argument("--swa-window-keys", type=int, default=None,
                      help="mimo2: keys a sliding-window query sees, stored in the file (default: the "
                           "checkpoint's window + 1, 129 for the releases as SGLang / transformers; 128: vLLM / "
                           "llama.cpp)")
    conv.add_argument("--fuse-qkv", action="store_true", help="mimo2: write a fused attn_qkv")
    conv.set_defaults(func=_cmd_convert)

    q = sub.add_parser("quantize", help="quantize a GGUF's matrices with ggml (norms, biases, codebooks kept)")
    q.add_argument("input")
    q.add_argument("output")
    q.add_argument("type", help="q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K or q6_K")
    q.set_defaults(func=_cmd_quantize)

    for name, func, text in (("generate", _cmd_generate, "generate text with a MiMo-V2 / V2.5 MoE model (mimo2 GGUF)"),
                             ("chat", _cmd_chat, "chat with a MiMo-V2 / V2.5 MoE model on stdin (/exit or EOF ends)")):
        g = sub.add_parser(name, help=text)
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
        g.add_argument("--stats", action="store_true", help="print token counts and speed to stderr")
        g.set_defaults(func=func)
    _add_rpc_commands(p, sub)
    return p


def _add_rpc_commands(p: argparse.ArgumentParser, sub) -> None:
    """``--version``, ``rpc-server`` and ``--rpc HOST:PORT`` on every command with ``--device``."""
    from . import __version__

    p.add_argument("--version", action="version", version=f"mimo-ggml {__version__}")

    def endpoints(text: str) -> list[str]:
        eps = [e.strip() for e in text.split(",") if e.strip()]
        for e in eps:
            host, sep, port = e.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise argparse.ArgumentTypeError(f"expected HOST:PORT[,HOST:PORT...], got {e!r}")
        return eps

    class RpcDevice(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            if len(values) > 1:
                parser.error("--rpc: splitting a model's layers across several servers is not implemented yet; "
                             "give one HOST:PORT (the whole model runs there)")
            namespace.device = "rpc:" + values[0]

    for parser in list(sub.choices.values()):
        if any("--device" in a.option_strings for a in parser._actions):
            parser.add_argument("--rpc", type=endpoints, action=RpcDevice, metavar="HOST:PORT",
                                help="run on a `mimo-ggml rpc-server` (same as --device rpc:HOST:PORT)")

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    try:
        return args.func(args)
    except (MimoError, FileNotFoundError, ValueError) as exc:
        print(f"mimo-ggml: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mimo-ggml: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
