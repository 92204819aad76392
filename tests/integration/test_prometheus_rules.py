"""deploy/prometheus/tocsin-rules.yml passes `promtool check rules` and its unit tests (`promtool test rules`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "tocsin-rules.yml"
TESTS = ROOT / "deploy" / "prometheus" / "tocsin-rules.test.yml"
SEED_ALERTS = {"HighBuildFailureRate", "LongRunningPipeline", "DeploymentQueueBacklog"}
HEALTH_ALERTS = {"TocsinNotificationFailures", "TocsinDeadLetters", "TocsinEscalationBacklog", "TocsinWorkerDown"}


def promtool() -> str:
    found = "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: run `bash scripts/install-system-deps.sh` (Debian's prometheus)")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=RULES.parent, capture_output=True, text=True, timeout=120)


def test_rules_check() -> None:
    done = run("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rules_unit_tests_pass_and_cover_every_alert() -> None:
    done = run("test", "rules", TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    rules = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert SEED_ALERTS | HEALTH_ALERTS <= alerts
    tested = yaml.safe_load(TESTS.read_text())
    fired = {
        case["alertname"] for t in tested["tests"] for case in t.get("alert_rule_test", []) if case.get("exp_alerts")
    }
    assert alerts - {"TocsinGatewayDown"} <= fired, f"alerts without a firing test: {alerts - fired}"


def test_a_broken_rule_is_caught(tmp_path: Path) -> None:
    """The check is real: promtool refuses a rules file with a bad expression."""
    broken = tmp_path / "broken.yml"
    broken.write_text(RULES.read_text().replace("tocsin:build_failure_ratio:rate1h > 0.3", "rate(x[1h] > 0.3", 1))
    done = subprocess.run([promtool(), "check", "rules", str(broken)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
