"""Strict input: every bad request is refused with 400 (or 413) before the model is called or storage is
touched, and what the model may be sent is checked by type and range."""

from __future__ import annotations

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_core.model_client import RETRY_AFTER_MAX_SECONDS, _retry_after
from devtools.echo_model import EchoModel
from service.http.accept import wants_event_stream

from .api_client import assert_problem, clean_proxy, create, say, say_raw
from .storage_proxy import StorageProxy

__all__ = ["clean_proxy"]

WRITES = ("POST", "PUT", "PATCH", "MERGE", "DELETE")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# Raw bodies, so that what json.dumps would never write (NaN, lone surrogates, deep nesting) reaches the app.
BAD_TURN_BODIES: dict[str, str] = {
    "nested 40 deep": '{"message": "hi", "x": ' + nested(40) + "}",
    "nested 100,000 deep": '{"message": ' + nested(100_000) + "}",
    "NaN option": '{"message": "hi", "options": {"temperature": NaN}}',
    "Infinity option": '{"message": "hi", "options": {"top_p": Infinity}}',
    "-Infinity option": '{"message": "hi", "options": {"temperature": -Infinity}}',
    "lone surrogate in a message": '{"message": "hi \\ud800 there"}',
    "lone surrogate in a key": '{"message": "hi", "options": {"\\udfff": 1}}',
    "temperature as text": '{"message": "hi", "options": {"temperature": "x"}}',
    "temperature above 2": '{"message": "hi", "options": {"temperature": 2.5}}',
    "negative temperature": '{"message": "hi", "options": {"temperature": -0.1}}',
    "top_p above 1": '{"message": "hi", "options": {"top_p": 1.5}}',
    "max_output_tokens -1": '{"message": "hi", "options": {"max_output_tokens": -1}}',
    "max_output_tokens 0": '{"message": "hi", "options": {"max_output_tokens": 0}}',
    "max_output_tokens over the setting": '{"message": "hi", "options": {"max_output_tokens": 1000000000}}',
    "max_output_tokens as a float": '{"message": "hi", "options": {"max_output_tokens": 10.5}}',
    "parallel_tool_calls as text": '{"message": "hi", "options": {"parallel_tool_calls": "yes"}}',
    "reasoning as text": '{"message": "hi", "options": {"reasoning": "high"}}',
    "unknown reasoning effort": '{"message": "hi", "options": {"reasoning": {"effort": "extreme"}}}',
    "unknown reasoning field": '{"message": "hi", "options": {"reasoning": {"budget": 5}}}',
    "unknown verbosity": '{"message": "hi", "options": {"text": {"verbosity": "loud"}}}',
    "json_schema without a schema": (
        '{"message": "hi", "options": {"text": {"format": {"type": "json_schema", "name": "x"}}}}'
    ),
    "unknown text format": '{"message": "hi", "options": {"text": {"format": {"type": "xml"}}}}',
    "unknown truncation": '{"message": "hi", "options": {"truncation": "sometimes"}}',
    "stream as text": '{"message": "hi", "stream": "yes"}',
    "stream as a number": '{"message": "hi", "stream": 1}',
    "empty message": '{"message": ""}',
    "whitespace message": '{"message": " \\n\\t "}',
    "empty message in a list": '{"messages": [{"text": "ok"}, {"text": ""}]}',
    "message as a number": '{"message": 5}',
    "two decisions for one approval": (
        '{"approvals": [{"id": "call_1", "approved": true}, {"id": "call_1", "approved": false}]}'
    ),
    "approved as text": '{"approvals": [{"id": "call_1", "approved": "true"}]}',
    "unknown if_busy": '{"message": "hi", "if_busy": "later"}',
}


@pytest.mark.parametrize("body", list(BAD_TURN_BODIES.values()), ids=list(BAD_TURN_BODIES))
async def test_bad_turn_is_refused_before_any_work(
    http: httpx2.AsyncClient, model: EchoModel, clean_proxy: StorageProxy, body: str
):
    session = await create(http)
    clean_proxy.requests.clear()
    url = f"/agents/general/sessions/{session['session_id']}/messages"
    response = await http.post(url, content=body.encode(), headers={"content-type": "application/json"})
    problem = assert_problem(response, 400)
    assert problem["detail"]
    assert model.responses_requests() == []
    assert clean_proxy.requests == []  # refused before the session was even read
    assert (await http.get(f"/agents/general/sessions/{session['session_id']}")).json()["turns"] == 0


async def test_the_invalid_option_is_named(http: httpx2.AsyncClient):
    session = await create(http)
    problem = assert_problem(await say_raw(http, session, {"message": "hi", "options": {"top_p": 3}}), 400)
    assert [error["field"] for error in problem["errors"]] == ["options.top_p"]


async def test_valid_options_reach_the_model_as_sent(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    options = {
        "temperature": 0,
        "top_p": 0.5,
        "max_output_tokens": 64,
        "parallel_tool_calls": False,
        "reasoning": {"effort": "low"},
        "text": {"verbosity": "low"},
        "truncation": "auto",
    }
    response = await say_raw(http, session, {"message": "hi", "options": options})
    assert response.status_code == 200, response.text
    sent = model.responses_requests()[-1]
    assert {key: sent[key] for key in options} == options


BAD_CREATE_BODIES: dict[str, str] = {
    "local history with a service id": '{"history": "local", "service_session_id": "conv_abc"}',
    "state key approvals": '{"state": {"approvals": []}}',
    "state key compaction": '{"state": {"compaction": {}}}',
    "state key history": '{"state": {"history": {"messages": []}}}',
    "state nested 40 deep": '{"state": {"a": ' + nested(40) + "}}",
    "state with NaN": '{"state": {"score": NaN}}',
    "state with a lone surrogate": '{"state": {"name": "\\ud83d"}}',
    "state as a list": '{"state": [1, 2]}',
}


@pytest.mark.parametrize("body", list(BAD_CREATE_BODIES.values()), ids=list(BAD_CREATE_BODIES))
async def test_bad_create_writes_nothing(http: httpx2.AsyncClient, clean_proxy: StorageProxy, body: str):
    data = body.replace("{", '{"session_id": "strict-create", ', 1)
    clean_proxy.requests.clear()
    response = await http.post(
        "/agents/general/sessions", content=data.encode(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 400)
    assert [r for r in clean_proxy.requests if r[0] in WRITES] == []
    assert_problem(await http.get("/agents/general/sessions/strict-create"), 404)


async def test_state_with_other_keys_is_kept_as_given(http: httpx2.AsyncClient):
    state = {"profile": {"name": "Ana", "tags": ["a", "b"]}, "approvals_seen": 2, "$type": "mine"}
    session = await create(http, state=state)
    assert (await say(http, session, "hi")).status_code == 200
    shown = (await http.get(f"/agents/general/sessions/{session['session_id']}")).json()
    assert shown["state"] == state


async def test_a_long_pasted_document_is_accepted(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    document = "lorem ipsum dolor sit amet " * 1_600  # 43,200 characters: refused at the old 32,000 limit
    response = await say(http, session, document)
    assert response.status_code == 200, response.text
    assert model.responses_requests()[-1]["input"][-1]["content"] == document


# --- content negotiation ---------------------------------------------------------------------------------

ACCEPT = [
    ("text/event-stream", True),
    ("TEXT/Event-Stream", True),
    ("text/event-stream; charset=utf-8", True),
    ("text/event-stream;q=0", False),
    ("text/event-stream; Q=0.0", False),
    ("application/json, text/event-stream;q=0.5", False),
    ("text/event-stream, application/json;q=0.9", True),
    ("application/json;q=0, text/event-stream;q=0.1", True),
    ("text/event-stream;q=0.5, */*;q=0.5", True),
    ("*/*", False),
    ("text/*", False),
    ("application/json", False),
    ("", False),
    ("text/event-stream;q=abc", False),
]


@pytest.mark.parametrize(("accept", "streams"), ACCEPT)
async def test_accept_is_negotiated_per_rfc_9110(http: httpx2.AsyncClient, accept: str, streams: bool):
    session = await create(http)
    response = await say(http, session, "hi", headers={"accept": accept})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream" if streams else "application/json")


@given(st.lists(st.sampled_from(["text/event-stream", "application/json", "*/*", "text/*", "a/b"]), max_size=4))
def test_a_zero_weight_for_event_stream_never_streams(others: list[str]):
    header = ", ".join([*others, "text/event-stream;q=0"])
    if "text/event-stream" not in others:
        assert wants_event_stream(header) is False


# --- upstream statuses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "answer"), [(408, 504), (404, 502)])
async def test_model_408_and_404_are_not_blamed_on_the_client(
    http: httpx2.AsyncClient, model: EchoModel, status: int, answer: int
):
    session = await create(http)
    model.fail_next(status)
    problem = assert_problem(await say(http, session, "hi"), answer)
    if status == 404:
        assert "AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME" in problem["detail"]
    assert (await http.get(f"/agents/general/sessions/{session['session_id']}")).json()["turns"] == 0


async def test_a_huge_model_retry_after_is_clamped(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    model.fail_next(429, retry_after=2_300_097_105)
    response = await say(http, session, "hi")
    assert_problem(response, 429)
    assert int(response.headers["retry-after"]) == 300


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "-5"}, 0.0),
        ({"retry-after": "Fri, 31 Dec 2099 23:59:59 GMT"}, RETRY_AFTER_MAX_SECONDS),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"retry-after-ms": "x", "retry-after": "3"}, 3.0),
        ({}, None),
    ],
)
def test_retry_after_is_parsed_and_clamped(headers: dict[str, str], seconds: float | None):
    assert _retry_after(headers) == seconds
