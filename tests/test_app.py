"""The app factory: apps built with explicit settings, and what it does for the Functions platform."""

from __future__ import annotations

import logging

import httpx2
import pytest

from service.app import NOISY_LOGGERS, create_app, worker_setting_problems

from .conftest import AppServers, app_client


async def test_apps_built_with_different_settings_are_independent(app_servers: AppServers, http: httpx2.AsyncClient):
    with app_servers.serve(AGENT_MAX_MESSAGE_CHARS="5") as strict:
        async with app_client(strict) as strict_http:
            session = (await strict_http.post("/agents/general/sessions", json={})).json()
            url = f"/agents/general/sessions/{session['session_id']}/messages"
            assert (await strict_http.post(url, json={"message": "too long"})).status_code == 413
            assert (await http.post(url, json={"message": "too long"})).status_code == 200  # same table, own limits


def test_the_factory_reads_no_settings():
    app = create_app()
    assert app.api.runtime.built is None
    assert [f.get_function_name() for f in app.get_functions()] == [
        "sessions",
        "session",
        "messages",
        "fork",
        "rewind",
        "agents_list",
        "playground",
        "openapi",
        "health",
        "expire_sessions",
    ]


async def test_storage_requests_are_not_logged_at_info(http: httpx2.AsyncClient, caplog: pytest.LogCaptureFixture):
    """Under the Functions worker the root logger is at INFO: the SDKs' per-request logs stay out of it."""
    with caplog.at_level(logging.INFO):
        assert (await http.post("/agents/general/sessions", json={})).status_code == 201
    assert not [r for r in caplog.records if r.name.startswith(NOISY_LOGGERS)]
    assert all(logging.getLogger(name).getEffectiveLevel() == logging.WARNING for name in NOISY_LOGGERS)


@pytest.mark.parametrize(
    ("modules", "env", "problem"),
    [
        (["azure_functions_worker"], {}, True),
        (["proxy_worker"], {"PYTHON_ENABLE_INIT_INDEXING": "0"}, True),
        (["azure_functions_worker"], {"PYTHON_ENABLE_INIT_INDEXING": "1"}, False),
        (["pytest"], {}, False),  # not under the worker: the dev server needs no such setting
    ],
)
def test_a_missing_init_indexing_setting_is_reported_under_the_worker(modules, env, problem):
    problems = worker_setting_problems(env, modules)
    assert bool(problems) == problem
    assert all("PYTHON_ENABLE_INIT_INDEXING=1" in p for p in problems)
