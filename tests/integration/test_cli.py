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


@pytest.mark.parametrize(
    "args,field",
    [
        (["--status", "exploded"], "--status"),
        (["--commit", "not-a-sha"], "--commit"),
        (["--url", "ftp://x"], "--url"),
        (["--pr", "0"], "--pr"),
        (["--duration", "-3"], "--duration"),
        (["--repo", " "], "--repo"),
    ],
)
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
    path = write_config(
        {
            "channels": {"c": {"type": "console"}},
            "receivers": [{"name": "ops", "channels": ["c"]}],
            "route": {"receiver": "ops"},
        }
    )
    done = cli(
        "notify", "--receiver", "nobody", "--title", "x", env={"TOCSIN_CONFIG": str(path)}, address=closed_port()
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "tocsin: --receiver: unknown receiver 'nobody' (known: ops)"
    done = cli("notify", "--receiver", "ops", "--title", "x", "--severity", "loud", env={"TOCSIN_CONFIG": str(path)})
    assert done.returncode == 2 and done.stderr.startswith("tocsin: --severity:")


def test_config_check_ok_and_broken(write_config) -> None:  # type: ignore[no-untyped-def]
    good = write_config(
        {
            "channels": {"c": {"type": "console"}},
            "receivers": [{"name": "ops", "channels": ["c"]}],
            "route": {"receiver": "ops"},
        },
        name="good.yaml",
    )
    done = cli("config", "check", "--config", str(good))
    assert done.returncode == 0 and "ok (1 channels, 1 receivers)" in done.stdout
    bad = write_config(
        {
            "receivers": [{"name": "ops"}],
            "route": {"receiver": "ops", "routes": [{"receiver": "ops"}, {"receiver": "nowhere"}]},
        },
        name="bad.yaml",
    )
    done = cli("config", "check", "--config", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip() == "tocsin: route.routes[1].receiver: unknown receiver 'nowhere'"


def test_routes_test_prints_receivers_in_order(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        {
            "receivers": [{"name": "default"}, {"name": "pager"}, {"name": "db"}],
            "route": {
                "receiver": "default",
                "routes": [
                    {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True},
                    {"matchers": ['team="db"'], "receiver": "db"},
                ],
            },
        }
    )
    assert cli("routes", "test", "--config", str(path), "severity=critical", "team=db").stdout == "pager,db\n"
    assert cli("routes", "test", "--config", str(path), "team=web").stdout == "default\n"


ROUTES = {
    "receivers": [{"name": "default"}, {"name": "pager"}, {"name": "db"}],
    "time_intervals": [
        {
            "name": "nights",
            "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "06:00"}], "location": "Asia/Seoul"}],
        }
    ],
    "route": {
        "receiver": "default",
        "routes": [
            {
                "matchers": ['severity="critical"'],
                "receiver": "pager",
                "continue": True,
                "mute_time_intervals": ["nights"],
            },
            {"match": {"team": "db"}, "match_re": {"env": "prod|staging"}, "receiver": "db"},
        ],
    },
}


def test_routes_test_tree_is_amtools(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(ROUTES)
    done = cli("routes", "test", "--config", str(path), "--tree", 'severity="critical"', "team=db", "env=prod")
    assert done.returncode == 0
    assert done.stdout == (
        "Matching routes:\n.\n└── default-route\n"
        '    ├── {severity="critical"}  receiver: pager\n'
        '    └── {env=~"^(?:prod|staging)$",team="db"}  receiver: db\n'
        "\n\npager,db\n"
    )


def test_routes_test_at_leaves_out_muted_routes(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(ROUTES)
    base = ["routes", "test", "--config", str(path), "severity=critical"]
    assert cli(*base, "--at", "2024-03-04T02:00:00+09:00").stdout == "\n"
    assert cli(*base, "--at", "2024-03-04T12:00:00+09:00").stdout == "pager\n"
    assert cli(*base, "--at", "2024-03-03T18:00:00").stdout == "\n", "no zone: UTC (03:00 in Seoul)"
    done = cli(*base, "--at", "yesterday")
    assert done.returncode == 2 and done.stderr.startswith("tocsin: --at:")


@pytest.mark.parametrize("label", ["team=~db", "nolabel", 'team="db'])
def test_routes_test_bad_labels_exit_2(write_config, label: str) -> None:  # type: ignore[no-untyped-def]
    done = cli("routes", "test", "--config", str(write_config(ROUTES)), label)
    assert done.returncode == 2 and done.stderr.startswith("tocsin: labels:"), done.stderr


def test_config_check_warnings_keep_exit_0(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        {
            "receivers": [{"name": "ops"}, {"name": "idle"}],
            "route": {"receiver": "ops", "routes": [{"receiver": "ops"}, {"receiver": "ops", "matchers": ['a="1"']}]},
        }
    )
    done = cli("config", "check", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "warning: route.routes[1]: unreachable: route.routes[0] has no matchers and no 'continue', so it catches "
        "every alert before this route",
        "warning: receivers[1]: receiver 'idle' is not used by any route, escalation policy or environment",
    ]
    assert "ok (0 channels, 2 receivers)" in done.stdout


def test_config_check_names_time_interval_paths(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        {
            "receivers": [{"name": "ops"}],
            "route": {"receiver": "ops"},
            "time_intervals": [
                {"name": "x", "time_intervals": [{"weekdays": ["monday", "funday"], "location": "Nowhere/City"}]}
            ],
        }
    )
    done = cli("config", "check", "--config", str(path))
    assert done.returncode == 2
    assert "tocsin: time_intervals[0].time_intervals[0].weekdays[1]: funday is not a valid weekday" in done.stderr
    assert "tocsin: time_intervals[0].time_intervals[0].location: unknown time zone 'Nowhere/City'" in done.stderr


def test_silence_add_refuses_a_matcher_set_that_silences_everything() -> None:
    done = cli(
        "silence",
        "add",
        "--matcher",
        'service=~".*"',
        "--duration",
        "1h",
        "--by",
        "ops",
        "--comment",
        "x",
        address=closed_port(),
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "tocsin: --matcher: at least one matcher must not match the empty string"
    done = cli(
        "silence",
        "add",
        "--matcher",
        'service="api"',
        "--duration",
        "soon",
        "--by",
        "ops",
        "--comment",
        "x",
        address=closed_port(),
    )
    assert done.returncode == 2 and done.stderr.startswith("tocsin: --duration:")
