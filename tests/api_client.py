"""Talking to the function app over HTTP in tests: sessions, turns, SSE, history, problem checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from .storage_proxy import StorageProxy

PROBLEM = "application/problem+json"


@pytest.fixture
def clean_proxy(storage_proxy: StorageProxy) -> Iterator[StorageProxy]:
    """The storage proxy with no fault left over for the next test (a request may not consume each one)."""
    storage_proxy.clear()
    yield storage_proxy
    storage_proxy.clear()


async def create(http: httpx2.AsyncClient, agent: str = "general", **body: Any) -> dict[str, Any]:
    response = await http.post(f"/agents/{agent}/sessions", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def say_raw(http: httpx2.AsyncClient, session: dict[str, Any], body: Any, **kw: Any) -> httpx2.Response:
    return await http.post(f"/agents/{session['agent']}/sessions/{session['session_id']}/messages", json=body, **kw)


async def say(http: httpx2.AsyncClient, session: dict[str, Any], text: str, **kw: Any) -> httpx2.Response:
    return await say_raw(http, session, {"message": text}, **kw)


def assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


async def sse_events(response: httpx2.Response) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    event = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            events.append((event, json.loads(line[6:])))
    return events


async def history(http: httpx2.AsyncClient, session: dict[str, Any]) -> list[dict[str, Any]]:
    url = f"/agents/{session['agent']}/sessions/{session['session_id']}/messages"
    messages: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = await http.get(url, params={"limit": 200, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        messages += page["messages"]
        cursor = page["next_cursor"]
        if cursor is None:
            return messages


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return ["".join(c.get("text", "") for c in m.get("contents", [])) for m in messages]
