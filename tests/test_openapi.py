"""The OpenAPI document (GET /api/openapi.json): a valid OpenAPI 3.1 document of every route the app registers."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx2
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from service.app import ALL_METHODS, create_app
from service.http.handlers import HANDLER_METHODS
from service.http.openapi import UndocumentedRouteError, openapi_document
from service.http.operations import ROUTES
from service.settings import AppSettings

from .api_client import assert_problem, create, sse_events
from .conftest import FunctionAppServer
from .test_auth_http import PLATFORM

METHODS = [str(method.value) for method in ALL_METHODS]
LIMITS = AppSettings.from_env({}).limits


@pytest.fixture
async def document(http: httpx2.AsyncClient) -> dict[str, Any]:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def schema_validator(document: dict[str, Any], ref: str) -> Draft202012Validator:
    """A validator for one schema of the document (its $refs resolve against the document)."""
    return Draft202012Validator({"$ref": ref, "components": document["components"]})


async def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]):
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema (openapi-spec-validator)
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": "/api"}]


async def test_every_route_of_the_app_is_documented(document: dict[str, Any], function_app_server: FunctionAppServer):
    routes = function_app_server.app.http_routes()
    assert {"agents/{agent}/sessions", "openapi.json"} <= set(routes)
    assert sorted(document["paths"]) == sorted(f"/{route}" for route in routes)
    for route in routes:
        documented = {method.upper() for method in document["paths"][f"/{route}"]}
        assert documented == set(HANDLER_METHODS[ROUTES[route].handler]), route


@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_methods_the_document_leaves_out_answer_405(http: httpx2.AsyncClient, document, route: str):
    """Checked over HTTP, so the route -> handler mapping in operations.py is the app's own."""
    path = "/" + route.replace("{agent}", "general").replace("{session_id}", "no-such-session")
    documented = {method.upper() for method in document["paths"][f"/{route}"]}
    for method in METHODS:
        response = await http.request(method, path, json={} if method in ("POST", "PUT", "PATCH") else None)
        if method in documented:
            assert response.status_code != 405, (method, route)
            continue
        if method == "HEAD":  # the same answer without its body
            assert response.status_code == 405
        else:
            assert sorted(assert_problem(response, 405)) == ["detail", "status", "title", "type"]
        assert set(response.headers["allow"].split(", ")) == documented


def test_a_route_without_an_entry_makes_the_document_fail():
    app = create_app()
    with pytest.raises(UndocumentedRouteError, match=re.escape("agents/{agent}/nowhere")):
        openapi_document([*app.http_routes(), "agents/{agent}/nowhere"], HANDLER_METHODS, ["a"], LIMITS)


def test_a_handler_method_without_an_operation_makes_the_document_fail():
    methods = {**HANDLER_METHODS, "session": (*HANDLER_METHODS["session"], "PUT")}
    with pytest.raises(UndocumentedRouteError, match="'session' accepts"):
        openapi_document(create_app().http_routes(), methods, ["a"], LIMITS)


async def test_the_agent_parameter_lists_the_served_agents(document: dict[str, Any]):
    [agent] = [p for p in document["paths"]["/agents/{agent}/sessions"]["get"]["parameters"] if p["name"] == "agent"]
    assert agent["schema"]["enum"] == ["general", "shopping"]


async def test_problems_match_their_schema(http: httpx2.AsyncClient, document: dict[str, Any]):
    validator = schema_validator(document, "#/components/schemas/Problem")
    replies = [
        await http.post("/agents/general/sessions", json={"history": "nope", "extra": 1}),  # 400 with errors
        await http.get("/agents/nobody/sessions"),  # 404
        await http.post("/agents/general/sessions", content=b"{}", headers={"content-type": "text/plain"}),  # 415
    ]
    for reply, status in zip(replies, (400, 404, 415), strict=True):
        body = assert_problem(reply, status)
        validator.validate(body)
        assert (
            str(status)
            in document["paths"]["/agents/{agent}/sessions"]["post" if status != 404 else "get"]["responses"]
        )
    assert replies[0].json()["errors"]


async def test_streamed_events_match_the_documented_schemas(http: httpx2.AsyncClient, document: dict[str, Any]):
    """Each event a streamed turn sends (tool call, result, deltas, done; an approval request) is one of the
    documented events, and its data validates against that event's contentSchema."""
    reply = document["paths"]["/agents/{agent}/sessions/{session_id}/messages"]["post"]["responses"]["200"]
    event_schemas = reply["content"]["text/event-stream"]["schema"]["oneOf"]
    by_name = {e["properties"]["event"]["const"]: e for e in event_schemas}
    assert set(by_name) == {"delta", "tool_call", "tool_result", "approval_request", "done", "error"}
    session = await create(http, agent="shopping")
    url = f"/agents/shopping/sessions/{session['session_id']}/messages"
    seen: set[str] = set()
    for message in ("search_products(boots)", "place_order(B-7)"):
        async with http.stream("POST", url, json={"message": message, "stream": True}) as response:
            assert response.status_code == 200
            events = await sse_events(response)
        for name, data in events:
            Draft202012Validator({**by_name[name], "components": document["components"]}).validate(
                {"event": name, "data": json.dumps(data)}
            )
            content_schema = by_name[name]["properties"]["data"]["contentSchema"]["$ref"]
            schema_validator(document, content_schema).validate(data)
            seen.add(name)
    assert {"delta", "tool_call", "tool_result", "approval_request", "done"} <= seen


async def test_the_document_is_served_without_credentials(http: httpx2.AsyncClient, configure, document):
    """Like /api/health it needs no key or token: it says what the API is, nothing about anyone's data."""
    configure(**PLATFORM)
    assert_problem(await http.get("/agents"), 401)
    assert (await http.get("/openapi.json")).json() == document
    securities = {route: op["security"] for route, item in document["paths"].items() for op in item.values()}
    assert securities["/openapi.json"] == securities["/health"] == securities["/playground"] == []
    assert all(security for route, security in securities.items() if route.startswith("/agents"))


TURN = "/agents/{agent}/sessions/{session_id}/messages"
DATA_URI = {"uri": "data:a/b;base64,"}
AGREEMENT = [  # (operation path, method, body, what the document says): the cases the fuzzer found apart
    ("/agents/{agent}/sessions/{session_id}", "patch", {}, False),
    ("/agents/{agent}/sessions/{session_id}", "patch", {"metadata": None}, False),
    ("/agents/{agent}/sessions/{session_id}", "patch", {"metadata": {}}, True),
    (TURN, "post", {"approvals": []}, False),
    (TURN, "post", {"message": "hi", "messages": [{"text": "hi"}]}, False),
    (TURN, "post", {"message": "\u0085\u3000"}, False),  # only white space (NEL, ideographic space)
    (TURN, "post", {"message": "\x1c"}, True),  # not white space, though Python's str.strip() says so
    (TURN, "post", {"message": "hi", "options": {"max_output_tokens": 5.0}}, True),  # 5.0 is the integer 5
    (TURN, "post", {"message": "hi", "options": {"max_output_tokens": 5.5}}, False),
    (TURN, "post", {"message": "hi", "options": {"max_output_tokens": 10**9}}, False),  # over the limit
    (TURN, "post", {"messages": [{"text": " ", "role": "assistant"}]}, False),
    (TURN, "post", {"messages": [{"attachments": [{"uri": "https://x\u0085y", "media_type": "image/png"}]}]}, False),
    (TURN, "post", {"messages": [{"attachments": [{"uri": "https://example.com/a.png"}]}]}, False),  # no type
    (
        TURN,
        "post",
        {"messages": [{"role": "assistant", "text": "t", "attachments": [{"uri": "data:a/b;base64,"}]}]},
        False,
    ),
    ("/agents/{agent}/sessions", "post", {"history": "local", "service_session_id": "conv_1"}, False),
    ("/agents/{agent}/sessions", "post", {"state": {"approvals": 1}}, False),
    ("/agents/{agent}/sessions/{session_id}/rewind", "post", {"turn": 0.0}, True),
]


@pytest.mark.parametrize(("path", "method", "body", "valid"), AGREEMENT)
async def test_the_document_accepts_exactly_what_the_service_accepts(
    http: httpx2.AsyncClient, document: dict[str, Any], path: str, method: str, body: Any, valid: bool
):
    """Each body the document allows is accepted (2xx), each it refuses gets 400 or 413: no schema-valid request
    refused, no schema-violating one accepted (what Schemathesis checks, kept here as plain cases)."""
    ref = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_validator(document, ref).is_valid(body) == valid
    session = await create(http)
    url = path.replace("{agent}", "general").replace("{session_id}", session["session_id"])
    response = await http.request(method.upper(), url, json=body)
    if valid:
        assert response.status_code < 300, response.text
    else:
        assert_problem(response, 413 if response.status_code == 413 else 400)
