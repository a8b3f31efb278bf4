"""Settings: one registry, parsed strictly, and the sample settings and README agree with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent_core import ConfigurationError
from service.runtime import build_model_client, build_store
from service.settings import SETTINGS, AppSettings, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_and_parsing():
    settings = AppSettings.from_env({})
    assert settings.session_ttl_seconds == 86400
    assert settings.sweep_schedule == "0 */5 * * * *"
    assert settings.limits.max_message_chars == 32000
    assert settings.offline_model is False
    with pytest.raises(ConfigurationError, match="AGENT_SESSION_TTL_SECONDS must be a whole number"):
        AppSettings.from_env({"AGENT_SESSION_TTL_SECONDS": "soon"})
    with pytest.raises(ConfigurationError, match="AGENT_OFFLINE_MODEL must be true or false"):
        AppSettings.from_env({"AGENT_OFFLINE_MODEL": "maybe"})
    with pytest.raises(KeyError):
        settings.get("NOT_A_SETTING")


def test_missing_configuration_names_the_settings():
    with pytest.raises(ConfigurationError, match=r"SessionStorage.*SessionStorage__tableServiceUri"):
        build_store(AppSettings.from_env({}))
    with pytest.raises(ConfigurationError, match=r"AZURE_AI_PROJECT_ENDPOINT.*AGENT_OFFLINE_MODEL"):
        build_model_client(AppSettings.from_env({}))


def test_offline_model_is_never_used_silently_in_azure():
    local = AppSettings.from_env({"AGENT_OFFLINE_MODEL": "true"})
    assert build_model_client(local)[1] == "offline"
    azure = AppSettings.from_env({"AGENT_OFFLINE_MODEL": "true", "WEBSITE_INSTANCE_ID": "abc"})
    with pytest.raises(ConfigurationError, match="local runs only"):
        build_model_client(azure)


def test_sample_settings_hold_every_setting():
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert set(values) == {s.name for s in SETTINGS}
    assert values["AGENT_OFFLINE_MODEL"] == "true"
    assert values["SessionStorage"] == "UseDevelopmentStorage=true"


def test_readme_settings_table_is_current():
    assert markdown_table() in (ROOT / "README.md").read_text()
