"""The CLI's contract: bad input exits 2 naming the field; Temporal down exits 1 with one line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.helpers import cli


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


BUILD = ["build", "--repo", "acme/api", "--branch", "main", "--commit", "abcdef1", "--status", "failure"]


@pytest.mark.parametrize("args,field", [
    (["--status", "exploded"], "--status"),
    (["--commit", "not-a-sha"], "--commit"),
    (["--url", "ftp://x"], "--url"),
    (["--pr", "0"], "--pr"),
    (["--duration", "-3"], "--duration"),
    (["--repo", " "], "--repo"),
])
def test_build_bad_input_exits_2_naming_the_field(args: list[str], field: str) -> None:
    full = list(BUILD)
    for i in range(0, len(args), 2):
        idx = full.index(args[i]) if args[i] in full else None
        if idx is None:
            full += [args[i], args[i + 1]]
        else:
            full[idx + 1] = args[i + 1]
    done = cli(*full, address=closed_port())
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"tocsin: {field}:"), done.stderr
    assert "Traceback" not in done.stderr


def test_missing_required_option_exits_2() -> None:
    done = cli("build", "--repo", "acme/api")
    assert done.returncode == 2 and "--branch" in done.stderr


def test_bad_report_file_exits_2_naming_flag(tmp_path: Path) -> None:
    bogus = tmp_path / "junit.xml"
    bogus.write_text("<html></html>")
    done = cli(*BUILD, "--junit", str(bogus), address=closed_port())
    assert done.returncode == 2
    assert done.stderr.startswith("tocsin: --junit:") and "junit.xml" in done.stderr


def test_temporal_unreachable_exits_1_with_one_line() -> None:
    address = closed_port()
    done = cli(*BUILD, address=address)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [f"tocsin: cannot reach Temporal at {address}: connection refused"]


def test_notify_validates_receiver_against_config(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config({"channels": {"c": {"type": "console"}}, "receivers": [{"name": "ops", "channels": ["c"]}],
                         "route": {"receiver": "ops"}})
    done = cli("notify", "--receiver", "nobody", "--title", "x", env={"TOCSIN_CONFIG": str(path)},
               address=closed_port())
    assert done.returncode == 2
    assert done.stderr.strip() == "tocsin: --receiver: unknown receiver 'nobody' (known: ops)"
    done = cli("notify", "--receiver", "ops", "--title", "x", "--severity", "loud", env={"TOCSIN_CONFIG": str(path)})
    assert done.returncode == 2 and done.stderr.startswith("tocsin: --severity:")


def test_config_check_ok_and_broken(write_config) -> None:  # type: ignore[no-untyped-def]
    good = write_config({"channels": {"c": {"type": "console"}}, "receivers": [{"name": "ops", "channels": ["c"]}],
                         "route": {"receiver": "ops"}}, name="good.yaml")
    done = cli("config", "check", "--config", str(good))
    assert done.returncode == 0 and "ok (1 channels, 1 receivers)" in done.stdout
    bad = write_config({"receivers": [{"name": "ops"}], "route": {"receiver": "ops", "routes": [
        {"receiver": "ops"}, {"receiver": "nowhere"}]}}, name="bad.yaml")
    done = cli("config", "check", "--config", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip() == "tocsin: route.routes[1].receiver: unknown receiver 'nowhere'"


def test_routes_test_prints_receivers_in_order(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config({
        "receivers": [{"name": "default"}, {"name": "pager"}, {"name": "db"}],
        "route": {"receiver": "default", "routes": [
            {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True},
            {"matchers": ['team="db"'], "receiver": "db"}]},
    })
    assert cli("routes", "test", "--config", str(path), "severity=critical", "team=db").stdout == "pager,db\n"
    assert cli("routes", "test", "--config", str(path), "team=web").stdout == "default\n"
