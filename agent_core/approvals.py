"""Tool calls that wait for a human: gating calls, keeping them in the session, and applying the decisions.

A run whose model calls a tool with `approval_mode="always_require"` stops and returns approval
requests; the batch's other calls wait with them. The requests live in `session.state["approvals"]`
(so they serialize with the session), and the next run must decide every one of them before anything
else happens: approved calls run, rejected ones get a rejection result, and the conversation goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .exceptions import ApprovalError
from .messages import Content, Message
from .tools import FunctionTool, ToolRun, invoke_tool_calls

APPROVALS_KEY = "approvals"
"""`session.state[APPROVALS_KEY]` holds tool calls waiting for a human decision."""

REJECTED_RESULT = "The user rejected this tool call."


@dataclass
class Decisions:
    """The approval decisions a run was given, taken out of its input messages."""

    by_id: dict[str, Content] = field(default_factory=dict)

    @classmethod
    def split(cls, inputs: Sequence[Message]) -> tuple[Decisions, list[Message]]:
        """The decisions in `inputs`, and the inputs without them (decisions steer the run; they are not
        conversation content, and a message left empty by their removal is dropped)."""
        by_id = {c.id: c for m in inputs for c in m.contents_of("function_approval_response") if c.id}
        kept = [m for m in map(_without_decisions, inputs) if m.contents]
        return cls(by_id), kept

    def __bool__(self) -> bool:
        return bool(self.by_id)

    def check(self, state: dict[str, Any]) -> None:
        """Refuse the run unless every pending request of the session is decided, and nothing else is."""
        pending_ids = [r.id for r in pending_requests(state) if r.id]
        if self.by_id and not pending_ids:
            raise ApprovalError("there are no pending approval requests to decide", pending_ids=[])
        unknown = sorted(set(self.by_id) - set(pending_ids))
        if unknown:
            raise ApprovalError(f"unknown approval request ids: {unknown}", pending_ids=pending_ids)
        missing = [i for i in pending_ids if i not in self.by_id]
        if missing:
            raise ApprovalError(
                f"the session has pending approval requests {missing}; approve or reject each before continuing",
                pending_ids=pending_ids,
            )

    async def run_decided_calls(
        self, state: dict[str, Any], tools: dict[str, FunctionTool], run: ToolRun | None = None
    ) -> Message:
        """Run approved calls (and their batch's ungated calls); rejected ones get a rejection result."""
        approved: list[Content] = []
        rejected: list[Content] = []
        for request in pending_requests(state):
            (approved if self.by_id[request.id or ""].approved else rejected).append(request.function_call)
        results = await invoke_tool_calls([*approved, *state.get(APPROVALS_KEY, {}).get("auto", [])], tools, run)
        results += [Content.from_function_result(c.call_id or "", REJECTED_RESULT, name=c.name) for c in rejected]
        return Message("tool", results)


def pending_requests(state: dict[str, Any]) -> list[Content]:
    """The approval requests the session waits on (empty when none)."""
    requests: list[Content] = state.get(APPROVALS_KEY, {}).get("requests", [])
    return requests


def gated_calls(calls: Sequence[Content], tools: dict[str, FunctionTool]) -> list[Content]:
    """The calls that must wait for a human decision."""
    return [c for c in calls if c.name in tools and tools[c.name].requires_approval]


def record(state: dict[str, Any], requests: Sequence[Content], auto_calls: Sequence[Content]) -> None:
    """Keep the run's approval requests (and the ungated calls of their batch) in the state, or clear them."""
    if requests:
        state[APPROVALS_KEY] = {"requests": list(requests), "auto": list(auto_calls)}
    else:
        state.pop(APPROVALS_KEY, None)


def _without_decisions(message: Message) -> Message:
    if not message.contents_of("function_approval_response"):
        return message
    kept = [c for c in message.contents if c.type != "function_approval_response"]
    return Message(message.role, kept, author_name=message.author_name)
