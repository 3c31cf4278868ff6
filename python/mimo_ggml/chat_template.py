"""Chat prompts from a model's own template: :func:`render_chat`.

Owns: rendering ``{"role", "content"}`` messages with the Jinja2 chat
template a GGUF carries in ``tokenizer.chat_template`` (the converter copies
it from the checkpoint's ``tokenizer_config.json``), in the sandboxed
environment and with the helpers Hugging Face templates are written against
(``trim_blocks``/``lstrip_blocks``, ``loopcontrols``, ``raise_exception``,
``strftime_now``, a ``tojson`` that keeps non-ASCII text). Without a
template the prompt is ChatML, as :func:`mimo_ggml.chat.format_chat` writes
it, so there is one ChatML layout in the package.

A pure function of its arguments: no model file is read here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Optional

from .chat import check_messages, format_chat
from .errors import InvalidArgumentError

__all__ = ["render_chat", "TemplateError"]


class TemplateError(InvalidArgumentError):
    """The chat template cannot be compiled or rendered with these messages
    (including a ``raise_exception(...)`` call inside the template)."""


def _raise_exception(message: str):
    raise TemplateError(f"the chat template refused the messages: {message}")


def _tojson(value, indent=None, separators=None, sort_keys=False, ensure_ascii=False):
    return json.dumps(value, indent=indent, separators=separators, sort_keys=sort_keys, ensure_ascii=ensure_ascii)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=8)
def _compile(template: str):
    try:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as exc:  # pragma: no cover - jinja2 comes with the [server] extra
        raise ImportError("rendering a GGUF chat template needs jinja2: pip install 'mimo-ggml[server]'") from exc
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(template)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"the chat template does not compile: {exc}") from None


def render_chat(
    messages: Sequence[Mapping[str, Any]],
    template: Optional[str] = None,
    add_generation_prompt: bool = True,
    **kw: Any,
) -> str:
    """The prompt string for ``messages``.

    template: a Jinja2 chat template (a GGUF's ``tokenizer.chat_template``);
    None or empty renders ChatML. add_generation_prompt: end with the open
    assistant turn (templates read it as the variable of that name; whether
    they honour it is the template's choice). Other keywords (``bos_token``,
    ``eos_token``, ``tools``, ``enable_thinking``...) become template
    variables. Raises InvalidArgumentError for malformed messages and
    TemplateError when the template fails.
    """
    checked = check_messages(messages, roles=None)
    if not template:
        return format_chat(checked, add_generation_prompt=add_generation_prompt)
    compiled = _compile(template)
    try:
        return compiled.render(messages=checked, add_generation_prompt=bool(add_generation_prompt), **kw)
    except TemplateError:
        raise
    except Exception as exc:  # noqa: BLE001 - jinja2 and sandbox errors, undefined operations
        raise TemplateError(f"the chat template failed on these messages: {type(exc).__name__}: {exc}") from None
