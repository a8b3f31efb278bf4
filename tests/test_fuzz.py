"""Schemathesis fuzzes the API from its own OpenAPI document, against the dev server on Azurite and the echo model.

Every operation gets a bounded number of generated requests (Schemathesis's examples, coverage and fuzzing phases:
valid and invalid input), each checked by all of its checks: no 5xx, a documented status, content type and
headers, a body matching the documented schema, schema-valid input accepted and invalid input refused, and methods
the document leaves out answered 405 with a matching `Allow`. The stateful run follows the document's links
(create -> get, history, PATCH, turn, fork, rewind, delete) with the same checks on every step.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx2
import hypothesis
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from service.agents import AGENTS
from service.app import create_app
from service.http.handlers import HANDLER_METHODS
from service.http.openapi import openapi_document
from service.settings import AppSettings

from .conftest import AppServers, FunctionAppServer
from .test_auth_http import PLATFORM, as_platform

MAX_EXAMPLES = 8
"""Generated requests per operation and phase, and stateful scenarios: bounded so the suite stays fast."""
LIMITS = AppSettings.from_env({}).limits  # the fuzzed app's: its settings leave the limits at their defaults
DOCUMENT = openapi_document(create_app().http_routes(), HANDLER_METHODS, sorted(AGENTS), LIMITS)
"""The document the app serves (test_the_fuzzed_document_is_the_served_one), built here so pytest can collect
one test per operation before any server runs."""
NEGATIVE_DEFAULTS: list[int | str] = [400, 401, 403, 404, 405, 406, 409, 415, 422, 428, 429, "5xx"]
"""Schemathesis's statuses for refused invalid input (5xx still fails its server-error check); the service adds
413 (over a size limit, e.g. more messages than AGENT_MAX_MESSAGES_PER_TURN)."""
OPAQUE_CURSOR = {
    "include-operation-id": ["listSessions", "getHistory"],
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", 400, 404]}},
}
"""A cursor is a string only this API makes (`next_cursor`): any other string is refused with 400, which a schema
cannot express. Everything else about these operations is checked as usual."""
TURNS = {
    "include-operation-id": ["runTurn"],
    "phases": {"coverage": {"enabled": False}},
    "generation": {"max-examples": 3 * MAX_EXAMPLES},
}
"""A turn's body has the most to combine (messages, attachments, options, approvals): Schemathesis's coverage
phase makes about 400 requests of it and most of the run's time, so turns get three times the generated
examples instead."""
CONFIG = {
    "seed": 14,
    "output": {"sanitization": {"enabled": False}},
    "generation": {"max-examples": MAX_EXAMPLES, "codec": "utf-8", "database": "none"},
    "checks": {"negative_data_rejection": {"expected-statuses": [*NEGATIVE_DEFAULTS, 413]}},
    "operations": [OPAQUE_CURSOR, TURNS],
}
"""`seed` and no example database: the same requests every run. `codec`: strings UTF-8 can carry (a lone
surrogate such as \\ud800 is refused with 400: storage and the model could not carry it)."""
schema = schemathesis.openapi.from_dict(DOCUMENT, config=SchemathesisConfig.from_dict(CONFIG))


@schema.hook
def filter_body(context: Any, body: Any) -> bool:
    """No two decisions on one approval request: the document says so in words (JSON Schema cannot), and the
    service refuses such a body with 400, so the generator leaves them out."""
    approvals = body.get("approvals") if isinstance(body, dict) else None
    if not isinstance(approvals, list):
        return True
    ids = [repr(item.get("id")) for item in approvals if isinstance(item, dict)]
    return len(ids) == len(set(ids))


@pytest.fixture(scope="module")
def fuzzed_app(app_servers: AppServers) -> Iterator[FunctionAppServer]:
    """An app of its own for the fuzzer (its own table), so its sessions stay out of other tests; callers are
    principals (App Service authentication's headers), so each stateful scenario starts with no sessions."""
    table = "fuzz" + app_servers.env["AGENT_SESSIONS_TABLE"]
    with app_servers.serve(AGENT_SESSIONS_TABLE=table, **PLATFORM) as server:
        yield server


def test_the_fuzzed_document_is_the_served_one(fuzzed_app: FunctionAppServer) -> None:
    assert httpx2.get(f"{fuzzed_app.base_url}/api/openapi.json").json() == DOCUMENT


@schema.parametrize()
def test_every_operation(case: Any, fuzzed_app: FunctionAppServer) -> None:
    case.call_and_validate(base_url=f"{fuzzed_app.base_url}/api", headers=as_platform("fuzzer"))


LIFECYCLE = [
    "createSession",
    "runTurn",
    "getHistory",
    "getSession",
    "updateSession",
    "forkSession",
    "rewindSession",
    "deleteSession",
]
"""A session's operations: created, then reached along the links with the ids the replies hold."""


def test_stateful_links(fuzzed_app: FunctionAppServer) -> None:
    """Sequences along the links, all checks on each step; counted from the outside: sessions were created and
    then read, changed or deleted through the ids the links carried."""
    base_url = f"{fuzzed_app.base_url}/api"
    steps: list[str] = []

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # A principal of its own: the scenario's answers depend on its own steps only (Hypothesis needs
            # the same draws to meet the same answers), not on what earlier scenarios left behind.
            self.headers = as_platform(f"scenario-{uuid.uuid4()}")

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": base_url, "headers": self.headers}

        def after_call(self, response: Any, case: Any) -> None:
            steps.append(f"{case.operation.definition.raw.get('operationId')} {response.status_code}")

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=2 * MAX_EXAMPLES,
            stateful_step_count=6,
            deadline=None,
            database=None,
        )
    )
    assert "createSession 201" in steps
    linked = {"getSession 200", "getHistory 200", "updateSession 200", "deleteSession 204"}
    assert linked & set(steps), steps
