"""The dashboard in headless Chromium (selenium) against the daemon on three emulated modems:
log in, see the modems, send from the UI and watch the message become delivered without a
reload, change a SIM's throttle and find it in the running pool, add a contact group and upload
a CSV into it; a wrong password and a form without its CSRF token are refused; text a message
or a contact carries stays text.

`make screenshots` runs only test_screenshots_of_every_page: PNGs in tests/artifacts/ (it sets
SCREENSHOTS_DIR; the plain suite writes them to a temporary directory, never into the checkout).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from gateway.contacts import ContactInput
from gateway.daemon import Gateway
from tests.api.livegateway import ADMIN_PASSWORD, LiveGateway

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)
WAIT = 15.0  # seconds a condition may take before the test fails (never a sleep)
EVIL = "<script>window.__pwned = 1</script>"
DELIVERED = "+15005550000"

# The browser keeps HTTP connections to the daemon open between tests (and the daemon's thread
# runs for the whole module): the module fixtures close both at the end.
pytestmark = pytest.mark.allow_leaks


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with LiveGateway(tmp_path_factory.mktemp("gateway")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    driver = webdriver.Chrome(
        service=Service(CHROMEDRIVER, log_output=subprocess.DEVNULL), options=options
    )
    try:
        yield driver
    finally:
        driver.quit()


def wait(browser: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(browser, WAIT)


def log_in(browser: WebDriver, live: LiveGateway, password: str = ADMIN_PASSWORD) -> None:
    """Fresh cookies, then the login form."""
    browser.get(live.url + "/login")
    browser.delete_all_cookies()
    browser.get(live.url + "/login")
    field = wait(browser).until(ec.presence_of_element_located((By.ID, "password")))
    field.send_keys(password)
    browser.find_element(By.ID, "login").click()
    wait(browser).until(lambda _: _detached(field))  # the answer to the POST has loaded


def _detached(element: WebElement) -> bool:
    """Whether the page holding `element` has been replaced.

    ChromeDriver 156 reports a node of a replaced document as stale or, while the new document
    is still loading, with "Node with given id does not belong to the document", which
    ec.staleness_of does not take for staleness: any error about the old node means it is gone.
    """
    try:
        element.is_enabled()
    except WebDriverException:
        return True
    return False


def test_a_wrong_password_is_refused_and_the_right_one_shows_three_modems(
    browser: WebDriver, live: LiveGateway
) -> None:
    log_in(browser, live, "not the password")
    error = wait(browser).until(ec.visibility_of_element_located((By.ID, "login-error")))
    assert error.text == "Wrong password."
    assert browser.get_cookie("smsgw_session") is None
    browser.get(live.url + "/")
    assert "/login" in browser.current_url  # still locked out of the pages

    log_in(browser, live)
    wait(browser).until(ec.url_to_be(live.url + "/"))
    rows = wait(browser).until(
        lambda b: (
            b.find_elements(By.CSS_SELECTOR, "#modems tr.modem[data-state=ready]")
            if len(b.find_elements(By.CSS_SELECTOR, "#modems tr.modem[data-state=ready]")) == 3
            else False
        )
    )
    assert len(rows) == 3
    assert browser.find_element(By.ID, "modems-up").text == "3/3"
    cookie = browser.get_cookie("smsgw_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""  # scripts cannot read it


def test_a_message_sent_from_the_ui_becomes_delivered_without_a_reload(
    browser: WebDriver, live: LiveGateway
) -> None:
    log_in(browser, live)
    browser.get(live.url + "/messages")
    browser.find_element(By.ID, "send-to").send_keys(DELIVERED)
    browser.find_element(By.ID, "send-text").send_keys("Hello from the dashboard")
    browser.find_element(By.ID, "send-button").click()
    wait(browser).until(ec.url_contains("/messages/"))
    message_id = int(browser.current_url.split("/messages/")[1].split("?")[0])
    browser.execute_script("window.__sameDocument = true")
    # Sent: the network took it; its status report comes when the emulated SMSC's clock moves.
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "state"), "sent"))
    tp_mr = browser.find_element(By.CSS_SELECTOR, "#parts td.tp-mr").text
    assert tp_mr.isdigit()
    live.emulator.advance(live.report_delay)
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "state"), "delivered"))
    assert browser.execute_script("return window.__sameDocument === true")  # never reloaded
    assert "delivered" in browser.find_element(By.ID, "reports").text
    stored = live.call(lambda g: g.store.message(message_id))
    assert stored is not None and stored["state"] == "delivered"
    assert stored["body"] == "Hello from the dashboard"


def test_a_throttle_changed_in_the_ui_is_applied_in_the_running_pool(
    browser: WebDriver, live: LiveGateway
) -> None:
    log_in(browser, live)
    sim_id = live.call(lambda g: g.pool.sim_ids()[0])
    assert live.call(lambda g: g.pool.get(sim_id).throttle.policy.interval) == 1.0
    browser.get(live.url + "/sims")
    card = browser.find_element(By.ID, f"sim-{sim_id}")
    interval = card.find_element(By.NAME, "interval")
    interval.clear()
    interval.send_keys("7")
    per_hour = card.find_element(By.NAME, "per_hour")
    per_hour.clear()
    per_hour.send_keys("120")
    card.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    notice = wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".notice")))
    assert "SIM settings saved" in notice.text

    def policy(g: Gateway) -> tuple[float, int | None]:
        p = g.pool.get(sim_id).throttle.policy
        return p.interval, p.per_hour

    assert live.call(policy) == (7.0, 120)  # the daemon's pool, no restart, no reconnect
    browser.get(live.url + "/")
    row = browser.find_element(By.CSS_SELECTOR, f"tr.sim[data-sim='{sim_id}'] td.interval")
    assert row.text.startswith("1 / 7 s")
    live.call(
        lambda g: g.service.set_sim_limits(sim_id, {"throttle_interval": 1.0, "cap_per_hour": None})
    )


def test_a_form_without_its_csrf_token_is_refused(browser: WebDriver, live: LiveGateway) -> None:
    log_in(browser, live)
    sim_id = live.call(lambda g: g.pool.sim_ids()[0])
    browser.get(live.url + "/sims")
    card = browser.find_element(By.ID, f"sim-{sim_id}")
    browser.execute_script("arguments[0].querySelector('input[name=csrf]').remove()", card)
    interval = card.find_element(By.NAME, "interval")
    interval.clear()
    interval.send_keys("30")
    card.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    error = wait(browser).until(ec.visibility_of_element_located((By.ID, "error")))
    assert "CSRF token is missing or wrong" in error.text
    assert live.call(lambda g: g.pool.get(sim_id).throttle.policy.interval) == 1.0


def test_script_in_a_message_and_a_contact_name_stays_text(
    browser: WebDriver, live: LiveGateway
) -> None:
    def seed(g: Gateway) -> int:
        g.service.contacts.save(
            live.account_id, [ContactInput(DELIVERED, first_name=EVIL)], dial_code=""
        )
        return g.service.submit(live.account_id, [DELIVERED], EVIL).message_ids[0]

    message_id = live.call(seed)
    log_in(browser, live)
    for path in ("/messages", f"/messages/{message_id}"):
        browser.get(live.url + path)
        wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".contact")))
        assert browser.execute_script("return window.__pwned") is None
        assert EVIL in browser.find_element(By.TAG_NAME, "main").text  # shown, as text
        assert EVIL in [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".contact")]


def test_a_group_added_and_a_csv_uploaded_in_the_ui_list_their_contacts(
    browser: WebDriver, live: LiveGateway, tmp_path: Path
) -> None:
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text("Phone,First_Name,Last_Name,Email\n+15005550100,Ann,Lee,ann@example.com\n"
                        "+15005550101,Bo,,\nnot a number,Nobody,,\n")  # fmt: skip
    log_in(browser, live)
    browser.get(live.url + "/accounts")
    row = browser.find_element(By.CSS_SELECTOR, f"tr.account[data-id='{live.account_id}']")
    row.find_element(By.CSS_SELECTOR, "a.contacts-link").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "add-group")))
    assert browser.find_element(By.CSS_SELECTOR, "nav a[aria-current]").text == "Contacts"
    browser.find_element(By.ID, "group-name").send_keys("Customers")
    browser.find_element(By.ID, "add-group-button").click()
    notice = wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".notice")))
    assert notice.text == "Contact group added."
    assert browser.find_element(By.ID, "import-group").get_attribute("value") == "Customers"
    browser.find_element(By.ID, "import-file").send_keys(str(csv_file))
    browser.find_element(By.ID, "import-button").click()
    result = wait(browser).until(ec.visibility_of_element_located((By.ID, "import-result")))
    assert "2 contacts saved, 1 rows rejected" in result.text
    assert browser.find_element(By.ID, "import-rejected").text == "not a number"
    rows = browser.find_elements(By.CSS_SELECTOR, "#contacts tr.contact-row")
    assert [r.find_element(By.CSS_SELECTOR, "td.number").text for r in rows] == [
        "+15005550101", "+15005550100"]  # newest first  # fmt: skip
    assert "Ann Lee ann@example.com" in rows[1].text
    group = browser.find_element(By.CSS_SELECTOR, "#groups tr.chosen")
    assert group.text.startswith("Customers 2")

    def stored(g: Gateway) -> list[tuple[str, str]]:
        groups = g.service.contact_groups(live.account_id)
        chosen = next(x["id"] for x in groups if x["name"] == "Customers")
        _, found = g.service.contact_page(live.account_id, group_id=chosen)
        return [(c["number"], c["first_name"]) for c in found]

    assert live.call(stored) == [("+15005550101", "Bo"), ("+15005550100", "Ann")]


def test_screenshots_of_every_page(browser: WebDriver, live: LiveGateway, tmp_path: Path) -> None:
    """Pages with some traffic on them, at desktop and phone width, into $SCREENSHOTS_DIR."""
    artifacts = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)

    def seed(g: Gateway) -> int:
        s = g.service
        ids = [
            s.submit(live.account_id, [DELIVERED], f"Order {n} has shipped").message_ids[0]
            for n in range(3)
        ]
        s.submit(live.account_id, ["+15005551021"], "This one the network refuses")
        s.submit(live.account_id, ["+15005550004"], "A long one. " * 20)
        s.contacts.save(
            live.account_id,
            [ContactInput(f"+1500555020{n}", first_name=name, last_name="Shopper", group="Regulars")
             for n, name in enumerate(("Ann", "Bo", "Cy"))],
            dial_code="",
        )  # fmt: skip
        return ids[0]

    message_id = live.call(seed)
    numbers = live.call(lambda g: [s["msisdn"] for s in g.store.list_sims()])
    live.emulator.inject_sms(numbers[0], "Can I change my delivery slot?", sender="+15551230001")
    live.emulator.advance(live.report_delay)
    log_in(browser, live)
    wait(browser).until(ec.url_to_be(live.url + "/"))
    artifacts.mkdir(parents=True, exist_ok=True)
    pages = {
        "overview": "/",
        "messages": "/messages",
        "message": f"/messages/{message_id}",
        "inbox": "/inbox",
        "sims": "/sims",
        "accounts": "/accounts",
        "contacts": f"/contacts?account={live.account_id}",
    }
    written = []
    for width, height, suffix in ((1280, 900, ""), (390, 844, "-phone")):
        browser.set_window_size(width, height)
        for name, path in pages.items():
            browser.set_window_size(width, height)
            browser.get(live.url + path)
            wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "main")))
            # The whole page, not only the first screenful.
            extra = browser.execute_script(
                "return document.documentElement.scrollHeight - window.innerHeight"
            )
            if extra > 0:
                browser.set_window_size(width, height + extra)
            target = artifacts / f"{name}{suffix}.png"
            assert browser.get_screenshot_as_file(str(target))
            written.append(target)
    browser.delete_all_cookies()
    browser.get(live.url + "/login")
    browser.set_window_size(1280, 900)
    assert browser.get_screenshot_as_file(str(artifacts / "login.png"))
    assert all(p.stat().st_size > 5000 for p in written)
    # A phone-width page needs no sideways scrolling (tables scroll inside their own box).
    browser.set_window_size(390, 844)
    log_in(browser, live)
    wait(browser).until(ec.url_to_be(live.url + "/"))
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    browser.set_window_size(1280, 900)
