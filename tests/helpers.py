"""Small helpers for reading what the echo model reveals."""

from __future__ import annotations

import re

_SEEN = re.compile(r"I have seen (\d+) user message\(s\): (.*?)(?: \[instructions: .*\])?$", re.S)


def seen_user_messages(reply: str) -> list[str]:
    """The user messages the echo model says it saw, in order (its replies list every one)."""
    match = _SEEN.search(reply)
    assert match, f"not an echo reply: {reply!r}"
    said = re.findall(r'"(.*?)"(?: \||$)', match.group(2))
    assert len(said) == int(match.group(1)), reply
    return said
