"""The status page in a real browser (headless Chromium driven by selenium) against a real
daemon: a real Dovecot for IMAP intake and a real (aiosmtpd) SMTP server for sending.

Skipped with the reason when Chromium, chromedriver or selenium is missing (``.ci/run``
installs them: ``scripts/setup.sh --with-test-servers``). Saves ``var/status-page.png``.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import httpx
import pytest
import trio

from daemon import hookimpl
from daemon.app import run_daemon
from daemon.config import load_config
from daemon.http.status_page import SESSION_COOKIE
from tests.e2e.conftest import DEMO
from tests.fakes.dovecot import Dovecot, make_message
from tests.fakes.smtp import FakeSmtp, free_port

TOKEN = "status-page-token-0123456789abcdef"
ROOT = Path(__file__).parents[2]
CUSTOMER = "ann@example.com"


class _Switch:
    """Breaks the import of "BREAK ME" while ``broken`` (a value the store cannot hold)."""

    broken = True

    @hookimpl
    def postroom_conversation_parent_properties(self, message, properties):
        if self.broken and message.subject == "BREAK ME":
            properties["bad"] = object()


switch = _Switch()


def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("chromium and chromedriver are not installed "
                    "(apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1280,1600", "--disable-gpu"):
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(service=Service(driver), options=options)


def write_config(root: Path, dovecot: Dovecot, user, smtp: FakeSmtp, port: int) -> Path:
    shutil.copy(DEMO / "runtime.json", root / "runtime.json")
    shutil.copy(DEMO / "seed.json", root / "seed.json")
    (root / "postroom.toml").write_text(textwrap.dedent(f"""\
        [daemon]
        store = "sqlite:///postroom.db"
        runtime = "runtime.json"
        seed_objects = "seed.json"
        plugins = ["tests.http.test_status_page:switch"]
        shutdown_grace_seconds = 5

        [http]
        bind = "127.0.0.1:{port}"
        api_token_env = "STATUS_TOKEN"

        [[imap_connections]]
        id = "dovecot"
        imap_host = "{dovecot.host}"
        imap_port = {dovecot.imap_port}
        imap_tls = "none"
        smtp_host = "{smtp.host}"
        smtp_port = {smtp.port}
        smtp_tls = "none"

        [[accounts]]
        id = "support"
        email = "support@example.com"
        auth = "dovecot"
        username = "{user.name}"
        password_env = "STATUS_IMAP_PASSWORD"
        backoff_cap_seconds = 1
        """))
    return root / "postroom.toml"


@pytest.mark.slow
async def test_the_status_page_in_a_browser(tmp_path, dovecot, ca):
    driver = browser()
    user = dovecot.add_user()
    smtp = FakeSmtp(ca, tmp_path, tls="none", users={user.name: user.password})
    smtp.start()
    switch.broken = True
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = load_config(write_config(tmp_path, dovecot, user, smtp, port),
                         environ={"STATUS_TOKEN": TOKEN, "STATUS_IMAP_PASSWORD": user.password})
    await trio.to_thread.run_sync(dovecot.append, user,
                                  make_message("Printer broken", message_id="<first@x>"))
    stop = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            daemon = await nursery.start(lambda task_status: run_daemon(
                config, stop=stop, handle_signals=False, task_status=task_status))
            status = daemon.handles["support"].status
            with trio.fail_after(20):
                while status.imported < 1:
                    await status.changed.wait()
            await _browse(driver, daemon, base, dovecot, user, smtp)
            stop.set()
    finally:
        smtp.stop()
        driver.quit()


async def _browse(driver, daemon, base, dovecot, user, smtp) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def run(fn, *args):
        return trio.to_thread.run_sync(fn, *args)

    def wait(predicate, seconds=15):
        return run(lambda: WebDriverWait(driver, seconds).until(predicate))

    def text(css):
        return driver.find_element(By.CSS_SELECTOR, css).text

    # Log in: the form sets an HttpOnly, SameSite=Strict session cookie.
    await run(driver.get, base + "/")
    assert driver.current_url == base + "/login"
    await run(lambda: driver.find_element(By.ID, "token").send_keys(TOKEN))
    await run(lambda: driver.find_element(By.ID, "login").click())
    await wait(lambda d: d.find_elements(By.ID, "account-support"))
    cookie = driver.get_cookie(SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # The IMAP import shows: the account, its state and counts.
    assert text("#account-support [data-count=imported]") == "1"

    # A failed message appears live (no reload: the marker survives).
    await run(driver.execute_script, "window.notReloaded = true;")
    await wait(lambda d: d.find_element(By.ID, "main").get_attribute("data-live")
               == "websocket")
    await run(dovecot.append, user, make_message("BREAK ME", message_id="<poison@x>"))
    await wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#failed tbody tr"))
    assert await run(driver.execute_script, "return window.notReloaded === true;")
    row = driver.find_element(By.CSS_SELECTOR, "#failed tbody tr")
    assert "not JSON serializable" in row.text  # the reason
    # "Retry" re-imports it once it can succeed.
    switch.broken = False
    await run(lambda: row.find_element(By.CSS_SELECTOR, "button").click())
    await wait(lambda d: not d.find_elements(By.CSS_SELECTOR, "#failed tbody tr")
               and d.find_element(By.CSS_SELECTOR,
                                  "#account-support [data-count=imported]").text == "2")

    # A failing outbox item shows the server's answer; "Retry" sends it.
    smtp.reject(CUSTOMER)
    async with httpx.AsyncClient(base_url=base,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        message = (await api.get("/api/v1/objects/conversationmessage",
                                 params={"subject": "Printer broken"})).json()[0]
        coworker = (await api.get("/api/v1/objects/coworker")).json()[0]
        queued = await api.post(f"/api/v1/conversations/{message['conversation']}/messages",
                                json={"coworker": coworker["id"], "html": "<p>On it.</p>"})
    assert queued.status_code == 202, queued.text
    await wait(lambda d: "550" in d.find_element(By.ID, "main").text
               and d.find_elements(By.CSS_SELECTOR, "#outbox button[id^=retry-outbox]"))
    assert "User unknown" in text("#outbox")
    smtp.rejected.clear()
    await run(lambda: driver.find_element(By.CSS_SELECTOR,
                                          "#outbox button[id^=retry-outbox]").click())
    with trio.fail_after(15):
        while not smtp.to(CUSTOMER):
            await daemon.outbox.status.changed.wait()
    assert b"On it." in smtp.to(CUSTOMER)[0].data

    # "Resolve" closes a bounce error.
    ecfg = daemon.config.runtime.conversation_message_error
    bounce = await daemon.store.run(lambda tx: tx.create(ecfg.limetype, {
        ecfg.property_type: "bounce", ecfg.property_error_message:
        "550 5.1.1 mailbox unavailable (bounce from mx.example.com)",
        ecfg.property_date: "2026-12-01T00:00:00+00:00"}))
    await run(driver.refresh)
    await wait(lambda d: d.find_elements(By.ID, f"resolve-{bounce}"))
    await run(lambda: driver.find_element(By.ID, f"resolve-{bounce}").click())
    await wait(lambda d: d.find_elements(By.ID, "errors-h")
               and not d.find_elements(By.ID, f"resolve-{bounce}"))
    record = await daemon.store.run(lambda tx: tx.get(ecfg.limetype, bounce))
    assert record.get(ecfg.property_resolved_date)

    # A phone-sized window still shows every section; then the CI artifact.
    (ROOT / "var").mkdir(exist_ok=True)
    await run(driver.save_screenshot, str(ROOT / "var" / "status-page.png"))
    await run(driver.set_window_size, 390, 844)
    await run(driver.refresh)
    await wait(lambda d: d.find_elements(By.ID, "accounts"))
    await run(driver.save_screenshot, str(ROOT / "var" / "status-page-phone.png"))
    width = await run(driver.execute_script, "return document.documentElement.scrollWidth;")
    assert width <= 420, f"the page is {width}px wide on a phone"
    print(json.dumps({"screenshot": "var/status-page.png"}))


async def test_login_session_and_csrf_without_a_browser(start_daemon):
    from tests.http.conftest import TOKEN as API_TOKEN

    async with start_daemon(token=True) as (daemon, _), \
            httpx.AsyncClient(base_url=daemon.http_urls[0]) as client:
        assert (await client.get("/")).headers["location"] == "/login"
        wrong = await client.post("/login", data={"token": "nope"})
        assert wrong.status_code == 401 and SESSION_COOKIE not in wrong.cookies
        good = await client.post("/login", data={"token": API_TOKEN})
        assert good.status_code == 303
        header = good.headers["set-cookie"]
        assert "HttpOnly" in header and "SameSite=Strict" in header
        page = await client.get("/")
        assert page.status_code == 200 and "support" in page.text
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        forged = await client.post("/ui/accounts/support/sync", data={"csrf": "x"})
        cross = await client.post("/ui/accounts/support/sync", data={"csrf": csrf},
                                  headers={"Origin": "https://evil.example"})
        fine = await client.post("/ui/accounts/support/sync", data={"csrf": csrf})
        client.cookies.clear()
        anonymous = await client.post("/ui/accounts/support/sync", data={"csrf": csrf})
    assert forged.status_code == 403 and cross.status_code == 403
    assert fine.status_code == 303
    assert anonymous.status_code == 401
