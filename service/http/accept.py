"""Content negotiation for a turn: JSON or Server-Sent Events, from the Accept header as RFC 9110 §12.5.1 reads it.

Media types and parameters compare case-insensitively; `q=0` means "not this"; the most specific range that
matches a type gives its weight (`text/event-stream` over `text/*` over `*/*`). A turn streams when
`text/event-stream` is acceptable and weighs at least as much as `application/json`. Anything else (no
header, `*/*`, only other types) gets JSON: a server may answer with its default when nothing listed fits.
"""

from __future__ import annotations

EVENT_STREAM = "text/event-stream"
JSON = "application/json"


def _ranges(header: str) -> list[tuple[str, str, float]]:
    """(type, subtype, q) of each well-formed media range; malformed ones are ignored."""
    ranges: list[tuple[str, str, float]] = []
    for part in header.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        kind, slash, subtype = media.lower().partition("/")
        if not slash or not kind or not subtype:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0  # an unreadable weight is no consent
        ranges.append((kind, subtype, q))
    return ranges


def _weight(ranges: list[tuple[str, str, float]], media_type: str) -> float:
    kind, _, subtype = media_type.partition("/")
    best_specificity, weight = -1, 0.0
    for range_kind, range_subtype, q in ranges:
        if range_kind == kind and range_subtype == subtype:
            specificity = 2
        elif range_kind == kind and range_subtype == "*":
            specificity = 1
        elif range_kind == "*" and range_subtype == "*":
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, weight = specificity, q
    return weight


def wants_event_stream(accept: str | None) -> bool:
    """True when the Accept header asks for the turn as Server-Sent Events."""
    if not accept:
        return False
    ranges = _ranges(accept)
    if not any(kind == "text" and subtype == "event-stream" and q > 0 for kind, subtype, q in ranges):
        return False  # only an explicit mention streams: `*/*` alone means "whatever you default to"
    return _weight(ranges, EVENT_STREAM) >= _weight(ranges, JSON)
