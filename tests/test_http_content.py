"""Images and files through the HTTP API: `messages[].attachments` reach the model as input parts and are kept in
the session's history; malformed attachments are refused before any work."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from devtools.echo_model import EchoModel

from .api_client import assert_problem, create, say_raw

PNG = "data:image/png;base64,iVBORw0KGgo="


@pytest.mark.parametrize(
    ("attachment", "part"),
    [
        ({"uri": PNG}, {"type": "input_image", "image_url": PNG, "detail": "auto"}),
        (
            {"uri": "https://example.com/cat.jpg", "media_type": "image/jpeg"},
            {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "auto"},
        ),
        (
            {"uri": "data:application/pdf;base64,JVBERi0=", "name": "spec.pdf"},
            {"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0=", "filename": "spec.pdf"},
        ),
        (
            {"uri": "https://example.com/spec.pdf", "media_type": "application/pdf"},
            {"type": "input_file", "file_url": "https://example.com/spec.pdf"},
        ),
    ],
    ids=["image-data-uri", "image-url", "file-data-uri", "file-url"],
)
async def test_attachments_reach_the_model_and_the_history(
    http: httpx2.AsyncClient, model: EchoModel, attachment: dict[str, Any], part: dict[str, Any]
):
    session = await create(http)
    body = {"messages": [{"text": "What is this?", "attachments": [attachment]}]}
    response = await say_raw(http, session, body)
    assert response.status_code == 200, response.text
    [item] = model.responses_requests()[-1]["input"]
    assert item["content"] == [{"type": "input_text", "text": "What is this?"}, part]
    page = (await http.get(f"/agents/general/sessions/{session['session_id']}/messages")).json()
    stored = page["messages"][0]["contents"]
    assert [c["type"] for c in stored] == ["text", "data" if attachment["uri"].startswith("data:") else "uri"]
    assert stored[1]["uri"] == attachment["uri"]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"text": "x", "attachments": [{"uri": "http://example.com/a.png", "media_type": "image/png"}]}, "uri"),
        ({"text": "x", "attachments": [{"uri": "https://example.com/a.png"}]}, "media_type"),
        ({"text": "x", "attachments": [{"uri": "data:image/png,notbase64"}]}, "uri"),
        ({"text": "x", "attachments": [{"uri": "data:image/png;base64,iVBORw0KGgo"}]}, "uri"),
        ({"text": "x", "attachments": [{"uri": "data:image/png;base64,A==="}]}, "uri"),
        ({"text": "x", "attachments": [{"uri": "data:image/png;base64,"}]}, "uri"),
        ({"role": "assistant", "text": "x", "attachments": [{"uri": PNG}]}, "only user messages"),
        ({"text": "x", "attachments": [{"uri": PNG, "extra": 1}]}, "extra"),
    ],
    ids=[
        "plain-http",
        "url-without-media-type",
        "data-uri-not-base64",
        "base64-unpadded",
        "base64-bad-padding",
        "base64-empty",
        "assistant-attachment",
        "unknown-field",
    ],
)
async def test_malformed_attachments_are_refused_before_any_model_call(
    http: httpx2.AsyncClient, model: EchoModel, message: dict[str, Any], error: str
):
    session = await create(http)
    problem = assert_problem(await say_raw(http, session, {"messages": [message]}), 400)
    assert error in str(problem)
    assert model.responses_requests() == []
