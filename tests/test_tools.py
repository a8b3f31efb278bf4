"""Tools: schemas from type hints, sync and async, parallel calls, errors reported to the model, approvals."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import pytest
from pydantic import BaseModel, Field

from agent_core import Agent, AgentSession, ApprovalError, Content, FunctionTool, Message, tool
from agent_core.openai import OpenAIResponsesClient
from devtools.echo_model import EchoModel


class Address(BaseModel):
    city: str
    zip_code: str | None = None


def test_schema_from_type_hints_annotated_and_pydantic():
    @tool(name="ship", description="Ship an order.", approval_mode="always_require")
    def ship_order(
        order_id: Annotated[str, "The order to ship"],
        address: Address,
        express: Annotated[bool, Field(description="Next-day delivery")] = False,
    ) -> str:
        return "ok"

    assert isinstance(ship_order, FunctionTool)
    assert (ship_order.name, ship_order.description, ship_order.requires_approval) == ("ship", "Ship an order.", True)
    schema = ship_order.parameters()
    assert schema["required"] == ["order_id", "address"]
    assert schema["properties"]["order_id"] == {
        "description": "The order to ship",
        "title": "Order Id",
        "type": "string",
    }
    assert schema["properties"]["express"]["description"] == "Next-day delivery"
    assert schema["properties"]["address"] == {"$ref": "#/$defs/Address"}
    assert schema["$defs"]["Address"]["required"] == ["city"]

    @tool
    def bare(x: int) -> int:
        """First paragraph only.

        Details the model doesn't need."""
        return x

    assert (bare.name, bare.description, bare.approval_mode) == ("bare", "First paragraph only.", "never_require")
    assert bare(2) == 2  # still callable directly
    with pytest.raises(ValueError, match="approval_mode"):
        tool(approval_mode="sometimes")(bare.func)  # type: ignore[call-overload]


async def test_invoke_validates_and_formats_results():
    @tool
    async def locate(address: Address) -> Address:
        return address

    result = await locate.invoke(json.dumps({"address": {"city": "Oslo"}}))
    assert json.loads(result) == {"city": "Oslo", "zip_code": None}
    with pytest.raises(Exception, match="city"):
        await locate.invoke(json.dumps({"address": {}}))


async def test_parallel_calls_run_concurrently(client: OpenAIResponsesClient):
    started: dict[str, asyncio.Event] = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def wait_for_other(me: str, other: str) -> str:
        started[me].set()
        await asyncio.wait_for(started[other].wait(), timeout=5)  # deadlocks if the calls ran one after another
        return f"{me} done"

    @tool
    async def left(x: str) -> str:
        return await wait_for_other("a", "b")

    @tool
    async def right(x: str) -> str:
        return await wait_for_other("b", "a")

    agent = client.as_agent(tools=[left, right])
    reply = await agent.run("left(1) right(2)")
    assert reply.text == "Tool results: left -> a done; right -> b done"


async def test_sync_tool_runs_off_the_event_loop(client: OpenAIResponsesClient):
    loop_thread: list[bool] = []

    @tool
    def where(x: str) -> str:
        try:
            asyncio.get_running_loop()
            loop_thread.append(True)
        except RuntimeError:
            loop_thread.append(False)
        return "here"

    reply = await client.as_agent(tools=[where]).run("where(x)")
    assert reply.text == "Tool results: where -> here"
    assert loop_thread == [False]


async def test_tool_exception_is_reported_to_the_model(client: OpenAIResponsesClient, model: EchoModel):
    @tool
    def explode(x: str) -> str:
        raise RuntimeError("warehouse offline")

    reply = await client.as_agent(tools=[explode]).run("explode(now)")
    assert reply.text == "Tool results: explode -> Error: explode failed: RuntimeError: warehouse offline"
    outputs = [i for i in model.responses_requests()[-1]["input"] if i.get("type") == "function_call_output"]
    assert outputs[0]["output"].startswith("Error: explode failed")


async def test_tool_loop_stops_after_max_iterations(client: OpenAIResponsesClient, model: EchoModel):
    calls = 0

    @tool
    def again(x: str) -> str:
        nonlocal calls
        calls += 1
        return "done"

    agent = Agent(client=client, tools=[again], max_tool_iterations=1)
    reply = await agent.run("again(x)")
    assert calls == 1
    # after the allowed iterations the model is told to answer without tools
    assert [r.get("tool_choice") for r in model.responses_requests()] == [None, "none"]
    assert reply.text == "Tool results: again -> done"

    no_tools_allowed = Agent(client=client, tools=[again], max_tool_iterations=0)
    reply = await no_tools_allowed.run("again(x)")
    assert calls == 1
    assert model.responses_requests()[-1]["tool_choice"] == "none"
    assert reply.text.startswith("I have seen 1 user message(s)")


async def test_approval_round_trip_survives_serialization(client: OpenAIResponsesClient, model: EchoModel):
    ran: list[str] = []

    @tool(approval_mode="always_require")
    def refund(order_id: str) -> str:
        """Refund an order."""
        ran.append(order_id)
        return f"refunded {order_id}"

    @tool
    def lookup(order_id: str) -> str:
        return f"order {order_id}: shoes"

    agent = client.as_agent(tools=[refund, lookup])
    session = agent.create_session()
    paused = await agent.run("refund(A1) lookup(A1)", session=session)
    assert ran == []
    [request] = paused.approval_requests
    assert (request.name, json.loads(request.arguments or "")) == ("refund", {"order_id": "A1"})
    calls_before = len(model.responses_requests())

    restored = AgentSession.from_dict(json.loads(json.dumps(session.to_dict())))
    [pending] = restored.state["approvals"]["requests"]
    assert pending == request
    done = await agent.run(Message(role="user", contents=[pending.to_approval_response(True)]), session=restored)
    assert ran == ["A1"]
    assert done.text == "Tool results: refund -> refunded A1; lookup -> order A1: shoes"
    assert "approvals" not in restored.state
    assert len(model.responses_requests()) == calls_before + 1  # one model call to continue


async def test_rejection_and_decision_validation(client: OpenAIResponsesClient):
    @tool(approval_mode="always_require")
    def delete_account(user: str) -> str:
        raise AssertionError("must not run when rejected")

    agent = client.as_agent(tools=[delete_account])
    session = agent.create_session()
    [request] = (await agent.run("delete_account(bob)", session=session)).approval_requests

    with pytest.raises(ApprovalError, match="pending approval requests"):
        await agent.run("never mind", session=session)
    with pytest.raises(ApprovalError, match="unknown approval request ids"):
        await agent.run(Message("user", [Content.from_function_approval_response("call_nope", True)]), session=session)
    assert session.state["approvals"]["requests"] == [request]  # failed runs changed nothing

    done = await agent.run(Message("user", [request.to_approval_response(False)]), session=session)
    assert done.text == "Tool results: delete_account -> The user rejected this tool call."
    with pytest.raises(ApprovalError, match="no pending approval"):
        await agent.run(Message("user", [request.to_approval_response(True)]), session=session)


async def test_service_mode_approval_continues_the_response_chain(client: OpenAIResponsesClient, model: EchoModel):
    @tool(approval_mode="always_require")
    def pay(amount: str) -> str:
        return f"paid {amount}"

    agent = client.as_agent(tools=[pay])
    session = await agent.create_service_session()
    [request] = (await agent.run("pay(10)", session=session)).approval_requests
    done = await agent.run(Message("user", [request.to_approval_response(True)]), session=session)
    assert done.text == "Tool results: pay -> paid 10"
    sent = model.responses_requests()[-1]
    assert sent["conversation"] == session.service_session_id
    assert [i["type"] for i in sent["input"]] == ["function_call_output"]


def test_schema_is_computed_once_per_tool():
    @tool
    def lookup(sku: str) -> str:
        return sku

    assert lookup.parameters() is lookup.parameters()


@pytest.mark.parametrize("service", [False, True], ids=["local-history", "service-conversation"])
async def test_each_tool_round_sends_the_history_plus_that_round(
    client: OpenAIResponsesClient, model: EchoModel, service: bool
):
    """Local history: each call resends what the previous one sent plus the model's calls and their results.
    A service conversation: the second call sends only the results (the service has the rest)."""

    @tool
    def lookup(sku: str) -> str:
        return f"sku {sku} ok"

    agent = client.as_agent(tools=[lookup])
    session = await agent.create_service_session() if service else agent.create_session()
    await agent.run("earlier", session=session)
    await agent.run("lookup(A1) lookup(B2)", session=session)
    first, second = model.responses_requests()[-2:]
    round_types = ["function_call", "function_call", "function_call_output", "function_call_output"]
    if service:
        assert [i["type"] for i in first["input"]] == ["message"]
        assert [i["type"] for i in second["input"]] == round_types[2:]
    else:
        assert second["input"][: len(first["input"])] == first["input"]
        assert [i["type"] for i in second["input"][len(first["input"]) :]] == round_types
        assert [i["content"] for i in first["input"] if i.get("role") == "user"] == ["earlier", "lookup(A1) lookup(B2)"]
