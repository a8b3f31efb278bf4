"""Who the caller is, through the real function app on the dev server: each mode, the statuses, and
service conversations bound to their owner (the take-over of issue 11 refused)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from starlette.requests import Request

from agent_core.openai import OpenAIResponsesClient
from devtools.echo_model import EchoModel
from service.ownership import owner_hash

from .api_client import assert_problem as problem
from .oidc_issuer import OidcIssuer
from .test_auth import AUDIENCE, platform_headers

SESSIONS = "/agents/general/sessions"


def jwt_settings(issuer: OidcIssuer) -> dict[str, str]:
    return {"AGENT_AUTH_MODE": "jwt", "AGENT_AUTH_ISSUER": issuer.issuer, "AGENT_AUTH_AUDIENCE": AUDIENCE}


def bearer(issuer: OidcIssuer, oid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.token(AUDIENCE, oid=oid)}"}


def as_platform(oid: str) -> dict[str, str]:
    return {name.upper(): value for name, value in platform_headers(oid).items()}


PLATFORM = {"AGENT_AUTH_MODE": "platform", "WEBSITE_AUTH_ENABLED": "true"}


# --- none ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform_auth", ["", "true"])
async def test_spoofed_principal_headers_are_ignored_in_none_mode(http: httpx2.AsyncClient, configure, platform_auth):
    """Locally the mode defaults to none: whatever headers a client sends, there is one shared owner."""
    configure(WEBSITE_AUTH_ENABLED=platform_auth)
    created = await http.post(SESSIONS, json={}, headers=as_platform("alice"))
    assert created.status_code == 201, created.text
    url = f"{SESSIONS}/{created.json()['session_id']}"
    for headers in ({}, as_platform("mallory"), {"X-MS-CLIENT-PRINCIPAL-ID": "mallory"}):
        assert (await http.get(url, headers=headers)).status_code == 200


# --- platform ------------------------------------------------------------------------------------------


async def test_platform_mode_without_app_service_authentication_trusts_no_header(http: httpx2.AsyncClient, configure):
    configure(AGENT_AUTH_MODE="platform")  # WEBSITE_AUTH_ENABLED unset: nothing in front of the app set them
    body = problem(await http.post(SESSIONS, json={}, headers=as_platform("alice")), 503)
    assert "WEBSITE_AUTH_ENABLED" in body["detail"]


async def test_platform_mode_with_app_service_authentication_keeps_principals_apart(
    http: httpx2.AsyncClient, configure
):
    configure(**PLATFORM)
    created = await http.post(SESSIONS, json={"session_id": "shared-name"}, headers=as_platform("alice"))
    assert created.status_code == 201, created.text
    url = f"{SESSIONS}/shared-name"
    mallory = as_platform("mallory")
    problem(await http.get(url, headers=mallory), 404)
    problem(await http.post(f"{url}/messages", json={"message": "hi"}, headers=mallory), 404)
    problem(await http.delete(url, headers=mallory), 404)
    assert (await http.get(url, headers=as_platform("alice"))).status_code == 200
    # the same id is free for another principal: nothing leaks across owners
    assert (await http.post(SESSIONS, json={"session_id": "shared-name"}, headers=mallory)).status_code == 201


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-MS-CLIENT-PRINCIPAL-ID": "alice"},  # the id alone: the encoded principal must back it
        {**as_platform("alice"), "X-MS-CLIENT-PRINCIPAL-ID": "mallory"},  # an id the claims do not hold
    ],
    ids=["none", "id only", "inconsistent"],
)
async def test_platform_mode_refuses_missing_or_inconsistent_principals(http: httpx2.AsyncClient, configure, headers):
    configure(**PLATFORM)
    response = await http.post(SESSIONS, json={}, headers=headers)
    problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="agents"')


# --- jwt -----------------------------------------------------------------------------------------------


async def test_jwt_mode_through_the_app(http: httpx2.AsyncClient, configure, issuer: OidcIssuer):
    configure(**jwt_settings(issuer))
    created = await http.post(SESSIONS, json={}, headers=bearer(issuer, "alice"))
    assert created.status_code == 201, created.text
    url = f"{SESSIONS}/{created.json()['session_id']}"
    reply = await http.post(f"{url}/messages", json={"message": "hello"}, headers=bearer(issuer, "alice"))
    assert reply.status_code == 200, reply.text
    problem(await http.get(url, headers=bearer(issuer, "mallory")), 404)

    missing = await http.get(url)
    problem(missing, 401)
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="agents"'
    expired = await http.get(url, headers={"Authorization": f"Bearer {issuer.token(AUDIENCE, exp=1, nbf=0)}"})
    assert "expired" in problem(expired, 401)["detail"]
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    # the principal headers mean nothing in jwt mode
    problem(await http.get(url, headers=as_platform("alice")), 401)


async def test_an_unreachable_issuer_is_503_with_retry_after(http: httpx2.AsyncClient, configure, issuer: OidcIssuer):
    issuer.fail_status = 500
    configure(**jwt_settings(issuer))
    response = await http.post(SESSIONS, json={}, headers=bearer(issuer, "alice"))
    problem(response, 503)
    assert int(response.headers["Retry-After"]) >= 1


# --- Azure ---------------------------------------------------------------------------------------------


async def test_in_azure_an_unset_mode_is_503_naming_the_setting(http: httpx2.AsyncClient, configure):
    configure(WEBSITE_INSTANCE_ID="instance-1")
    for response in (
        await http.post(SESSIONS, json={}),
        await http.get(f"{SESSIONS}/some-id"),
        await http.post(f"{SESSIONS}/some-id/messages", json={"message": "hi"}),
    ):
        assert "AGENT_AUTH_MODE" in problem(response, 503)["detail"]
    assert (await http.get("/health")).status_code == 200  # the probe does not resolve a caller
    configure(WEBSITE_INSTANCE_ID="instance-1", AGENT_AUTH_MODE="none")  # chosen explicitly
    assert (await http.post(SESSIONS, json={})).status_code == 201


async def test_health_says_the_same_in_every_mode(http: httpx2.AsyncClient, configure, issuer: OidcIssuer):
    bodies = []
    for settings in ({}, PLATFORM, jwt_settings(issuer), {"WEBSITE_INSTANCE_ID": "instance-1"}):
        configure(**settings)
        response = await http.get("/health")
        assert response.status_code == 200
        bodies.append({k: v for k, v in response.json().items() if k != "time"})
    assert all(body == bodies[0] for body in bodies)
    text = str(bodies[0]).lower()
    for revealing in ("auth", "jwt", "platform", issuer.issuer):
        assert revealing not in text


# --- conversations bound to their owner ----------------------------------------------------------------


async def _alice_tells_her_pin(http: httpx2.AsyncClient, alice: dict[str, str]) -> tuple[str, str]:
    created = await http.post(SESSIONS, json={"history": "service"}, headers=alice)
    assert created.status_code == 201, created.text
    session_id = created.json()["session_id"]
    reply = await http.post(f"{SESSIONS}/{session_id}/messages", json={"message": "my PIN is 4242"}, headers=alice)
    assert reply.status_code == 200, reply.text
    return session_id, reply.json()["service_session_id"]


@pytest.mark.parametrize("mode", ["platform", "jwt"])
async def test_another_principal_cannot_attach_a_conversation(
    http: httpx2.AsyncClient, configure, issuer: OidcIssuer, model: EchoModel, client: OpenAIResponsesClient, mode
):
    if mode == "platform":
        configure(**PLATFORM)
        alice, mallory = as_platform("alice"), as_platform("mallory")
    else:
        configure(**jwt_settings(issuer))
        alice, mallory = bearer(issuer, "alice"), bearer(issuer, "mallory")
    session_id, conversation_id = await _alice_tells_her_pin(http, alice)
    metadata = await client.conversation_metadata(conversation_id)
    assert metadata is not None
    assert metadata["session_id"] == session_id
    assert len(metadata["owner"]) == 64  # a hash, not the owner
    assert "alice" not in metadata["owner"]
    model_calls = len(model.responses_requests())

    attach = {"session_id": "mallorys", "service_session_id": conversation_id}
    body = problem(await http.post(SESSIONS, json=attach, headers=mallory), 404)
    assert body["detail"] == "no such conversation"
    # nothing was written and nothing reached Alice's conversation
    problem(await http.get(f"{SESSIONS}/mallorys", headers=mallory), 404)
    assert len(model.responses_requests()) == model_calls
    # Alice herself may continue her conversation in a new session
    mine = await http.post(SESSIONS, json={"service_session_id": conversation_id}, headers=alice)
    assert mine.status_code == 201, mine.text
    # a conversation id that does not exist is the same 404
    absent = {"service_session_id": "conv_doesnotexist"}
    assert problem(await http.post(SESSIONS, json=absent, headers=mallory), 404)["detail"] == body["detail"]


async def test_created_conversations_carry_the_owner_hash(http: httpx2.AsyncClient, configure, client):
    configure(**PLATFORM)
    session_id, conversation_id = await _alice_tells_her_pin(http, as_platform("alice"))
    metadata = await client.conversation_metadata(conversation_id)
    assert metadata == {"session_id": session_id, "agent": "general", "owner": owner_hash("platform|aad|alice")}


async def test_conversations_the_app_did_not_create_need_the_setting(http: httpx2.AsyncClient, configure, client):
    foreign = await client.create_conversation(metadata={"made": "elsewhere"})
    body = problem(await http.post(SESSIONS, json={"service_session_id": foreign}), 403)
    assert "AGENT_ATTACH_UNBOUND_CONVERSATIONS" in body["detail"]
    configure(AGENT_ATTACH_UNBOUND_CONVERSATIONS="true")  # the caller vouches for the id
    attached = await http.post(SESSIONS, json={"service_session_id": foreign})
    assert attached.status_code == 201, attached.text
    assert attached.json()["service_session_id"] == foreign


async def test_health_of_a_misconfigured_app_names_no_setting(monkeypatch):
    """The anonymous probe says only that the app is not configured; the key-protected routes say what is missing."""
    from service.agents import AGENTS
    from service.http import HttpApi

    for name in ("SessionStorage", "SessionStorage__tableServiceUri"):
        monkeypatch.delenv(name, raising=False)
    api = HttpApi(AGENTS)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    def request(method: str, path: str, **params: str) -> Request:
        scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
        return Request({**scope, "path_params": params}, receive)

    health = await api.health(request("GET", "/api/health"))
    assert health.status_code == 503
    assert json.loads(bytes(health.body))["detail"] == "the app is not configured; see its logs"
    user = await api.sessions(request("POST", "/api/agents/general/sessions", agent="general"))
    assert user.status_code == 503
    assert "SessionStorage" in json.loads(bytes(user.body))["detail"]
