"""Fork and rewind through the playground page in headless Chromium: each turn's "Fork from here", "Rewind to
here", "Regenerate" and "Edit" buttons, checked in the DOM and, from the outside, through the HTTP API and the
echo model's request count. A screenshot is written to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

from typing import Any

import httpx2
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from devtools.echo_model import EchoModel

from .helpers import seen_user_messages
from .test_playground import (
    ARTIFACTS,
    active_session,
    bubbles,
    driver,
    finished_replies,
    new_session,
    page,
    say,
    say_and_wait,
    session_ids,
    status_text,
    stored_history,
    texts,
    wait_for,
)

__all__ = ["driver", "page"]  # fixtures


def turn_bars(driver: WebDriver) -> list[str]:
    return texts(driver, "#log .turn-actions", "turn")


def click_turn(driver: WebDriver, turn: int, action: str) -> None:
    wait_for(
        driver, lambda d: d.find_element(By.CSS_SELECTOR, f'.turn-actions[data-turn="{turn}"] .{action}').is_enabled()
    )
    driver.find_element(By.CSS_SELECTOR, f'.turn-actions[data-turn="{turn}"] .{action}').click()


async def session_json(http: httpx2.AsyncClient, session_id: str, agent: str = "shopping") -> dict[str, Any]:
    response = await http.get(f"/agents/{agent}/sessions/{session_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def stored_texts(messages: list[dict[str, Any]]) -> list[str]:
    return ["".join(c.get("text", "") for c in m["contents"]) for m in messages]


async def test_rewind_then_regenerate_through_the_page(page: WebDriver, http: httpx2.AsyncClient, model: EchoModel):
    session_id = new_session(page)
    replies = [say_and_wait(page, line) for line in ("one", "two", "three")]
    assert turn_bars(page) == ["1", "2", "3"]

    click_turn(page, 1, "rewind")
    wait_for(page, lambda d: bubbles(d, "user") == ["one"])
    assert status_text(page) == "Rewound to turn 1"
    assert turn_bars(page) == ["1"]
    assert (await session_json(http, session_id))["turns"] == 1
    assert stored_texts(await stored_history(http, "shopping", session_id)) == ["one", replies[0]]

    calls = model.model_calls
    click_turn(page, 1, "regenerate")
    wait_for(page, lambda d: len(finished_replies(d)) == 1 and turn_bars(d) == ["1"])
    assert bubbles(page, "user") == ["one"]
    assert model.model_calls == calls + 1  # the turn ran again, once
    assert stored_texts(await stored_history(http, "shopping", session_id)) == ["one", finished_replies(page)[0].text]
    assert (await session_json(http, session_id))["turns"] == 1


async def test_edit_a_message_through_the_page(page: WebDriver, http: httpx2.AsyncClient):
    session_id = new_session(page)
    say_and_wait(page, "my name is Ada")
    say_and_wait(page, "what is my name?")
    click_turn(page, 2, "edit")
    box = page.find_element(By.ID, "input")
    assert box.get_attribute("value") == "what is my name?"
    assert status_text(page).startswith("Editing turn 2")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("what is my age?")
    page.find_element(By.ID, "send").click()
    wait_for(page, lambda d: bubbles(d, "user") == ["my name is Ada", "what is my age?"] and len(finished_replies(d)))
    assert seen_user_messages(finished_replies(page)[-1].text) == ["my name is Ada", "what is my age?"]
    assert turn_bars(page) == ["1", "2"]
    stored = stored_texts(await stored_history(http, "shopping", session_id))
    assert stored[::2] == ["my name is Ada", "what is my age?"]
    assert (await session_json(http, session_id))["turns"] == 2


async def test_fork_from_a_turn_through_the_page(page: WebDriver, http: httpx2.AsyncClient):
    source = new_session(page)
    first = say_and_wait(page, "one")
    say_and_wait(page, "two")
    click_turn(page, 1, "fork")
    wait_for(page, lambda d: active_session(d) not in (None, source) and bubbles(d, "user") == ["one"])
    forked = active_session(page)
    assert forked is not None
    assert set(session_ids(page)) >= {source, forked}
    assert status_text(page) == f"Forked turn 1 of {source} into {forked}"
    assert bubbles(page, "assistant") == [first]
    ARTIFACTS.mkdir(exist_ok=True)
    page.save_screenshot(str(ARTIFACTS / "playground-fork.png"))

    assert stored_texts(await stored_history(http, "shopping", forked)) == ["one", first]
    assert len(await stored_history(http, "shopping", source)) == 4  # the source keeps both turns
    say_and_wait(page, "branch")
    assert seen_user_messages(finished_replies(page)[-1].text) == ["one", "branch"]


async def test_fork_at_a_waiting_approval_leaves_it_behind(page: WebDriver, http: httpx2.AsyncClient):
    source = new_session(page)
    say(page, "place_order(B-7)")
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#approvals .approval button.approve"))
    assert not page.find_element(By.ID, "input").is_enabled()
    click_turn(page, 1, "fork")
    wait_for(page, lambda d: active_session(d) not in (None, source))
    forked = active_session(page)
    assert forked is not None
    wait_for(page, lambda d: d.find_element(By.ID, "input").is_enabled())  # nothing waits for a decision here
    assert page.find_elements(By.CSS_SELECTOR, "#approvals .approval") == []
    assert (await session_json(http, forked))["pending_approvals"] == []
    assert (await session_json(http, source))["pending_approvals"]  # the source still waits
