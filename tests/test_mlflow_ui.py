"""The MLflow UI as a user sees it, in a real browser (headless Chromium) over a store made by a
real pipeline run and one DVC experiment: the experiment opens on its runs with their data sets,
a run's page shows the report's verdict, its data sets and its metrics (system metrics among
them), and the compare page renders both runs. The rendered page is checked, not the database;
screenshots go to test-output/mlflow-ui/."""

from __future__ import annotations

import json

import pytest
from browser import chrome, find_browser, mlflow_ui, render
from mlflow import MlflowClient

from conftest import BIN, make_project, run
from forgeml.tracking import TOP_LEVEL

pytestmark = pytest.mark.slow  # a pipeline run and an experiment, then the browser: ~3 min

@pytest.fixture(scope="module")
def browser():
    with chrome() as driver:
        yield driver


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    find_browser()  # skip (or fail under CI) before the pipeline runs
    project = make_project(tmp_path_factory.mktemp("ui"))
    run([str(BIN / "dvc"), "repro"], cwd=project)
    run([str(BIN / "dvc"), "exp", "run", "-S", "trainer.max_epochs=2"], cwd=project)
    with mlflow_ui(project) as base:
        client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("digits")
        runs = client.search_runs([experiment.experiment_id], filter_string=TOP_LEVEL,
                                  order_by=["attributes.start_time ASC"])
        yield {"base": base, "experiment": experiment, "runs": runs, "project": project}


def test_the_experiment_opens_on_its_runs_with_their_data_sets(ui, browser):
    from forgeml.tracking import ui_page

    names = [r.info.run_name for r in ui["runs"]]
    text = render(browser, ui_page(ui["base"], ui["experiment"].experiment_id),
                   [*names, "digits-train"], "experiment.png")
    assert "Training runs of the ForgeML pipeline 'digits'" in text  # the description
    assert "Tool calls" not in text and "Detect Issues" not in text  # not GenAI's overview
    # A run's compressed variants are its children: collapsed under it until expanded.
    assert "compressed: ONNX int8" not in text
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR,
                         "button[data-component-id*='runnamecellrenderer']").click()
    render(browser, None, ["compressed: ONNX int8 (dynamic quantisation)",
                            "compressed: distilled student"], "experiment-expanded.png")


def test_a_run_page_shows_the_verdict_data_sets_and_metrics(ui, browser):
    from forgeml.tracking import ui_page

    first = ui["runs"][0]
    verdict = first.data.tags["mlflow.note.content"]
    assert verdict.startswith("We trained a CNN")
    render(browser, ui_page(ui["base"], ui["experiment"].experiment_id, first.info.run_id),
            [verdict.split(". ")[0], "digits-train", "Training", "test/acc",
             "system/cpu_utilization_percentage"], "run.png")


def test_the_compare_page_renders_both_runs(ui, browser):
    ids = [r.info.run_id for r in ui["runs"]]
    url = (f"{ui['base']}/#/compare-runs?runs={json.dumps(ids, separators=(',', ':'))}"
           f"&experiments={json.dumps([ui['experiment'].experiment_id])}")
    render(browser, url.replace('"', "%22"), [*(r.info.run_name for r in ui["runs"]),
                                                "val/loss"], "compare.png")
