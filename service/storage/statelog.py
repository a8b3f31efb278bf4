"""What the session state was after each turn, kept without a write of its own: reverse patches in turn rows.

The header holds the state after the last turn. Each turn's row also holds, when the turn changed the state,
an RFC 6902 JSON Patch (`jsonpatch`) that turns the state after that turn back into the state before it,
computed on the stored JSON (`$type`-tagged, as `encode_value` writes it). So the state after turn k is the
header's state with the patches of turns T, T-1, ..., k+1 applied, in that order: fork and rewind read
them; turns never do (they are not among the columns a turn selects).

Why reverse patches: they ride in the turn's own transaction (no extra write), a patch is as small as the
change (a calibrated token ratio is one `replace` of a number; a new summary carries the old one), an
unchanged state costs nothing, and no snapshot of the first state is needed, so rows that history
retention removes from the bottom never break the chain for the turns still kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jsonpatch
import jsonpointer

from agent_core.sessions import decode_value, encode_value

from .errors import StoreError, TurnTooLargeError
from .layout import PIECES_PER_ENTITY, pack, unpack

PATCH_PREFIX = "p"
"""Turn-row columns holding the reverse patch: `pj` inline, or `pzn` and `pz00`... compressed (like `j`/`z..`)."""
PATCH_COLUMNS = [f"{PATCH_PREFIX}{c}" for c in ["j", "zn", *(f"z{n:02d}" for n in range(PIECES_PER_ENTITY))]]


def stored_json(state: Mapping[str, Any]) -> Any:
    """The state as the header stores it (JSON data with `$type` tags), the form patches are computed on."""
    return encode_value(dict(state))


def reverse_patch(before: Any, after: Any) -> list[dict[str, Any]]:
    """The operations that turn `after` (the stored JSON after a turn) back into `before` (empty: no change)."""
    if before == after:
        return []
    operations: list[dict[str, Any]] = jsonpatch.make_patch(after, before).patch
    return operations


def patch_props(operations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The turn-row properties holding a reverse patch (none for an unchanged state)."""
    if not operations:
        return {}
    text = json.dumps(list(operations), separators=(",", ":"))
    packed = pack(text)
    if len(packed) > 1:  # the state is limited to AGENT_MAX_STATE_BYTES (256 KiB), so this cannot happen in practice
        raise TurnTooLargeError("the turn's state change is too large to record in its table row")
    return {f"{PATCH_PREFIX}{key}": value for key, value in packed[0].items()}


def read_patch(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The reverse patch stored in one turn's rows (empty when the turn did not change the state)."""
    props = {
        key[len(PATCH_PREFIX) :]: value
        for row in rows
        for key, value in row.items()
        if key in PATCH_COLUMNS and value is not None
    }
    if not props:
        return []
    operations: list[dict[str, Any]] = json.loads(unpack([props]))
    return operations


class StateHistoryError(StoreError):
    """The recorded state changes do not apply to the stored state (it was changed outside a turn)."""


def rewound(state_json: Any, patches_newest_first: Sequence[Sequence[Mapping[str, Any]]]) -> Any:
    """The stored JSON after applying reverse patches, newest turn first: the state as it was before them."""
    document = state_json
    for operations in patches_newest_first:
        if operations:
            try:
                document = jsonpatch.apply_patch(document, list(operations))
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                raise StateHistoryError(f"the session's recorded state changes do not apply: {exc}") from None
    return document


def decoded(state_json: Any) -> dict[str, Any]:
    state: dict[str, Any] = decode_value(state_json)
    return state
