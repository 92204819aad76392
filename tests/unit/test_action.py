"""The GitHub Action (action.yml): valid, every input documented and used, and its script runs ``tocsin build``.

The run step's script is executed with bash against a fake ``tocsin`` that prints its arguments, with the
inputs in the environment as the runner passes them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
RunBuild = Callable[..., list[str]]


def _action() -> dict[str, Any]:
    data = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _step(name: str) -> dict[str, Any]:
    return next(s for s in _action()["runs"]["steps"] if s["name"] == name)


def test_action_is_a_documented_composite() -> None:
    action = _action()
    assert action["name"] and action["description"]
    assert action["runs"]["using"] == "composite"
    inputs = action["inputs"]
    for name in (
        "status",
        "repo",
        "branch",
        "commit",
        "junit",
        "coverage",
        "sarif",
        "pr",
        "tocsin-url",
        "log",
        "step",
        "flake-telemetry",
    ):
        assert name in inputs, name
    for name, spec in inputs.items():
        assert isinstance(spec.get("description"), str) and len(spec["description"]) > 10, name
        assert "required" in spec, name
        assert spec["required"] or "default" in spec, name
    assert inputs["status"]["required"] and inputs["tocsin-url"]["required"]
    assert inputs["repo"]["default"] == "${{ github.repository }}"
    for step in action["runs"]["steps"]:
        assert step["shell"] == "bash"


def test_every_input_reaches_a_step_only_through_the_environment() -> None:
    action = _action()
    used: set[str] = set()
    for step in action["runs"]["steps"]:
        assert "${{" not in step["run"], f"expression pasted into the script of {step['name']!r}"
        for value in step.get("env", {}).values():
            used.update(re.findall(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", str(value)))
    assert used == set(action["inputs"])


def test_install_step_uses_a_venv_and_the_action_checkout() -> None:
    script = _step("Install Tocsin")["run"]
    assert "python3 -m venv" in script
    assert '"$ACTION_PATH"' in script and "tocsin==$TOCSIN_VERSION" in script
    assert "GITHUB_PATH" in script


@pytest.fixture
def run_build(tmp_path: Path) -> RunBuild:
    bash = shutil.which("bash")
    assert bash is not None, "the action's run step is a bash script: install bash"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "tocsin"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "TOKEN=${TOCSIN_TOKEN:-}" "URL=$TOCSIN_URL" "$@"\n')
    fake.chmod(0o755)
    step = _step("tocsin build")
    script = step["run"]

    def run(**inputs: str) -> list[str]:
        env = {k: "" for k in step["env"]}
        env.update({"INPUT_STATUS": "failure", "INPUT_REPO": "acme/shop", "INPUT_BRANCH": "main"})
        env.update({"INPUT_COMMIT": "4f2c9e1ab3d5", "TOCSIN_URL": "https://tocsin.example.com"})
        env.update(inputs)
        env["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
        done = subprocess.run(
            [bash, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    return run


def test_the_script_calls_tocsin_build_in_remote_mode_with_oidc(run_build: RunBuild, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    (reports / "unit").mkdir(parents=True)
    (reports / "unit" / "junit.xml").write_text("<testsuite/>")
    (reports / "it-junit.xml").write_text("<testsuite/>")
    (tmp_path / "cov.xml").write_text("<coverage/>")
    (tmp_path / "codeql.sarif").write_text("{}")
    (tmp_path / "ci.log").write_text("boom")
    (tmp_path / "flakes.json").write_text("{}")
    out = run_build(
        INPUT_WORKFLOW="CI",
        INPUT_URL="https://github.com/acme/shop/actions/runs/1",
        INPUT_AUTHOR="alice",
        INPUT_PR="42",
        INPUT_DURATION="754",
        INPUT_JUNIT="reports/**/*junit.xml\nmissing.xml",
        INPUT_COVERAGE="cov.xml",
        INPUT_SARIF="codeql.sarif none-*.sarif",
        INPUT_LOG="ci.log",
        INPUT_STEP="Run tests",
        INPUT_FLAKE_TELEMETRY="flakes.json",
    )
    assert out == [
        "TOKEN=",
        "URL=https://tocsin.example.com",
        "--oidc",
        "github",
        "build",
        "--repo",
        "acme/shop",
        "--branch",
        "main",
        "--commit",
        "4f2c9e1ab3d5",
        "--status",
        "failure",
        "--workflow",
        "CI",
        "--url",
        "https://github.com/acme/shop/actions/runs/1",
        "--author",
        "alice",
        "--pr",
        "42",
        "--duration",
        "754",
        "--junit",
        "reports/it-junit.xml",
        "--junit",
        "reports/unit/junit.xml",
        "--sarif",
        "codeql.sarif",
        "--coverage",
        "cov.xml",
        "--log",
        "ci.log",
        "--step",
        "Run tests",
        "--flake-telemetry",
        "flakes.json",
    ]


def test_the_script_leaves_out_what_is_not_given_and_uses_a_token_when_given(run_build: RunBuild) -> None:
    out = run_build(INPUT_TOKEN="tocsin_abc", INPUT_STATUS="success", INPUT_COVERAGE="absent.xml")
    assert out == [
        "TOKEN=tocsin_abc",
        "URL=https://tocsin.example.com",
        "build",
        "--repo",
        "acme/shop",
        "--branch",
        "main",
        "--commit",
        "4f2c9e1ab3d5",
        "--status",
        "success",
    ]


def test_an_input_cannot_inject_shell(run_build: RunBuild, tmp_path: Path) -> None:
    out = run_build(INPUT_BRANCH='x"; touch pwned; echo "', INPUT_AUTHOR="$(touch pwned2)")
    assert 'x"; touch pwned; echo "' in out and "$(touch pwned2)" in out
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_every_flag_the_script_passes_is_one_the_real_cli_takes() -> None:
    from typer.testing import CliRunner

    from starters.cli import app

    script = _step("tocsin build")["run"]
    flags = set(re.findall(r"(--[a-z][a-z-]+)", script)) - {"--oidc"}
    assert {"--log", "--step", "--flake-telemetry", "--junit", "--sarif", "--coverage"} <= flags
    text = CliRunner().invoke(app, ["build", "--help"], terminal_width=200).output
    missing = sorted(f for f in flags if f not in text)
    assert not missing, f"tocsin build --help does not know {missing}"
    top = CliRunner().invoke(app, ["--help"], terminal_width=200).output
    assert "--oidc" in top
