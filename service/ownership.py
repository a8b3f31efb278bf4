"""Server-side conversations bound to their owner.

A conversation the app creates carries, in its metadata, the session and agent it serves and a hash of
its owner (never the owner itself). Before a session attaches an existing `service_session_id`, the app
retrieves that conversation: missing, or created by the app for another owner, is "no such conversation"
(404, like a foreign session); created outside the app (no owner in its metadata) it may be attached only
when the deployment allows it (`AGENT_ATTACH_UNBOUND_CONVERSATIONS`): the caller then vouches for the id.
"""

from __future__ import annotations

import hashlib
import hmac

from agent_core.model_client import ResponsesClient

OWNER_KEY = "owner"


class ConversationNotFoundError(Exception):
    """No such conversation for this caller: absent, or the app created it for someone else."""


class UnboundConversationError(Exception):
    """The conversation was not created by this app, and attaching such conversations is off."""


def owner_hash(owner: str) -> str:
    """What a conversation's metadata records of its owner (metadata is readable by whoever holds the model)."""
    return hashlib.sha256(owner.encode()).hexdigest()


def conversation_metadata(owner: str, agent: str, session_id: str) -> dict[str, str]:
    """The metadata of a conversation the app creates for a session."""
    return {"session_id": session_id, "agent": agent, OWNER_KEY: owner_hash(owner)}


async def check_attachable(client: ResponsesClient, conversation_id: str, owner: str, *, allow_unbound: bool) -> None:
    """Raise unless `owner` may attach `conversation_id` to a new session."""
    metadata = await client.conversation_metadata(conversation_id)
    if metadata is None:
        raise ConversationNotFoundError("no such conversation")
    bound_to = metadata.get(OWNER_KEY)
    if bound_to is None:
        if not allow_unbound:
            raise UnboundConversationError(
                "this conversation was not created by this app; attaching such conversations is off "
                "(AGENT_ATTACH_UNBOUND_CONVERSATIONS)"
            )
        return
    if not hmac.compare_digest(bound_to, owner_hash(owner)):
        raise ConversationNotFoundError("no such conversation")
