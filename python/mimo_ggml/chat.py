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

__all__ = ["ROLES", "IM_START", "IM_END", "check_messages", "format_chat"]

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ROLES = ("system", "user", "assistant", "tool")


def check_messages(messages: Any, roles: Sequence[str] | None = ROLES) -> list[dict]:
    """The messages as plain dicts, after checking their shape: a non-empty
    list of {"role", "content"} mappings with string content that holds no
    turn marker (it would forge or break turns, whatever the template).
    ``roles`` limits the roles (ChatML's); None accepts any non-empty one
    (a model's own template decides)."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidArgumentError("messages must be a list of {'role': ..., 'content': ...} dicts")
    if not messages:
        raise InvalidArgumentError("messages is empty")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise InvalidArgumentError(f"message {i} is a {type(msg).__name__}, not a dict")
        role, content = msg.get("role"), msg.get("content")
        if roles is None:
            if not isinstance(role, str) or not role:
                raise InvalidArgumentError(f"message {i} has no role")
        elif role not in roles:
            raise InvalidArgumentError(f"message {i} has role {role!r}; accepted roles: {', '.join(roles)}")
        if roles is not None and role == "system" and i != 0:
            raise InvalidArgumentError(f"message {i}: a system message may only come first")
        if not isinstance(content, str):
            raise InvalidArgumentError(f"message {i} content must be a string, got {type(content).__name__}")
        for marker in (IM_START, IM_END):
            if marker in content:
                raise InvalidArgumentError(f"message {i} content contains the turn marker {marker!r}")
        out.append(dict(msg))
    return out


def format_chat(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> str:
    """Render ``messages`` as ChatML; with ``add_generation_prompt`` end with
    the open assistant turn the model continues from."""
    parts = [f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in check_messages(messages)]
    if add_generation_prompt:
        parts.append(f"{IM_START}assistant\n")
    return "".join(parts)
