"""Reasoning items: made when a request asks for reasoning, verified when they come back.

The rule: a request with a `reasoning` object (any effort but "none") gets a reasoning item before its output.
It carries `encrypted_content` only when `include` lists "reasoning.encrypted_content", and a summary only
when `reasoning.summary` is set. The content is opaque: an HMAC-signed token under a key of this model
instance, so items sent back in a later input are checked (a forged or altered one gets the real API's 400
`invalid_encrypted_content`) and counted in the reply (`[reasoning carried: N]`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

from .errors import JSON, ApiError
from .items import new_id

ENCRYPTED_CONTENT = "reasoning.encrypted_content"


class ReasoningSeal:
    """Signs and checks the opaque `encrypted_content` of the reasoning items this model instance makes."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def seal(self, response_id: str, thought: str) -> str:
        payload = base64.urlsafe_b64encode(json.dumps({"response": response_id, "thought": thought}).encode())
        return f"{payload.decode()}.{self._mac(payload)}"

    def verify(self, token: object) -> bool:
        if not isinstance(token, str) or "." not in token:
            return False
        payload, mac = token.rsplit(".", 1)
        return hmac.compare_digest(self._mac(payload.encode()), mac)

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()[:32]


def wants_reasoning(body: JSON) -> bool:
    reasoning = body.get("reasoning")
    return isinstance(reasoning, dict) and reasoning.get("effort") != "none"


def reasoning_item(body: JSON, response_id: str, thought: str, seal: ReasoningSeal) -> JSON:
    """The reasoning output item for this request (`thought` is what its summary says)."""
    reasoning: JSON = body.get("reasoning") or {}
    item: JSON = {"type": "reasoning", "id": new_id("rs"), "summary": []}
    if reasoning.get("summary"):
        item["summary"] = [{"type": "summary_text", "text": thought}]
    include = body.get("include") or []
    if ENCRYPTED_CONTENT in include:
        item["encrypted_content"] = seal.seal(response_id, thought)
    return item


def carried_reasoning(context: list[JSON], seal: ReasoningSeal) -> int:
    """How many reasoning items with encrypted content the context holds; refuses any this model did not make."""
    carried = 0
    for item in context:
        if item.get("type") != "reasoning" or item.get("encrypted_content") is None:
            continue
        token = item["encrypted_content"]
        if not seal.verify(token):
            shown = f"{token[:4]}...{token[-4:]}" if isinstance(token, str) else repr(token)
            message = f"The encrypted content {shown} could not be verified."
            raise ApiError(400, message, code="invalid_encrypted_content")
        carried += 1
    return carried
