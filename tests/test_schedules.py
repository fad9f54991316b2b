"""The schedule recipes in pipelines/schedules/ are valid and call `forgeml retrain` (the serving
unit, `forgeml serve`)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from conftest import BIN, REPO

SCHEDULES = REPO / "pipelines" / "schedules"
CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def cron_field_ok(field: str, low: int, high: int) -> bool:
    for part in field.split(","):
        match = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
        if not match:
            return False
        if match.group(1) != "*":
            bounds = [int(x) for x in match.group(1).split("-")]
            if any(not low <= b <= high for b in bounds) or bounds != sorted(bounds):
                return False
        if match.group(2) is not None and int(match.group(2)) < 1:
            return False
    return True


def cron_ok(expression: str) -> bool:
    fields = expression.split()
    return len(fields) == 5 and all(
        cron_field_ok(f, lo, hi) for f, (lo, hi) in zip(fields, CRON_RANGES, strict=True))


def test_cron_validator_rejects_nonsense():
    assert cron_ok("0 3 * * 1") and cron_ok("*/15 0-6 1,15 * 0")
    assert not cron_ok("61 3 * * 1") and not cron_ok("0 3 * *") and not cron_ok("0 3 * * mon-x")


def test_crontab_lines_are_valid_and_call_retrain():
    lines = [line for line in (SCHEDULES / "crontab").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines
    for line in lines:
        fields = line.split(None, 5)
        assert cron_ok(" ".join(fields[:5])), line
        assert re.search(r"forgeml retrain (digits|recsys)\b", fields[5]), line


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_systemd_units_verify(tmp_path):
    for unit in ("forgeml-retrain@.service", "forgeml-retrain@.timer", "forgeml-serve@.service"):
        (tmp_path / unit).write_text((SCHEDULES / unit).read_text())
        (tmp_path / unit.replace("@", "@recsys")).symlink_to(tmp_path / unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / "forgeml-retrain@recsys.timer"),
         str(tmp_path / "forgeml-retrain@recsys.service"),
         str(tmp_path / "forgeml-serve@recsys.service")],
        capture_output=True, text=True, env={"SYSTEMD_LOG_LEVEL": "warning", "PATH": "/usr/bin"})
    # verify warns (and still exits 0) about unknown keys or bad values: any line about our units
    # is a defect.
    problems = [line for line in result.stderr.splitlines() if "forgeml-" in line]
    assert result.returncode == 0 and not problems, result.stderr
    calendar = subprocess.run(["systemd-analyze", "calendar", "Mon *-*-* 03:00:00"],
                              capture_output=True, text=True)
    assert calendar.returncode == 0


def test_systemd_service_runs_retrain_for_its_instance():
    service = (SCHEDULES / "forgeml-retrain@.service").read_text()
    assert re.search(r"^ExecStart=.*forgeml retrain %i", service, re.M)
    assert "Type=oneshot" in service
    timer = (SCHEDULES / "forgeml-retrain@.timer").read_text()
    assert "Unit=forgeml-retrain@%i.service" in timer and "OnCalendar=" in timer


def test_github_workflow_matches_the_schema_and_has_a_concurrency_group():
    workflow = SCHEDULES / "github-retrain.yml"
    result = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema",
                             "vendor.github-workflows", str(workflow)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    data = yaml.safe_load(workflow.read_text())
    triggers = data[True]  # YAML 1.1 reads the key `on` as True
    assert all(cron_ok(entry["cron"]) for entry in triggers["schedule"])
    assert data["concurrency"]["group"].startswith("forgeml-retrain")
    assert data["concurrency"]["cancel-in-progress"] is False
    steps = " ".join(step.get("run", "") for step in data["jobs"]["retrain"]["steps"])
    assert "forgeml retrain" in steps


def test_systemd_serving_unit_serves_the_champion_and_follows_it():
    service = (SCHEDULES / "forgeml-serve@.service").read_text()
    command = re.search(r"^ExecStart=.*$", service, re.M).group(0)
    assert "forgeml serve --run champion --pipeline %i" in command
    assert "--follow-champion" in command and "Restart=on-failure" in service
