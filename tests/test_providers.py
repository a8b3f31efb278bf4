"""Context and history providers: order, state namespaces, what gets stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from agent_core import Agent, BaseContextProvider, BaseHistoryProvider, Message, SessionContext, tool
from agent_core.openai import OpenAIResponsesClient
from devtools.echo_model import EchoModel

from .helpers import seen_user_messages


class Tracing(BaseContextProvider):
    def __init__(self, source_id: str, log: list[str]) -> None:
        super().__init__(source_id)
        self.log = log

    async def before_run(self, *, agent, session, context: SessionContext, state: dict[str, Any]) -> None:
        self.log.append(f"before:{self.source_id}")
        state["runs"] = state.get("runs", 0) + 1
        context.extend_instructions(self.source_id, f"from {self.source_id}")

    async def after_run(self, *, agent, session, context: SessionContext, state: dict[str, Any]) -> None:
        assert context.response is not None
        self.log.append(f"after:{self.source_id}:{context.response.text[:11]}")


async def test_providers_run_in_order_then_reverse_with_own_state(client: OpenAIResponsesClient, model: EchoModel):
    log: list[str] = []
    agent = Agent(client=client, instructions="base", context_providers=[Tracing("a", log), Tracing("b", log)])
    session = agent.create_session()
    await agent.run("x", session=session)
    await agent.run("y", session=session)
    assert log[:4] == ["before:a", "before:b", "after:b:I have seen", "after:a:I have seen"]
    assert session.state["a"] == {"runs": 2}
    assert session.state["b"] == {"runs": 2}
    assert model.responses_requests()[-1]["instructions"] == "base\nfrom a\nfrom b"


class Rag(BaseContextProvider):
    async def before_run(self, *, agent, session, context: SessionContext, state) -> None:
        context.extend_messages(self, [Message(role="user", text="DOC: hiking trails")])

        @tool
        def lookup(term: str) -> str:
            """Look a term up."""
            return f"{term}: found"

        context.extend_tools(self.source_id, [lookup])


async def test_context_messages_and_tools_reach_the_model(client: OpenAIResponsesClient, model: EchoModel):
    agent = Agent(client=client, context_providers=[Rag("rag")])
    session = agent.create_session()
    reply = await agent.run("lookup(boots)", session=session)
    assert reply.text == "Tool results: lookup -> boots: found"
    first = model.responses_requests()[0]
    assert [t["name"] for t in first["tools"]] == ["lookup"]
    assert first["input"][0]["content"] == "DOC: hiking trails"
    # context messages are per run: by default the history stores the input and the response, not the RAG docs
    stored = [m.text for m in session.state["in_memory"]["messages"] if m.text]
    assert "DOC: hiking trails" not in stored


class ListHistory(BaseHistoryProvider):
    def __init__(self, **options: bool) -> None:
        super().__init__("list", **options)
        self.rows: list[Message] = []
        self.loads = 0

    async def get_messages(self, session_id: str | None, **kwargs: Any) -> list[Message]:
        self.loads += 1
        return list(self.rows)

    async def save_messages(self, session_id: str | None, messages: Sequence[Message], **kwargs: Any) -> None:
        self.rows.extend(messages)


async def test_history_options_control_what_is_stored(client: OpenAIResponsesClient):
    outputs_only = ListHistory(store_inputs=False)
    agent = Agent(client=client, context_providers=[outputs_only])
    await agent.run("hello", session=agent.create_session())
    assert [m.role for m in outputs_only.rows] == ["assistant"]

    with_context = ListHistory(store_context_messages=True)
    agent = Agent(client=client, context_providers=[Rag("rag"), with_context])
    await agent.run("hi", session=agent.create_session())
    assert [m.text for m in with_context.rows][:2] == ["DOC: hiking trails", "hi"]

    write_only = ListHistory(load_messages=False)
    agent = Agent(client=client, context_providers=[write_only])
    session = agent.create_session()
    await agent.run("one", session=session)
    reply = await agent.run("two", session=session)
    assert write_only.loads == 0
    # the write-only provider doesn't count as history, so in-memory history was added and remembers "one"
    assert seen_user_messages(reply.text) == ["one", "two"]


async def test_tool_calls_and_results_are_stored_in_history(client: OpenAIResponsesClient):
    @tool
    def check_inventory(product_id: str) -> str:
        """Check product inventory."""
        return f"Product {product_id} has 42 units in stock"

    history = ListHistory()
    agent = Agent(client=client, tools=[check_inventory], context_providers=[history])
    await agent.run("check_inventory(B1)", session=agent.create_session())
    kinds = [(m.role, [c.type for c in m.contents]) for m in history.rows]
    assert kinds == [
        ("user", ["text"]),
        ("assistant", ["function_call"]),
        ("tool", ["function_result"]),
        ("assistant", ["text"]),
    ]
    assert history.rows[2].contents[0].result == "Product B1 has 42 units in stock"


def test_history_options_after_init_apply_only_to_the_named_options():
    """The reference page's `DatabaseHistoryProvider(db, load_messages=...)` works though its __init__ takes only db;
    any other unknown keyword still raises."""

    class OnlyDb(BaseHistoryProvider):
        def __init__(self, db: object) -> None:
            super().__init__("db")
            self.db = db

        async def get_messages(self, session_id: str | None, **kwargs: Any) -> list[Message]:
            return []

        async def save_messages(self, session_id: str | None, messages: Sequence[Message], **kwargs: Any) -> None:
            pass

    provider = OnlyDb("conn", store_inputs=False, store_context_messages=1)  # type: ignore[call-arg]
    assert (provider.db, provider.store_inputs, provider.store_context_messages, provider.load_messages) == (
        "conn",
        False,
        True,
        True,
    )
    with pytest.raises(TypeError, match="unexpected keyword argument 'store_everything'"):
        OnlyDb("conn", store_everything=True)  # type: ignore[call-arg]
