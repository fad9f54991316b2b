"""The MLflow UI as a user sees it, in a real browser (headless Chromium) over a store made by a
real pipeline run and one DVC experiment: the experiment opens on its runs with their data sets,
a run's page shows the report's verdict, its data sets and its metrics (system metrics among
them), and the compare page renders both runs. The rendered page is checked, not the database;
screenshots go to test-output/mlflow-ui/."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import BIN, REPO, free_port, make_project, run, wait_until_up
from forgeml.tracking import TOP_LEVEL

pytestmark = pytest.mark.slow  # a pipeline run and an experiment, then the browser: ~3 min

SHOTS = Path(os.environ.get("FORGEML_TEST_OUTPUT", REPO / "test-output")) / "mlflow-ui"


def _browser() -> tuple[str, str]:
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


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver = _browser()
    options = Options()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--window-size=1600,1000"):
        options.add_argument(argument)
    chrome = webdriver.Chrome(service=Service(driver), options=options)  # no driver download
    yield chrome
    chrome.quit()


def _render(browser, url: str | None, expected: list[str], screenshot: str) -> str:
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


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    _browser()  # skip (or fail under CI) before the pipeline runs
    project = make_project(tmp_path_factory.mktemp("ui"))
    run([str(BIN / "dvc"), "repro"], cwd=project)
    run([str(BIN / "dvc"), "exp", "run", "-S", "trainer.max_epochs=2"], cwd=project)
    store = f"sqlite:///{project / 'mlflow.db'}"
    port = free_port()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job consumers outliving it
    log = project / "ui.log"
    server = subprocess.Popen([str(BIN / "mlflow"), "ui", "--backend-store-uri", store,
                               "--host", "127.0.0.1", "--port", str(port)], cwd=project,
                              env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        assert wait_until_up(f"http://127.0.0.1:{port}/health", 90), log.read_text()[-2000:]
        client = MlflowClient(store)
        experiment = client.get_experiment_by_name("digits")
        runs = client.search_runs([experiment.experiment_id], filter_string=TOP_LEVEL,
                                  order_by=["attributes.start_time ASC"])
        yield {"base": f"http://127.0.0.1:{port}", "experiment": experiment, "runs": runs,
               "project": project}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_the_experiment_opens_on_its_runs_with_their_data_sets(ui, browser):
    from forgeml.tracking import ui_page

    names = [r.info.run_name for r in ui["runs"]]
    text = _render(browser, ui_page(ui["base"], ui["experiment"].experiment_id),
                   [*names, "digits-train"], "experiment.png")
    assert "Training runs of the ForgeML pipeline 'digits'" in text  # the description
    assert "Tool calls" not in text and "Detect Issues" not in text  # not GenAI's overview
    # A run's compressed variants are its children: collapsed under it until expanded.
    assert "compressed: ONNX int8" not in text
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR,
                         "button[data-component-id*='runnamecellrenderer']").click()
    _render(browser, None, ["compressed: ONNX int8 (dynamic quantisation)",
                            "compressed: distilled student"], "experiment-expanded.png")


def test_a_run_page_shows_the_verdict_data_sets_and_metrics(ui, browser):
    from forgeml.tracking import ui_page

    first = ui["runs"][0]
    verdict = first.data.tags["mlflow.note.content"]
    assert verdict.startswith("We trained a CNN")
    _render(browser, ui_page(ui["base"], ui["experiment"].experiment_id, first.info.run_id),
            [verdict.split(". ")[0], "digits-train", "Training", "test/acc",
             "system/cpu_utilization_percentage"], "run.png")


def test_the_compare_page_renders_both_runs(ui, browser):
    ids = [r.info.run_id for r in ui["runs"]]
    url = (f"{ui['base']}/#/compare-runs?runs={json.dumps(ids, separators=(',', ':'))}"
           f"&experiments={json.dumps([ui['experiment'].experiment_id])}")
    _render(browser, url.replace('"', "%22"), [*(r.info.run_name for r in ui["runs"]),
                                                "val/loss"], "compare.png")
