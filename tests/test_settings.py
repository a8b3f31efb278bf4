"""Settings: typed fields parsed strictly, and the sample settings and README come from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent_core import ConfigurationError
from service.runtime import build_model_client, build_store
from service.settings import SETTINGS, AppSettings, HostSettings, markdown_table, sample_settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


def test_defaults_and_types():
    settings = AppSettings.from_env({})
    assert settings.session_ttl_seconds == 86400
    assert settings.limits.max_message_chars == 262144
    assert settings.delete_service_conversations is False
    assert settings.model_timeout_seconds == 120.0


def test_values_are_parsed_by_their_azure_style_names():
    settings = AppSettings.from_env(
        {"AGENT_SESSION_TTL_SECONDS": "60", "AGENT_DELETE_SERVICE_CONVERSATIONS": "true", "OPENAI_API_KEY": "sk-secret"}
    )
    assert (settings.session_ttl_seconds, settings.delete_service_conversations) == (60, True)
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(settings)  # keys never show in logs or tracebacks


def test_empty_values_count_as_unset():
    """The sample settings leave optional settings empty, as Core Tools' local.settings.json does."""
    settings = AppSettings.from_env({"AGENT_SESSION_TTL_SECONDS": "", "OPENAI_BASE_URL": ""})
    assert (settings.session_ttl_seconds, settings.openai_base_url) == (86400, None)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AGENT_SESSION_TTL_SECONDS", "soon", "valid integer"),
        ("AGENT_SESSION_TTL_SECONDS", "0", "greater than or equal to 1"),
        ("AGENT_MAX_REQUEST_BYTES", "100", "greater than or equal to 1024"),
        ("AGENT_MODEL_TIMEOUT_SECONDS", "0", "greater than 0"),
        ("AGENT_MODEL_MAX_RETRIES", "-1", "greater than or equal to 0"),
        ("AGENT_DELETE_SERVICE_CONVERSATIONS", "maybe", "valid boolean"),
        ("AGENT_SESSIONS_TABLE", "no-dashes", "match pattern"),
        ("AZURE_OPENAI_ENDPOINT", "myresource.openai.azure.com", "match pattern"),
    ],
)
def test_bad_values_name_the_setting(name: str, value: str, message: str):
    with pytest.raises(ConfigurationError, match=rf"{name}: .*{message}.*, got '{value}'"):
        AppSettings.from_env({name: value})


def test_required_host_settings_are_named_when_missing():
    with pytest.raises(ConfigurationError, match="AGENT_SWEEP_SCHEDULE is required but not set"):
        HostSettings.from_env({"FUNCTIONS_WORKER_RUNTIME": "python", "PYTHON_ENABLE_INIT_INDEXING": "1"})


def test_the_process_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AGENT_MAX_STATE_BYTES", "2048")
    assert AppSettings.from_env().max_state_bytes == 2048
    assert AppSettings.from_env({}).max_state_bytes == 262144  # an explicit mapping is the only source


def test_missing_configuration_names_the_settings():
    with pytest.raises(ConfigurationError, match=r"SessionStorage.*SessionStorage__tableServiceUri"):
        build_store(AppSettings.from_env({}))
    with pytest.raises(ConfigurationError, match=r"AZURE_AI_PROJECT_ENDPOINT.*OPENAI_API_KEY"):
        build_model_client(AppSettings.from_env({}))


def test_the_sweep_schedule_has_no_default_of_ours():
    """The host resolves %AGENT_SWEEP_SCHEDULE% itself: only the sample settings and infra can provide it."""
    schedule = SETTINGS_BY_NAME["AGENT_SWEEP_SCHEDULE"]
    assert (schedule.required, schedule.default, schedule.where) == (True, None, "host")
    assert schedule.sample == "0 */5 * * * *"


def test_sample_settings_are_generated_from_the_settings():
    text = (ROOT / "local.settings.sample.json").read_text()
    assert text == sample_settings()
    values = json.loads(text)["Values"]
    assert set(values) == set(SETTINGS_BY_NAME)
    assert values["SessionStorage"] == "UseDevelopmentStorage=true"
    assert values["AGENT_SWEEP_SCHEDULE"] == "0 */5 * * * *"


def test_every_setting_is_described():
    assert all(s.description.endswith(".") for s in SETTINGS)


def test_readme_settings_table_is_current():
    assert markdown_table() in (ROOT / "README.md").read_text()
