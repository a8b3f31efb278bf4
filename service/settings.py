"""Every setting the deployment reads, as typed, described fields: one source for code, samples, README and infra.

`AppSettings` holds what the function app reads (parsed and validated once per process, on the first request);
`HostSettings` documents what the Functions host and worker read (`%AGENT_SWEEP_SCHEDULE%` in the timer is
resolved by the host, so that setting must be present; no default of ours could stand in for it). Field aliases
are the app settings' names, so `AppSettings()` reads them from the environment as the platform sets them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from agent_core.exceptions import ConfigurationError

_CONFIG = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore", frozen=True)
_HTTP_URL = r"^https?://\S+$"


class _Settings(BaseSettings):
    """Shared parsing: empty values count as unset (as the sample settings leave them), errors name the setting."""

    model_config = _CONFIG

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {name: value for name, value in data.items() if value != ""}
        return data

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Parse `env` (default: the process environment) or raise ConfigurationError naming each bad setting."""
        try:
            if env is None:
                return cls()  # pydantic-settings' environment source
            # `env` as the only source. mypy sees the fields' synthesized __init__, not BaseSettings' own.
            only_env: tuple[tuple[PydanticBaseSettingsSource, ...], dict[str, Any]]
            only_env = ((InitSettingsSource(cls, init_kwargs=dict(env)),), {})
            return cls(_build_sources=only_env)  # type: ignore[call-arg]
        except ValidationError as error:
            problems = "; ".join(_describe(problem) for problem in error.errors())
            raise ConfigurationError(f"invalid settings: {problems}") from None


def _describe(problem: Any) -> str:
    name = ".".join(str(part) for part in problem["loc"]) or "settings"
    if problem["type"] == "missing":
        return f"{name} is required but not set"
    return f"{name}: {problem['msg']}, got {problem['input']!r}"


class AppSettings(_Settings):
    """The function app's configuration. Tests and tools pass an explicit mapping: `AppSettings.from_env({...})`."""

    # Model
    azure_ai_project_endpoint: str | None = Field(
        None,
        alias="AZURE_AI_PROJECT_ENDPOINT",
        pattern=_HTTP_URL,
        description="Azure AI Foundry project endpoint (Entra ID auth).",
    )
    azure_openai_endpoint: str | None = Field(
        None,
        alias="AZURE_OPENAI_ENDPOINT",
        pattern=_HTTP_URL,
        description="Azure OpenAI resource endpoint, when not using a Foundry project.",
    )
    azure_openai_deployment: str | None = Field(
        None, alias="AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME", description="Model deployment for the Responses API."
    )
    azure_openai_api_key: SecretStr | None = Field(
        None, alias="AZURE_OPENAI_API_KEY", description="Key auth instead of Entra ID (avoid in Azure)."
    )
    azure_openai_api_version: str | None = Field(
        None, alias="AZURE_OPENAI_API_VERSION", description="Optional api-version query parameter for the v1 API."
    )
    openai_api_key: SecretStr | None = Field(
        None, alias="OPENAI_API_KEY", description="OpenAI or an OpenAI-compatible server instead of Azure."
    )
    openai_base_url: str | None = Field(
        None,
        alias="OPENAI_BASE_URL",
        pattern=_HTTP_URL,
        description="Base URL of an OpenAI-compatible server (with OPENAI_API_KEY).",
    )
    openai_model: str | None = Field(
        None, alias="OPENAI_RESPONSES_MODEL_ID", description="Model name for OPENAI_API_KEY."
    )
    model_timeout_seconds: float = Field(
        120, alias="AGENT_MODEL_TIMEOUT_SECONDS", gt=0, description="Timeout of one model call."
    )
    model_max_retries: int = Field(
        2,
        alias="AGENT_MODEL_MAX_RETRIES",
        ge=0,
        le=10,
        description="openai SDK retries of a throttled or failed model call.",
    )
    general_instructions: str = Field(
        "You are a helpful assistant. Be concise.",
        alias="AGENT_GENERAL_INSTRUCTIONS",
        min_length=1,
        description="The general agent's prompt.",
    )
    # Storage
    session_storage: str | None = Field(
        None,
        alias="SessionStorage",
        examples=["UseDevelopmentStorage=true"],
        description="Connection string of the sessions' storage account (local/Azurite).",
    )
    session_storage_table_uri: str | None = Field(
        None,
        alias="SessionStorage__tableServiceUri",
        pattern=_HTTP_URL,
        description="Table endpoint, with managed identity, in Azure.",
    )
    session_storage_client_id: str | None = Field(
        None,
        alias="SessionStorage__clientId",
        description="Client id of the user-assigned identity for SessionStorage.",
    )
    azure_client_id: str | None = Field(
        None,
        alias="AZURE_CLIENT_ID",
        description="User-assigned identity DefaultAzureCredential uses (model and storage).",
    )
    sessions_table: str = Field(
        "agentsessions",
        alias="AGENT_SESSIONS_TABLE",
        pattern=r"^[A-Za-z][A-Za-z0-9]{2,62}$",
        description="Table holding sessions, history and the expiry index.",
    )
    # Expiry
    session_ttl_seconds: int = Field(
        86400,
        alias="AGENT_SESSION_TTL_SECONDS",
        ge=1,
        description="Sliding time to live of a session, renewed by every turn.",
    )
    delete_service_conversations: bool = Field(
        False,
        alias="AGENT_DELETE_SERVICE_CONVERSATIONS",
        description="true: the sweep also deletes service conversations.",
    )
    # Turns
    turn_lease_seconds: int = Field(
        630,
        alias="AGENT_TURN_LEASE_SECONDS",
        ge=2,
        le=3600,
        description="How long a turn holds its session; over host.json's functionTimeout (10 min), a turn's bound.",
    )
    if_busy: Literal["reject", "enqueue"] = Field(
        "reject",
        alias="AGENT_IF_BUSY",
        description="A turn meeting a running one: reject (409) or enqueue (wait); a request's if_busy overrides.",
    )
    enqueue_wait_seconds: float = Field(
        30,
        alias="AGENT_ENQUEUE_WAIT_SECONDS",
        ge=0,
        le=600,
        description="Longest an enqueued turn waits for the running one before it gets 409.",
    )
    # Long conversations (README, "Long conversations")
    compaction_token_budget: int = Field(
        90000,
        alias="AGENT_COMPACTION_TOKEN_BUDGET",
        ge=0,
        description="Tokens a served agent sends per model call before it compacts (tool-result stubs, then a "
        "summary); fits a 128k-token window with AGENT_MAX_OUTPUT_TOKENS to spare. 0: no compaction.",
    )
    history_retention_turns: int = Field(
        0,
        alias="AGENT_HISTORY_RETENTION_TURNS",
        ge=0,
        description="0 keeps every turn for the history API; N removes turns older than the last N once they "
        "are out of the window too.",
    )
    service_truncation: Literal["auto", "disabled"] = Field(
        "auto",
        alias="AGENT_SERVICE_TRUNCATION",
        description="`truncation` sent for service-kept sessions (a request's own option wins).",
    )
    # Limits
    max_request_bytes: int = Field(
        1048576, alias="AGENT_MAX_REQUEST_BYTES", ge=1024, description="Largest accepted request body (413 above)."
    )
    max_message_chars: int = Field(
        262144,
        alias="AGENT_MAX_MESSAGE_CHARS",
        ge=1,
        description="Longest accepted message text (413 above); fits the request limit at 4 bytes a character.",
    )
    max_output_tokens: int = Field(
        32768,
        alias="AGENT_MAX_OUTPUT_TOKENS",
        ge=1,
        description="Largest options.max_output_tokens a client may ask for (400 above).",
    )
    max_messages_per_turn: int = Field(
        20, alias="AGENT_MAX_MESSAGES_PER_TURN", ge=1, description="Most messages in one turn's request (413 above)."
    )
    max_session_bytes: int = Field(
        16777216,
        alias="AGENT_MAX_SESSION_BYTES",
        ge=1024,
        description="Largest stored session, history included (413 above).",
    )
    max_state_bytes: int = Field(
        262144, alias="AGENT_MAX_STATE_BYTES", ge=1024, description="Largest serialized session state (413 above)."
    )
    # Telemetry (service/telemetry.py)
    applicationinsights_connection_string: str | None = Field(
        None,
        alias="APPLICATIONINSIGHTS_CONNECTION_STRING",
        description="Application Insights to export traces and metrics to (Azure Monitor OpenTelemetry).",
    )
    applicationinsights_authentication_string: str | None = Field(
        None,
        alias="APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        description="`ClientId=<id>;Authorization=AAD`: export with that managed identity (local auth is off).",
    )
    otlp_endpoint: str | None = Field(
        None,
        alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        pattern=_HTTP_URL,
        description="OTLP/HTTP collector to export traces and metrics to.",
    )
    telemetry_console: bool = Field(
        False, alias="AGENT_TELEMETRY_CONSOLE", description="true: print spans to stdout (local runs)."
    )
    enable_sensitive_data: bool = Field(
        False,
        alias="ENABLE_SENSITIVE_DATA",
        description="true: telemetry also records message content and tool arguments (not in production).",
    )
    # Who the caller is (service/auth.py; README, "Security")
    auth_mode: Literal["platform", "jwt", "none"] | None = Field(
        None,
        alias="AGENT_AUTH_MODE",
        description="platform, jwt or none: who names the caller. Unset: none locally, 503 on user routes in Azure.",
    )
    auth_issuer: str | None = Field(
        None, alias="AGENT_AUTH_ISSUER", pattern=_HTTP_URL, description="jwt mode: the tokens' issuer (iss)."
    )
    auth_audience: str | None = Field(
        None, alias="AGENT_AUTH_AUDIENCE", description="jwt mode: accepted audiences (aud), comma-separated."
    )
    auth_jwks_url: str | None = Field(
        None,
        alias="AGENT_AUTH_JWKS_URL",
        pattern=_HTTP_URL,
        description="jwt mode: the issuer's keys. Unset: from the issuer's OpenID discovery document.",
    )
    auth_algorithms: str = Field(
        "RS256",
        alias="AGENT_AUTH_ALGORITHMS",
        description="jwt mode: accepted signature algorithms, comma-separated (asymmetric only).",
    )
    attach_unbound_conversations: bool = Field(
        False,
        alias="AGENT_ATTACH_UNBOUND_CONVERSATIONS",
        description="true: sessions may attach conversations this app did not create (the caller vouches for the id).",
    )
    # Set by the platform, never by a deployment: facts about where the app runs (service/auth.py)
    website_instance_id: str | None = Field(
        None,
        alias="WEBSITE_INSTANCE_ID",
        description="Set by the platform in Azure; there an unset AGENT_AUTH_MODE is refused, not taken as none.",
    )
    website_auth_enabled: bool = Field(
        False,
        alias="WEBSITE_AUTH_ENABLED",
        description="Set by the platform when App Service authentication is on; only then are its headers trusted.",
    )
    # Playground
    playground_enabled: bool = Field(
        False,
        alias="AGENT_PLAYGROUND_ENABLED",
        description="true: serve the playground page in Azure (always served locally).",
    )

    @property
    def limits(self) -> Limits:
        """The size limits as one value (the HTTP layer and the store take them together)."""
        return Limits(
            max_request_bytes=self.max_request_bytes,
            max_message_chars=self.max_message_chars,
            max_output_tokens=self.max_output_tokens,
            max_messages_per_turn=self.max_messages_per_turn,
            max_session_bytes=self.max_session_bytes,
            max_state_bytes=self.max_state_bytes,
        )


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int
    max_message_chars: int
    max_output_tokens: int
    max_messages_per_turn: int
    max_session_bytes: int
    max_state_bytes: int


class HostSettings(_Settings):
    """What the Functions host and its Python worker read; listed here so the sample, README and infra cover them."""

    web_jobs_storage: str | None = Field(
        None,
        alias="AzureWebJobsStorage",
        examples=["UseDevelopmentStorage=true"],
        description="The Functions host's storage (timers' locks); identity-based `AzureWebJobsStorage__*` in Azure.",
    )
    worker_runtime: Literal["python"] = Field(
        alias="FUNCTIONS_WORKER_RUNTIME",
        examples=["python"],
        description="Functions worker runtime (on Flex Consumption: the site's functionAppConfig).",
    )
    enable_init_indexing: Literal["1"] = Field(
        alias="PYTHON_ENABLE_INIT_INDEXING",
        examples=["1"],
        description="Needed by the FastAPI HTTP streaming extension; without it every request hangs.",
    )
    sweep_schedule: str = Field(
        alias="AGENT_SWEEP_SCHEDULE",
        min_length=1,
        examples=["0 */5 * * * *"],
        description="NCRONTAB schedule of the expiry sweep (the host resolves `%AGENT_SWEEP_SCHEDULE%`).",
    )


# --- the registry derived from the models: README table, sample settings, infra checks ------------------------


@dataclass(frozen=True)
class Setting:
    """One app setting as the README, the sample settings and the infra checks see it."""

    name: str
    default: str | None  # as the app setting's text; None: no default
    required: bool
    sample: str  # the value local.settings.sample.json holds (the default, else the example, else empty)
    description: str
    where: Literal["app", "host"]  # who reads it: the function app, or the Functions host/worker


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _setting(field: FieldInfo, where: Literal["app", "host"]) -> Setting:
    assert field.alias is not None, "every setting has its app setting's name"
    assert field.description is not None, "every setting is described"
    required = field.is_required()
    default = None if required or field.default is None else _as_text(field.default)
    sample = default if default is not None else _as_text(field.examples[0]) if field.examples else ""
    return Setting(field.alias, default, required, sample, field.description, where)


SETTINGS: tuple[Setting, ...] = (
    *(_setting(field, "app") for field in AppSettings.model_fields.values()),
    *(_setting(field, "host") for field in HostSettings.model_fields.values()),
)


def markdown_table() -> str:
    """The README's settings table (a test keeps the README in sync)."""
    rows = ["| setting | default | what it is |", "|---|---|---|"]
    for s in SETTINGS:
        default = f"required, e.g. `{s.sample}`" if s.required else f"`{s.default}`" if s.default else "—"
        rows.append(f"| `{s.name}` | {default} | {s.description}{' (host)' if s.where == 'host' else ''} |")
    return "\n".join(rows)


def sample_settings() -> str:
    """local.settings.sample.json: every setting with its sample value (a test keeps the file in sync)."""
    values = {s.name: s.sample for s in sorted(SETTINGS, key=lambda s: s.where != "host")}
    return json.dumps({"IsEncrypted": False, "Values": values}, indent=2) + "\n"


if __name__ == "__main__":
    print(markdown_table())
