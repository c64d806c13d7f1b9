"""The page at / in a real browser: Debian's headless Chromium driven by selenium
(chromedriver). A photo is classified, a file that is not an image shows the server's
message, the live panel's throughput moves under load, and the docs page renders the
OpenAPI document with nothing fetched from elsewhere.

scripts/python-tests.sh installs chromium and chromium-driver when they are missing; it
sets FERROSERVE_BROWSER=skip only where apt is unavailable. FERROSERVE_SCREENSHOT=PATH
saves a screenshot of the page there (docs/page.png is one)."""

import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import IMAGES, ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
IMAGE_MODEL = "efficientnet-lite0-image"
# A bound on waiting for the page, never a measurement: the page polls every second.
PATIENCE_S = 60

if os.environ.get("FERROSERVE_BROWSER") == "skip":
    pytest.skip("FERROSERVE_BROWSER=skip: no browser on this machine", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert Path(binary).exists(), (
            f"{binary} is missing: apt-get install chromium chromium-driver "
            "(scripts/python-tests.sh does), or set FERROSERVE_BROWSER=skip")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1500",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait(driver, condition, message):
    return WebDriverWait(driver, PATIENCE_S, poll_frequency=0.1).until(
        lambda d: condition(d), message)


def text(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def console_problems(driver):
    """What the page logged as an error (a refused script, a CSP violation...)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "/classify" not in entry["message"]]


def open_page(driver, server):
    driver.get(f"http://{server.http}/")
    wait(driver, lambda d: text(d, "server-state") == "ready", "the page never saw the server ready")
    wait(driver, lambda d: len(Select(d.find_element(By.ID, "model")).options) >= 2,
         "the model choice stayed empty")
    Select(driver.find_element(By.ID, "model")).select_by_value(IMAGE_MODEL)


def classify_file(driver, path):
    driver.find_element(By.ID, "file").send_keys(str(path))


def server_error_of(server, body):
    request = urllib.request.Request(
        f"http://{server.http}/v2/models/{IMAGE_MODEL}/classify?top_k=5", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert 400 <= refused.value.code < 500
    return json.loads(refused.value.read())["error"]


def test_a_photo_is_classified_with_its_timings(browser, server):
    open_page(browser, server)
    classify_file(browser, IMAGES / "cat.jpg")
    wait(browser, lambda d: "tiger cat" in text(d, "results"), "no 'tiger cat' in the results")
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results .label")]
    assert len(labels) == 5 and labels[0] == "tiger cat", labels
    assert browser.find_element(By.ID, "timing").is_displayed()
    for part in ("queue", "preprocess", "compute", "round-trip"):
        float(text(browser, "t-" + part))
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert console_problems(browser) == []


def test_a_sample_photo_is_classified(browser, server):
    open_page(browser, server)
    browser.find_element(By.CSS_SELECTOR, "[data-sample='coffee.jpg']").click()
    wait(browser, lambda d: "coffee.jpg" in text(d, "status") and text(d, "results"),
         "the sample was not classified")
    assert "espresso" in text(browser, "results") or "cup" in text(browser, "results"), \
        text(browser, "results")


def test_a_file_that_is_not_an_image_shows_the_servers_message(browser, server, tmp_path):
    garbage = tmp_path / "notes.jpg"
    garbage.write_bytes(b"these are notes, not a photo\n" * 20)
    expected = server_error_of(server, garbage.read_bytes())
    open_page(browser, server)
    classify_file(browser, garbage)
    wait(browser, lambda d: d.find_element(By.ID, "error").is_displayed(), "no error shown")
    assert text(browser, "error") == expected
    assert text(browser, "results") == ""


def test_the_live_panel_follows_a_load(browser, server):
    open_page(browser, server)
    wait(browser, lambda d: text(d, "live-throughput") == "0.0",
         "the live panel never showed an idle throughput")
    body = (IMAGES / "cat.jpg").read_bytes()
    stop = threading.Event()

    def load():
        while not stop.is_set():
            request = urllib.request.Request(
                f"http://{server.http}/v2/models/{IMAGE_MODEL}/classify?top_k=1",
                data=body, method="POST")
            urllib.request.urlopen(request, timeout=30).read()

    senders = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for sender in senders:
        sender.start()
    try:
        wait(browser, lambda d: float(text(d, "live-throughput")) > 0,
             "the throughput did not move under load")
        row = browser.find_element(By.CSS_SELECTOR, f"#live-table tr[data-model='{IMAGE_MODEL}']")
        wait(browser, lambda d: float(row.find_element(By.CLASS_NAME, "throughput-now").text) > 0,
             "the model's own throughput did not move")
        # The latency quantiles of the last minute are measured.
        assert "–" not in row.find_elements(By.TAG_NAME, "td")[3].text
        screenshot = os.environ.get("FERROSERVE_SCREENSHOT")
        if screenshot:
            classify_file(browser, IMAGES / "cat.jpg")
            wait(browser, lambda d: "tiger cat" in text(d, "results"), "no result to show")
            browser.save_screenshot(str(ROOT / screenshot))
    finally:
        stop.set()
        for sender in senders:
            sender.join(timeout=60)
    models = browser.find_element(By.ID, "models-table").text
    assert IMAGE_MODEL in models and "READY" in models


def test_the_docs_page_renders_the_document_offline(browser, server):
    origin = f"http://{server.http}"
    browser.get(origin + "/v2/docs")
    wait(browser, lambda d: "Classify an image" in d.find_element(By.TAG_NAME, "body").text,
         "Redoc did not render the document")
    assert "ferroserve HTTP API" in browser.find_element(By.TAG_NAME, "body").text
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    elsewhere = [r for r in resources if not r.startswith(origin) and not r.startswith(("blob:", "data:"))]
    assert elsewhere == [], elsewhere
    assert console_problems(browser) == []
