"""Chat prompt formatting for the MiMo MoE text models.

Owns: :func:`format_chat`, which renders a list of ``{"role", "content"}``
messages in the ChatML layout MiMo shares with Qwen::

    <|im_start|>{role}\\n{content}<|im_end|>\\n   (per message)
    <|im_start|>assistant\\n                      (generation prompt)

and validates the messages, since a malformed turn silently degrades the
model's output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidArgumentError

__all__ = ["ROLES", "IM_START", "IM_END", "format_chat"]

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ROLES = ("system", "user", "assistant", "tool")


def _validate(messages: Any) -> list[tuple[str, str]]:
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidArgumentError("messages must be a list of {'role': ..., 'content': ...} dicts")
    if not messages:
        raise InvalidArgumentError("messages is empty")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise InvalidArgumentError(f"message {i} is a {type(msg).__name__}, not a dict")
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            raise InvalidArgumentError(f"message {i} has role {role!r}; accepted roles: {', '.join(ROLES)}")
        if role == "system" and i != 0:
            raise InvalidArgumentError(f"message {i}: a system message may only come first")
        if not isinstance(content, str):
            raise InvalidArgumentError(
                f"message {i} content must be a string, got {type(content).__name__}"
            )
        # Turn markers inside content would forge or break turns.
        for marker in (IM_START, IM_END):
            if marker in content:
                raise InvalidArgumentError(f"message {i} content contains the turn marker {marker!r}")
        out.append((role, content))
    return out


def format_chat(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> str:
    """Render ``messages`` as ChatML; with ``add_generation_prompt`` end with
    the open assistant turn the model continues from."""
    parts = [f"{IM_START}{role}\n{content}{IM_END}\n" for role, content in _validate(messages)]
    if add_generation_prompt:
        parts.append(f"{IM_START}assistant\n")
    return "".join(parts)
