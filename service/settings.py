"""Every app setting the function app reads, with defaults and docs: one registry for code, samples and infra."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from agent_core.exceptions import ConfigurationError


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    description: str
    where: str = "app"  # "app": the function app reads it; "host": the Functions host/worker reads it
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    # Model
    Setting("AZURE_AI_PROJECT_ENDPOINT", None, "Azure AI Foundry project endpoint (Entra ID auth)."),
    Setting("AZURE_OPENAI_ENDPOINT", None, "Azure OpenAI resource endpoint, when not using a Foundry project."),
    Setting("AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME", None, "Model deployment for the Responses API."),
    Setting("AZURE_OPENAI_API_KEY", None, "Key auth instead of Entra ID (avoid in Azure).", secret=True),
    Setting("AZURE_OPENAI_API_VERSION", None, "Optional api-version query parameter for the v1 API."),
    Setting("OPENAI_API_KEY", None, "OpenAI or an OpenAI-compatible server instead of Azure.", secret=True),
    Setting("OPENAI_BASE_URL", None, "Base URL of an OpenAI-compatible server (with OPENAI_API_KEY)."),
    Setting("OPENAI_RESPONSES_MODEL_ID", None, "Model name for OPENAI_API_KEY."),
    Setting("AGENT_OFFLINE_MODEL", "false", "true: use the labelled offline echo model when no endpoint is set."),
    Setting("AGENT_MODEL_TIMEOUT_SECONDS", "120", "Timeout of one model call."),
    Setting("AGENT_MODEL_MAX_RETRIES", "2", "openai SDK retries of a throttled or failed model call."),
    Setting("AGENT_GENERAL_INSTRUCTIONS", "You are a helpful assistant. Be concise.", "The general agent's prompt."),
    # Storage
    Setting("SessionStorage", None, "Connection string of the sessions' storage account (local/Azurite)."),
    Setting("SessionStorage__tableServiceUri", None, "Table endpoint, with managed identity, in Azure."),
    Setting("SessionStorage__clientId", None, "Client id of the user-assigned identity for SessionStorage."),
    Setting("AZURE_CLIENT_ID", None, "User-assigned identity DefaultAzureCredential uses (model and storage)."),
    Setting("AGENT_SESSIONS_TABLE", "agentsessions", "Table holding sessions, history and the expiry index."),
    # Expiry
    Setting("AGENT_SESSION_TTL_SECONDS", "86400", "Sliding time to live of a session, renewed by every turn."),
    Setting("AGENT_SWEEP_SCHEDULE", "0 */5 * * * *", "NCRONTAB schedule of the expiry sweep."),
    Setting("AGENT_DELETE_SERVICE_CONVERSATIONS", "false", "true: the sweep also deletes service conversations."),
    # Limits
    Setting("AGENT_MAX_REQUEST_BYTES", "1048576", "Largest accepted request body (413 above)."),
    Setting("AGENT_MAX_MESSAGE_CHARS", "32000", "Longest accepted message text (413 above)."),
    Setting("AGENT_MAX_MESSAGES_PER_TURN", "20", "Most messages in one turn's request (413 above)."),
    Setting("AGENT_MAX_SESSION_BYTES", "16777216", "Largest stored session, history included (413 above)."),
    Setting("AGENT_MAX_STATE_BYTES", "262144", "Largest serialized session state (413 above)."),
    # Host
    Setting("AzureWebJobsStorage", None, "The Functions host's storage (timers' locks).", where="host"),
    Setting("FUNCTIONS_WORKER_RUNTIME", "python", "Functions worker runtime.", where="host"),
    Setting("PYTHON_ENABLE_INIT_INDEXING", "1", "Needed by the FastAPI HTTP streaming extension.", where="host"),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def _bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def _int(value: str, name: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {number}")
    return number


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int
    max_message_chars: int
    max_messages_per_turn: int
    max_session_bytes: int
    max_state_bytes: int


@dataclass(frozen=True)
class AppSettings:
    """The function app's configuration, parsed and validated once per process."""

    env: Mapping[str, str]
    sessions_table: str
    session_ttl_seconds: int
    sweep_schedule: str
    delete_service_conversations: bool
    offline_model: bool
    model_timeout_seconds: float
    model_max_retries: int
    general_instructions: str
    limits: Limits

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppSettings:
        env = dict(os.environ if env is None else env)

        def get(name: str) -> str:
            value = env.get(name)
            default = _BY_NAME[name].default
            return value if value not in (None, "") else (default or "")

        return cls(
            env=env,
            sessions_table=get("AGENT_SESSIONS_TABLE"),
            session_ttl_seconds=_int(get("AGENT_SESSION_TTL_SECONDS"), "AGENT_SESSION_TTL_SECONDS", 1),
            sweep_schedule=get("AGENT_SWEEP_SCHEDULE"),
            delete_service_conversations=_bool(
                get("AGENT_DELETE_SERVICE_CONVERSATIONS"), "AGENT_DELETE_SERVICE_CONVERSATIONS"
            ),
            offline_model=_bool(get("AGENT_OFFLINE_MODEL"), "AGENT_OFFLINE_MODEL"),
            model_timeout_seconds=float(_int(get("AGENT_MODEL_TIMEOUT_SECONDS"), "AGENT_MODEL_TIMEOUT_SECONDS", 1)),
            model_max_retries=_int(get("AGENT_MODEL_MAX_RETRIES"), "AGENT_MODEL_MAX_RETRIES"),
            general_instructions=get("AGENT_GENERAL_INSTRUCTIONS"),
            limits=Limits(
                max_request_bytes=_int(get("AGENT_MAX_REQUEST_BYTES"), "AGENT_MAX_REQUEST_BYTES", 1024),
                max_message_chars=_int(get("AGENT_MAX_MESSAGE_CHARS"), "AGENT_MAX_MESSAGE_CHARS", 1),
                max_messages_per_turn=_int(get("AGENT_MAX_MESSAGES_PER_TURN"), "AGENT_MAX_MESSAGES_PER_TURN", 1),
                max_session_bytes=_int(get("AGENT_MAX_SESSION_BYTES"), "AGENT_MAX_SESSION_BYTES", 1024),
                max_state_bytes=_int(get("AGENT_MAX_STATE_BYTES"), "AGENT_MAX_STATE_BYTES", 1024),
            ),
        )

    def get(self, name: str) -> str | None:
        """A raw setting (None when unset or empty)."""
        if name not in _BY_NAME:
            raise KeyError(f"{name} is not a registered setting")
        return self.env.get(name) or None

    @property
    def in_azure(self) -> bool:
        """True on the Functions platform (the host sets WEBSITE_INSTANCE_ID)."""
        return bool(self.env.get("WEBSITE_INSTANCE_ID"))


def markdown_table() -> str:
    """The README's settings table, generated from SETTINGS (a test keeps the README in sync)."""
    rows = ["| setting | default | what it is |", "|---|---|---|"]
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default else "—"
        rows.append(f"| `{s.name}` | {default} | {s.description}{' (host)' if s.where == 'host' else ''} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
