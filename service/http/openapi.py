"""The OpenAPI 3.1 document (GET /api/openapi.json), generated from the app's route table and the pydantic models.

Paths come from the app's HTTP functions (service/app.py), never from a list of our own: each route template
is looked up in operations.ROUTES, and a route without an entry there, or a handler whose `@handler` methods
differ from the documented operations, raises `UndocumentedRouteError` (the tests build the document from the
app, so they fail). Request bodies and queries are bodies.py's models, replies and problems replies.py's, all
as JSON Schema in `components.schemas` (pydantic's, validation mode: what a request may hold, and exactly the
fields a reply has). A streamed turn is `text/event-stream`, its schema one event (name and data schema).

To document a new route, see operations.py: one `RouteDoc` under the route's template.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ..settings import Limits
from ..storage import SESSION_ID_PATTERN
from .bodies import IDEMPOTENCY_KEY
from .operations import ROUTES, Answer, Operation
from .replies import SSE_EVENTS, Problem

OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.1.0"
REF = "#/components/schemas/{model}"
WIRE_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}

PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "session_id": {
        "description": "The session's id: 1-128 letters, digits, `-` and `_`, starting with a letter or digit",
        "schema": {"type": "string", "pattern": SESSION_ID_PATTERN.pattern},
    },
}
REQUEST_HEADERS: dict[str, dict[str, Any]] = {
    "Idempotency-Key": {
        "description": "Makes a retry of this turn safe: the same key and request get the stored reply back",
        "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
    },
    "Accept": {
        "description": "`text/event-stream` (weighing at least as much as application/json) streams the turn",
        "schema": {"type": "string"},
    },
}
RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "Location": {"description": "The new session's URL", "schema": {"type": "string"}},
    "Retry-After": {
        "description": "Whole seconds to wait before retrying",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "WWW-Authenticate": {"description": "The challenge for the auth mode", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` on a stored reply replayed for a repeated Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
SECURITY_SCHEMES = {
    "functionKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-functions-key",
        "description": "In Azure: a function key (or `?code=`); the dev server needs none",
    },
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "AGENT_AUTH_MODE=jwt: a token of the configured issuer and audience",
    },
}
CALLER_SECURITY: list[dict[str, list[str]]] = [{}, {"functionKey": []}, {"bearerAuth": []}]
"""The caller's credentials: none locally (AGENT_AUTH_MODE=none), else a function key and/or a bearer token
(platform mode: App Service authentication in front, which the platform checks before the app)."""
DESCRIPTION = (
    "Stateful agents served from Azure Functions: sessions, turns (JSON or Server-Sent Events), history. "
    "Every error is application/problem+json (`Problem`). A method a path does not list answers 405 with "
    "`Allow`. See the README's HTTP API section for the semantics (leases, retries, limits, auth modes)."
)


class UndocumentedRouteError(RuntimeError):
    """A route of the app, or a method of its handler, has no entry in operations.ROUTES (or the reverse)."""


def openapi_document(
    routes: Sequence[str], handler_methods: Mapping[str, Sequence[str]], agents: Sequence[str], limits: Limits
) -> dict[str, Any]:
    """The document for the app's HTTP `routes` (templates without the /api prefix), whose handlers accept
    `handler_methods` (handler name -> methods), serving `agents` (the `{agent}` parameter's values), under the
    app's size `limits` (part of the request schemas: a request the document allows is not refused for size)."""
    missing = [route for route in routes if route not in ROUTES]
    if missing:
        raise UndocumentedRouteError(f"routes without an entry in service/http/operations.py ROUTES: {missing}")
    schemas = _component_schemas(routes)
    _apply_limits(schemas, limits)
    paths: dict[str, Any] = {}
    for route in routes:
        doc = ROUTES[route]
        documented = sorted(op.method for op in doc.operations)
        accepted = sorted(handler_methods.get(doc.handler, ()))
        if documented != accepted:
            raise UndocumentedRouteError(
                f"route {route!r}: handler {doc.handler!r} accepts {accepted}, operations.py documents {documented}"
            )
        paths[f"/{route}"] = {op.method.lower(): _operation(route, op, agents) for op in doc.operations}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "agent-core-functions", "version": API_VERSION, "description": DESCRIPTION},
        "servers": [{"url": "/api"}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


def _models(routes: Sequence[str]) -> list[type[BaseModel]]:
    models: dict[str, type[BaseModel]] = {"Problem": Problem}
    for route in routes:
        for op in ROUTES[route].operations:
            for model in (op.body, *(answer.model for answer in op.answers.values())):  # queries: parameters
                if model is not None:
                    models[model.__name__] = model
    for model in SSE_EVENTS.values():
        models[model.__name__] = model
    return list(models.values())


def _component_schemas(routes: Sequence[str]) -> dict[str, Any]:
    """Every model's JSON Schema (and the models they use), referenced as #/components/schemas/<name>."""
    mode: JsonSchemaMode = "validation"
    _, top = models_json_schema([(model, mode) for model in _models(routes)], ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    return schemas


def _apply_limits(schemas: dict[str, Any], limits: Limits) -> None:
    """The configured limits as JSON Schema keywords on the fields they bound (the models cannot know them)."""
    bounds = {
        ("TurnBody", "message"): {"maxLength": limits.max_message_chars},
        ("TurnBody", "messages"): {"maxItems": limits.max_messages_per_turn},
        ("InputMessage", "text"): {"maxLength": limits.max_message_chars},
        ("TurnOptions", "max_output_tokens"): {"maximum": limits.max_output_tokens},
    }
    for (model, name), keywords in bounds.items():
        if model in schemas:
            schemas[model]["properties"][name].update(keywords)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _operation(route: str, op: Operation, agents: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    if op.description:
        out["description"] = op.description
    parameters = [_path_parameter(name, agents) for name in _template_names(route)]
    if op.query is not None:
        parameters += _query_parameters(op.query)
    parameters += [{"name": name, "in": "header", "required": False, **REQUEST_HEADERS[name]} for name in op.headers]
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required, "content": {"application/json": {"schema": _ref(op.body)}}}
    out["responses"] = {str(status): _response(answer, route) for status, answer in sorted(op.answers.items())}
    out["security"] = [] if op.anonymous else CALLER_SECURITY
    return out


def _template_names(route: str) -> list[str]:
    return [part[1:-1] for part in route.split("/") if part.startswith("{") and part.endswith("}")]


def _path_parameter(name: str, agents: Sequence[str]) -> dict[str, Any]:
    if name == "agent":
        spec: dict[str, Any] = {"description": "A served agent", "schema": {"type": "string", "enum": list(agents)}}
    else:
        spec = PATH_PARAMETERS[name]
    return {"name": name, "in": "path", "required": True, **spec}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One parameter per field of a query model, with the field's schema (the wire form: strings decode)."""
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        if "default" in prop and not isinstance(prop["default"], WIRE_TYPES.get(prop.get("type", ""), object)):
            prop = {k: v for k, v in prop.items() if k != "default"}  # a decoded default (cursor 0, None): absent
        parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if "description" in prop:
            parameter["description"] = prop["description"]
        parameters.append(parameter)
    return parameters


def _response(answer: Answer, route: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description}
    if answer.headers:
        out["headers"] = {name: RESPONSE_HEADERS[name] for name in answer.headers}
    content: dict[str, Any] = {}
    if answer.model is not None:
        content[answer.model.media_type] = {"schema": _ref(answer.model)}
    elif answer.media_type is not None:
        content[answer.media_type] = {
            "schema": {"type": "object"} if "json" in answer.media_type else {"type": "string"}
        }
    if answer.stream:
        content["text/event-stream"] = _event_stream()
    if content:
        out["content"] = content
    if answer.links:
        out["links"] = {name: _link(operation_id, route) for name, operation_id in answer.links.items()}
    return out


def _event_stream() -> dict[str, Any]:
    """One event of the stream, as OpenAPI 3.1 describes a sequential media type's items (and Schemathesis reads
    them): `{"event": <name>, "data": <string>}`, the data's JSON under `contentSchema`."""
    events = [
        {
            "type": "object",
            "title": f"{name} event",
            "properties": {
                "event": {"const": name},
                "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": _ref(model)},
            },
            "required": ["event", "data"],
        }
        for name, model in SSE_EVENTS.items()
    ]
    return {
        "schema": {
            "description": "Server-Sent Events, each `event: <name>` then `data: <JSON>`: any number of `delta`, "
            "`tool_call`, `tool_result` and `approval_request`, then one `done` (data: the turn's reply) or one "
            "`error` (data: a problem). This schema describes one event.",
            "oneOf": events,
        }
    }


def _link(operation_id: str, route: str) -> dict[str, Any]:
    session = "$request.path.session_id" if "{session_id}" in route else "$response.body#/session_id"
    return {"operationId": operation_id, "parameters": {"agent": "$request.path.agent", "session_id": session}}
