"""Headless Chromium for the MLflow UI tests: finding it (skip, or fail where .ci/run installed
it), driving it with Selenium, reading a page once it has rendered what a test expects (with a
screenshot under test-output/mlflow-ui/), and `mlflow ui` over a project's store."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import BIN, REPO, free_port, wait_until_up

SHOTS = Path(os.environ.get("FORGEML_TEST_OUTPUT", REPO / "test-output")) / "mlflow-ui"


def find_browser() -> tuple[str, str]:
    """Chromium and its WebDriver (Debian: `chromium`, `chromium-driver`)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        message = ("Chromium or its driver is missing: `sudo apt-get install chromium "
                   "chromium-driver` (Debian) to run the MLflow UI tests.")
        if os.environ.get("FORGEML_REQUIRE_BROWSER"):
            pytest.fail(message)  # .ci/run installed both: a missing browser is a CI fault
        pytest.skip(message)
    return browser, driver


@contextlib.contextmanager
def chrome() -> Iterator:
    """A headless Chromium driven by Selenium, quit when the block ends."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver = find_browser()
    options = Options()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1600,1000"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(driver), options=options)  # no driver download
    try:
        yield browser
    finally:
        browser.quit()


def render(browser, url: str | None, expected: list[str], screenshot: str) -> str:
    """The page's visible text once everything `expected` is on it (its scripts fetch from the
    server and render), with a screenshot either way."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def text() -> str:
        return browser.find_element(By.TAG_NAME, "body").text

    SHOTS.mkdir(parents=True, exist_ok=True)
    if url is not None:  # None: the page already open, after a click
        browser.get(url)
    try:
        WebDriverWait(browser, 60, poll_frequency=0.5).until(
            lambda _: all(e in text() for e in expected))
    except TimeoutException:
        browser.save_screenshot(str(SHOTS / screenshot))
        missing = [e for e in expected if e not in text()]
        pytest.fail(f"{url}: {missing} not shown within 60 s; the page says: {text()[:1500]}")
    browser.save_screenshot(str(SHOTS / screenshot))
    return text()


@contextlib.contextmanager
def mlflow_ui(project: Path) -> Iterator[str]:
    """`mlflow ui` over the project's sqlite store on a free port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job consumers outliving it
    log = project / "ui.log"
    server = subprocess.Popen([str(BIN / "mlflow"), "ui", "--backend-store-uri",
                               f"sqlite:///{project / 'mlflow.db'}", "--host", "127.0.0.1",
                               "--port", str(port)], cwd=project, env=env,
                              stdout=log.open("wb"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        assert wait_until_up(f"http://127.0.0.1:{port}/health", 90), log.read_text()[-2000:]
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
