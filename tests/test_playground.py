"""The playground page in a real browser (headless Chromium) against the function app on Azurite and the echo model.

What the page shows is read from the DOM; what happened is checked from the outside through the HTTP API.
A screenshot of the page is written to tests/artifacts/ (git-ignored) by the approval test.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from agent_core.approvals import REJECTED_RESULT
from devtools.echo_model import EchoModel

from .browser import chromium
from .conftest import FunctionAppServer
from .helpers import seen_user_messages
from .oidc_issuer import OidcIssuer
from .test_auth import AUDIENCE
from .test_auth_http import bearer, jwt_settings

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TIMEOUT = 15


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(driver: WebDriver, function_app_server: FunctionAppServer, model: EchoModel) -> WebDriver:
    """The playground, opened fresh: no remembered sessions, the agents list loaded."""
    url = f"{function_app_server.base_url}/api/playground"
    driver.get(url)
    driver.execute_script("localStorage.clear()")
    driver.get(url)
    wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    return driver


def wait_for(driver: WebDriver, condition: Any, timeout: float = TIMEOUT) -> Any:
    stale = (StaleElementReferenceException,)  # the page re-renders while it is read
    return WebDriverWait(driver, timeout, poll_frequency=0.02, ignored_exceptions=stale).until(condition)


def click(driver: WebDriver, selector: str) -> None:
    """Click the element, found again if the sidebar re-rendered it in between (a stale element)."""
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, selector).click() or True)


def status_text(driver: WebDriver) -> str:
    return driver.find_element(By.ID, "status").text


def new_session(driver: WebDriver, agent: str = "shopping") -> str:
    """Pick `agent` and create a session with the page's button; returns its id once it is the open one."""
    picker = Select(driver.find_element(By.ID, "agent"))
    if picker.first_selected_option.text != agent:
        picker.select_by_visible_text(agent)
    driver.find_element(By.ID, "new-session").click()
    created: str = wait_for(
        driver,
        lambda d: status_text(d).removeprefix("Created session ") if status_text(d).startswith("Created") else None,
    )
    wait_for(driver, lambda d: active_session(d) == created and session_ids(d)[0] == created)  # listed first: newest
    return created


def texts(driver: WebDriver, selector: str, attribute: str | None = None) -> list[str]:
    """Texts (or an attribute) of the elements matching `selector`, read in one go (no stale elements)."""
    found: list[str] = driver.execute_script(
        "const [selector, key] = arguments;"
        "return [...document.querySelectorAll(selector)].map((e) => key ? e.dataset[key] : e.innerText)",
        selector,
        attribute,
    )
    return found


def session_ids(driver: WebDriver) -> list[str]:
    return texts(driver, "#sessions li", "sessionId")


def active_session(driver: WebDriver) -> str | None:
    active = texts(driver, "#sessions li.active", "sessionId")
    return active[0] if active else None


def bubbles(driver: WebDriver, role: str) -> list[str]:
    return texts(driver, f"#log .msg.{role}")


def say(driver: WebDriver, text: str) -> None:
    wait_for(driver, lambda d: d.find_element(By.ID, "input").is_enabled())
    box = driver.find_element(By.ID, "input")
    box.send_keys(text)
    driver.find_element(By.ID, "send").click()


def finished_replies(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "#log .msg.assistant[data-done]")


def say_and_wait(driver: WebDriver, text: str) -> str:
    """Send `text` and wait until the streamed reply is complete; returns the reply as shown."""
    done = len(finished_replies(driver))
    say(driver, text)
    wait_for(driver, lambda d: len(finished_replies(d)) > done)
    return finished_replies(driver)[-1].text


async def stored_history(http: httpx2.AsyncClient, agent: str, session_id: str) -> list[dict[str, Any]]:
    response = await http.get(f"/agents/{agent}/sessions/{session_id}/messages", params={"limit": 200})
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


RECORD_REPLY_TEXTS = """
window.replyTexts = [];
new MutationObserver(() => {
  const replies = document.querySelectorAll("#log .msg.assistant");
  const text = replies.length ? replies[replies.length - 1].textContent : "";
  if (text && window.replyTexts[window.replyTexts.length - 1] !== text) window.replyTexts.push(text);
}).observe(document.getElementById("log"), {subtree: true, childList: true, characterData: true});
"""


async def test_streamed_reply_arrives_in_pieces(page: WebDriver, model: EchoModel, http: httpx2.AsyncClient):
    session_id = new_session(page)
    model.pace_next_stream(0.08)  # the model streams slowly, so each delta reaches the page on its own
    page.execute_script(RECORD_REPLY_TEXTS)
    reply = say_and_wait(page, "Hello, who are you?")

    seen: list[str] = page.execute_script("return window.replyTexts")
    assert len(seen) >= 4, seen  # the reply grew in several steps, not in one
    for shorter, longer in itertools.pairwise(seen):
        assert longer.startswith(shorter), seen
        assert len(longer) > len(shorter), seen
    assert seen[-1] == reply
    assert seen_user_messages(reply) == ["Hello, who are you?"]
    stored = await stored_history(http, "shopping", session_id)
    assert [m["contents"][0]["text"] for m in stored] == ["Hello, who are you?", reply]
    assert bubbles(page, "user") == ["Hello, who are you?"]
    assert status_text(page) == "Turn 1 done"


@pytest.mark.parametrize(
    ("button", "result"),
    [("approve", "Ordered 1 x B-7"), ("reject", REJECTED_RESULT)],
)
async def test_approving_a_place_order_after_a_reload(
    page: WebDriver, http: httpx2.AsyncClient, button: str, result: str
):
    session_id = new_session(page)
    say(page, "place_order(B-7)")
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#approvals .approval button.approve"))
    [call] = page.find_elements(By.CSS_SELECTOR, "#log .tool-call")
    assert call.text == '→ place_order {"product_id": "B-7"}'
    assert not page.find_element(By.ID, "input").is_enabled()  # the API refuses new messages until decided

    page.refresh()  # the pending approval comes back from the stored history
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#approvals .approval button.approve"))
    assert active_session(page) == session_id
    [approval] = page.find_elements(By.CSS_SELECTOR, "#approvals .approval")
    assert "place_order" in approval.text
    if button == "approve":  # the README's picture: a tool call waiting for a person
        ARTIFACTS.mkdir(exist_ok=True)
        page.save_screenshot(str(ARTIFACTS / "playground.png"))
    approval.find_element(By.CSS_SELECTOR, f"button.{button}").click()

    wait_for(page, lambda d: len(finished_replies(d)) == 1)
    assert finished_replies(page)[0].text == f"Tool results: place_order -> {result}"
    assert [e.text for e in page.find_elements(By.CSS_SELECTOR, "#log .tool-result")] == [f"← place_order {result}"]
    assert page.find_elements(By.CSS_SELECTOR, "#approvals .approval") == []
    assert page.find_element(By.ID, "input").is_enabled()
    results = [
        c["result"]
        for m in await stored_history(http, "shopping", session_id)
        for c in m["contents"]
        if c["type"] == "function_result"
    ]
    assert results == [result]  # the tool ran once (or, rejected, not at all)


async def test_reload_and_switch_sessions(page: WebDriver, http: httpx2.AsyncClient):
    first = new_session(page)
    first_reply = say_and_wait(page, "I am in the first session")
    second = new_session(page)
    assert bubbles(page, "user") == []  # a new session starts empty
    second_reply = say_and_wait(page, "I am in the second session")
    assert session_ids(page)[:2] == [second, first]  # the caller's sessions, newest first
    wait_for(
        page,
        lambda d: texts(d, "#sessions li .open")[:2] == ["I am in the second session", "I am in the first session"],
    )

    page.refresh()
    wait_for(page, lambda d: bubbles(d, "assistant") == [second_reply])
    assert active_session(page) == second
    assert bubbles(page, "user") == ["I am in the second session"]

    page.find_element(By.CSS_SELECTOR, f'#sessions li[data-session-id="{first}"] .open').click()
    wait_for(page, lambda d: bubbles(d, "assistant") == [first_reply])
    assert active_session(page) == first
    assert bubbles(page, "user") == ["I am in the first session"]
    assert seen_user_messages(say_and_wait(page, "still the first")) == ["I am in the first session", "still the first"]
    assert len(await stored_history(http, "shopping", first)) == 4
    assert len(await stored_history(http, "shopping", second)) == 2


async def test_switching_agents_and_deleting_a_session(page: WebDriver, http: httpx2.AsyncClient):
    agents = Select(page.find_element(By.ID, "agent"))
    assert [o.text for o in agents.options] == ["general", "shopping"]
    session_id = new_session(page, "general")
    reply = say_and_wait(page, "hi")
    assert reply.endswith("[instructions: You are the general test assistant.]")
    assert (await http.get(f"/agents/general/sessions/{session_id}")).status_code == 200

    row = f'#sessions li[data-session-id="{session_id}"]'
    wait_for(page, lambda d: texts(d, f"{row} .open") == ["hi"])  # the list was re-read after the first turn
    click(page, f"{row} .delete")
    wait_for(page, lambda d: session_id not in session_ids(d))
    assert (await http.get(f"/agents/general/sessions/{session_id}")).status_code == 404
    assert bubbles(page, "assistant") == []
    assert status_text(page) == f"Deleted session {session_id}"


async def test_renaming_a_session(page: WebDriver, http: httpx2.AsyncClient):
    session_id = new_session(page)
    say_and_wait(page, "plan my trip")
    row = f'#sessions li[data-session-id="{session_id}"]'
    wait_for(page, lambda d: texts(d, f"{row} .open") == ["plan my trip"])  # titled by its first message
    click(page, f"{row} .rename")
    prompt = wait_for(page, lambda d: d.switch_to.alert)
    prompt.send_keys("Lisbon in May")
    prompt.accept()
    wait_for(page, lambda d: texts(d, f"{row} .open") == ["Lisbon in May"])
    assert (await http.get(f"/agents/shopping/sessions/{session_id}")).json()["title"] == "Lisbon in May"


async def test_the_page_loads_nothing_from_elsewhere(page: WebDriver, function_app_server: FunctionAppServer):
    # data-ready (awaited by the fixture) proves the CSP let the inline script run; the style applies too
    header = page.find_element(By.TAG_NAME, "header")
    assert header.value_of_css_property("background-color") == "rgba(255, 255, 255, 1)"
    resources: list[str] = page.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert resources, "the page calls the API"
    assert all(r.startswith(function_app_server.base_url + "/api/") for r in resources), resources


async def test_jwt_mode_with_a_pasted_token(
    page: WebDriver, configure: Any, issuer: OidcIssuer, http: httpx2.AsyncClient
):
    configure(**jwt_settings(issuer))
    page.refresh()
    wait_for(page, lambda d: status_text(d).startswith("401 Unauthorized"))
    token = page.find_element(By.ID, "token")
    token.send_keys(issuer.token(AUDIENCE, oid="alice"), Keys.TAB)  # leaving the field saves the token
    wait_for(page, lambda d: texts(d, "#agent option") == ["general", "shopping"])
    session_id = new_session(page)
    assert seen_user_messages(say_and_wait(page, "hello as alice")) == ["hello as alice"]
    url = f"/agents/shopping/sessions/{session_id}"
    mine = await http.get(url, headers=bearer(issuer, "alice"))
    assert mine.status_code == 200, mine.text
    assert mine.json()["turns"] == 1
    assert (await http.get(url, headers=bearer(issuer, "mallory"))).status_code == 404


# --- over HTTP ---------------------------------------------------------------------------------------


async def test_the_page_is_one_document_with_a_strict_policy(http: httpx2.AsyncClient):
    response = await http.get("/playground")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = dict(p.strip().split(" ", 1) for p in response.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["script-src"].startswith("'sha256-")
    assert " " not in policy["script-src"]  # one inline script, allowed by its hash
    assert "://" not in response.text  # no URL to anywhere
    assert (await http.post("/playground")).status_code == 405


AZURE = {"WEBSITE_INSTANCE_ID": "instance-1"}


@pytest.mark.parametrize(
    ("settings", "status"),
    [
        ({}, 200),  # a local run
        (AZURE, 404),  # Azure: off by default
        ({**AZURE, "AGENT_PLAYGROUND_ENABLED": "true"}, 503),  # never without a chosen auth mode
        ({**AZURE, "AGENT_PLAYGROUND_ENABLED": "true", "AGENT_AUTH_MODE": "none"}, 200),
    ],
)
async def test_the_page_is_served_in_azure_only_when_enabled_with_an_auth_mode(
    http: httpx2.AsyncClient, configure: Any, settings: dict[str, str], status: int
):
    configure(**settings)
    response = await http.get("/playground")
    assert response.status_code == status, response.text
    if status != 200:
        assert response.headers["content-type"] == "application/problem+json"
        setting = "AGENT_PLAYGROUND_ENABLED" if status == 404 else "AGENT_AUTH_MODE"
        assert setting in response.json()["detail"]


async def test_agents_list(http: httpx2.AsyncClient):
    response = await http.get("/agents")
    assert response.status_code == 200
    agents = {a["name"]: a for a in response.json()["agents"]}
    assert list(agents) == ["general", "shopping"]
    assert agents["general"]["tools"] == []
    tools = {t["name"]: t["requires_approval"] for t in agents["shopping"]["tools"]}
    assert tools == {"search_products": False, "check_inventory": False, "place_order": True}
    assert (await http.delete("/agents")).status_code == 405
