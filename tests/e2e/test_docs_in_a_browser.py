"""GET /docs as a person uses it, in Debian's headless Chromium driven by selenium through
Debian's chromedriver (nothing downloaded): the UI renders the API from /openapi.json under
the page's policy, and its Authorize dialog and "Try it out" answer a real request."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1400",
)
API_PATH = "/api/v1/usage-analytics"
OPERATION = (
    By.XPATH,
    f"//div[contains(@class, 'opblock-post')][.//*[@data-path='{API_PATH}']]",
)
WAIT_SECONDS = 60


@pytest.fixture()
def browser(tmp_path) -> WebDriver:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the browser tests need Debian's chromium and "
            "chromium-driver; run .ci/install-browser (as root) to install them.",
            pytrace=False,
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A driver path given to Service keeps Selenium Manager from looking for (or fetching) one.
    service = Service(
        executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log")
    )
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()


def authorize(driver: WebDriver, wait: WebDriverWait, credentials: dict[str, str]) -> None:
    """Fills and applies each named security scheme's form of the Authorize dialog (one
    form a scheme), then closes the dialog."""
    driver.find_element(By.CSS_SELECTOR, ".auth-wrapper .btn.authorize").click()
    dialog = wait.until(shown.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))
    for scheme, value in credentials.items():
        form = dialog.find_element(By.XPATH, f".//form[.//h4/code[normalize-space()='{scheme}']]")
        form.find_element(By.CSS_SELECTOR, "input").send_keys(value)
        form.find_element(By.CSS_SELECTOR, "button.authorize").click()
        wait.until(lambda _, form=form: form.find_elements(By.XPATH, ".//h6[.='Authorized']"))
    dialog.find_element(By.CSS_SELECTOR, "button.btn-done").click()
    wait.until(shown.invisibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))


def try_it_out(wait: WebDriverWait, operation: WebElement) -> WebElement:
    """Opens the operation, sends its example body, and returns the live response's row."""
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    wait.until(lambda _: operation.find_element(By.CSS_SELECTOR, ".try-out__btn")).click()
    wait.until(lambda _: operation.find_element(By.CSS_SELECTOR, ".btn.execute")).click()
    return wait.until(
        lambda _: operation.find_element(By.CSS_SELECTOR, ".live-responses-table tbody tr.response")
    )


def save_screenshot(driver: WebDriver, tmp_path: Path) -> None:
    """To DOCS_SCREENSHOT, else the test's tmp_path; the path is printed for a person to see."""
    path = Path(os.environ.get("DOCS_SCREENSHOT") or tmp_path / "docs.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(path))
    print(f"\ndocs page screenshot: {path}")


def test_a_person_authorizes_and_tries_the_api_from_the_docs_page(
    server, make_org, cli, browser, tmp_path
):
    org = make_org(clinic_keys=0)
    event = {
        "event_id": f"docs-page-{uuid.uuid4().hex}",
        "api_key_id": org.root.id,
        "occurred_at": "2024-01-15T12:00:00Z",
        "tokens": 4321,
        "stt_duration": 65,
        "usage": 7,
    }
    imported = cli("usage", "import", "-", input=json.dumps(event) + "\n")
    assert imported.exit_code == 0, imported.stderr
    wait = WebDriverWait(browser, WAIT_SECONDS)
    try:
        browser.get(f"{server['base_url']}/docs")
        operation = wait.until(shown.visibility_of_element_located(OPERATION))
        assert "Scrubs usage analytics" in browser.find_element(By.CSS_SELECTOR, ".info").text

        authorize(browser, wait, {"ApiKey": org.root.secret, "Provider": org.provider_id})
        response = try_it_out(wait, operation)  # the example body: January 2024
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", response)
    finally:
        save_screenshot(browser, tmp_path)

    status = response.find_element(By.CSS_SELECTOR, ".response-col_status").text.split()[0]
    assert status == "200", response.text
    body = response.find_element(By.CSS_SELECTOR, ".response-col_description pre").text
    assert json.loads(body)["total"] == {"tokens": 4321, "usage": 7, "stt_duration": 65}
    curl = operation.find_element(By.CSS_SELECTOR, ".curl-command").text
    assert f"X-Scrubs-Clinic-Api-Key: {org.root.secret}" in curl
    assert f"X-Scrubs-Clinic-Provider: {org.provider_id}" in curl
    complaints = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert complaints == [], "the page broke its own policy, or something failed to load"
