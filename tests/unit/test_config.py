"""Config loading: schema, key paths in errors, ${ENV} references, defaults, reload."""

from __future__ import annotations

import os
import time
from datetime import UTC
from pathlib import Path

import pytest

from operations.config import ConfigError, ConfigStore, load_config_file, resolve_env
from workflows.config import default_config


def issues_of(write_config, data: dict) -> list[str]:  # type: ignore[no-untyped-def,type-arg]
    with pytest.raises(ConfigError) as err:
        load_config_file(write_config(data))
    return [str(i) for i in err.value.issues]


def test_no_file_means_console_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config_file(None)
    assert cfg == default_config()
    assert cfg.route.receiver == "console" and cfg.channels["console"].type == "console"


def test_tocsin_config_env_is_used(write_config, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        {
            "channels": {"c": {"type": "console"}},
            "receivers": [{"name": "r", "channels": ["c"]}],
            "route": {"receiver": "r"},
        }
    )
    monkeypatch.setenv("TOCSIN_CONFIG", str(path))
    assert load_config_file(None).route.receiver == "r"


def test_errors_name_key_paths(write_config) -> None:  # type: ignore[no-untyped-def]
    found = issues_of(
        write_config,
        {
            "channels": {"c": {"type": "console"}},
            "receivers": [{"name": "r", "channels": ["c", "ghost"]}],
            "route": {"receiver": "r", "routes": [{"receiver": "r"}, {"receiver": "nowhere"}]},
        },
    )
    assert "receivers[0].channels[1]: unknown channel 'ghost'" in found
    assert "route.routes[1].receiver: unknown receiver 'nowhere'" in found


def test_schema_errors_name_key_paths(write_config) -> None:  # type: ignore[no-untyped-def]
    found = issues_of(
        write_config,
        {
            "channels": {"c": {"type": "carrier-pigeon"}},
            "route": {"receiver": "r", "group_wait": "soon", "routes": [{"matchers": ['a=~"("']}]},
            "bogus": 1,
        },
    )
    joined = "\n".join(found)
    assert "channels.c.type:" in joined
    assert "route.group_wait: not a duration: 'soon'" in joined
    assert "route.routes[0].matchers[0]: bad regex: missing closing ) in '('" in joined
    assert "bogus: Extra inputs are not permitted" in joined


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("route: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "missing.yaml")


def test_env_references_resolved_only_on_demand(write_config, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        {
            "channels": {"s": {"type": "slack", "token": "${SLACK_BOT_TOKEN}", "channel": "#ci"}},
            "receivers": [{"name": "r", "channels": ["s"]}],
            "route": {"receiver": "r"},
        }
    )
    cfg = load_config_file(path)
    assert cfg.channels["s"].settings()["token"] == "${SLACK_BOT_TOKEN}"
    snap = cfg.snapshot()
    assert snap.channels["s"].settings() == {}, "snapshots for workflow history carry no channel settings"
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret")
    assert resolve_env(cfg.channels["s"].settings())["token"] == "xoxb-secret"
    assert resolve_env("${NOPE:-fallback}") == "fallback"
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    with pytest.raises(KeyError):
        resolve_env(cfg.channels["s"].settings())


def test_store_reloads_changed_file_and_keeps_last_good(write_config) -> None:  # type: ignore[no-untyped-def]
    base = {
        "channels": {"c": {"type": "console"}},
        "receivers": [{"name": "r1", "channels": ["c"]}],
        "route": {"receiver": "r1"},
    }
    path = write_config(base)
    store = ConfigStore(path)
    assert store.get().route.receiver == "r1"
    base["receivers"].append({"name": "r2", "channels": ["c"]})  # type: ignore[attr-defined]
    base["route"] = {"receiver": "r2"}
    write_config(base)
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert store.get().route.receiver == "r2"
    path.write_text("route: [broken")
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert store.get().route.receiver == "r2"


# ------------------------------------------------ Alertmanager rules and warnings


def _parse(data: dict) -> tuple[list[str], list[str]]:  # type: ignore[type-arg]
    from operations.config import parse_config

    base = {"receivers": [{"name": "r"}, {"name": "s"}], "route": {"receiver": "r", "routes": [{"receiver": "s"}]}}
    try:
        _, warnings = parse_config(base | data)
    except ConfigError as exc:
        return [str(i) for i in exc.issues], []
    return [], [str(w) for w in warnings]


@pytest.mark.parametrize(
    "route,message",
    [
        ({"receiver": "r", "continue": True}, "route.continue: the root route cannot have continue"),
        ({"receiver": "r", "mute_time_intervals": ["x"]}, "route.mute_time_intervals: the root route must not have"),
        ({"receiver": "r", "match": {"a": "b"}}, "route.matchers: the root route must not have matchers"),
        ({}, "route.receiver: the root route needs a receiver"),
        ({"receiver": "r", "group_by": ["...", "a"]}, "route.group_by: cannot have wildcard group_by"),
        ({"receiver": "r", "group_by": ["a", "a"]}, "route.group_by: duplicated label 'a' in group_by"),
        ({"receiver": "r", "group_interval": "0s"}, "route.group_interval: group_interval cannot be zero"),
        (
            {"receiver": "r", "routes": [{"repeat_interval": "0"}]},
            "route.routes[0].repeat_interval: repeat_interval cannot",
        ),
        (
            {"receiver": "r", "routes": [{"match": {"bad-name": "x"}}]},
            "route.routes[0].match.bad-name: invalid label name",
        ),
        ({"receiver": "r", "routes": [{"match_re": {"a": "(?=x)"}}]}, "route.routes[0].match_re.a: bad regex"),
        ({"receiver": "r", "routes": [{"matchers": ['a="1"', "a=~x**"]}]}, "route.routes[0].matchers[1]: bad regex"),
    ],
)
def test_alertmanager_route_rules(route: dict, message: str) -> None:  # type: ignore[type-arg]
    errors, _ = _parse({"route": route})
    assert any(e.startswith(message) for e in errors), errors


def test_matchers_accept_alertmanager_syntax_including_empty_and_utf8() -> None:
    errors, _ = _parse(
        {
            "route": {
                "receiver": "r",
                "routes": [{"receiver": "s", "matchers": ["", '"service name"="x"', "{a=b, c!=d}"], "continue": True}],
            }
        }
    )
    assert errors == []


def test_warnings_unreachable_unused_and_repeat_interval() -> None:
    errors, warnings = _parse(
        {
            "receivers": [{"name": "r"}, {"name": "s"}, {"name": "idle"}],
            "route": {
                "receiver": "r",
                "group_interval": "5m",
                "repeat_interval": "9m",
                "routes": [
                    {"receiver": "s", "matchers": ['a="1"']},
                    {"receiver": "s", "continue": True},  # no matchers but continue: not a catch-all
                    {"receiver": "s", "matchers": [""]},  # matches everything
                    {"receiver": "r", "matchers": ['b="1"']},
                    {"receiver": "r", "repeat_interval": "1m"},
                ],
            },
        }
    )
    assert errors == []
    assert warnings == [
        "route.repeat_interval: repeat_interval (9m) is not a multiple of group_interval (5m): it is rounded up to 10m",
        "route.routes[3]: unreachable: route.routes[2] has no matchers and no 'continue', so it catches every "
        "alert before this route",
        "route.routes[4]: unreachable: route.routes[2] has no matchers and no 'continue', so it catches every "
        "alert before this route",
        "route.routes[4].repeat_interval: repeat_interval (1m) is less than group_interval (5m): notifications "
        "will not repeat until the next group_interval",
        "receivers[2]: receiver 'idle' is not used by any route, escalation policy or environment",
    ]


def test_route_tree_inheritance_follows_route_go() -> None:
    from datetime import timedelta

    from workflows.config import Route
    from workflows.policy.routing import build_tree, effective_repeat_interval

    tree = build_tree(
        Route.model_validate(
            {
                "receiver": "r",
                "group_by": ["alertname"],
                "group_interval": "5m",
                "mute_time_intervals": [],
                "routes": [
                    {"group_by": [], "routes": [{"group_by": ["..."], "routes": [{}, {"group_by": ["team"]}]}]},
                    {"receiver": "s", "repeat_interval": "9m", "mute_time_intervals": ["nights"], "routes": [{}]},
                ],
            }
        )
    )
    empty, dots = tree.children[0], tree.children[0].children[0]
    assert empty.group_by == ["alertname"] and not empty.group_by_all, "group_by: [] inherits"
    assert dots.group_by_all and dots.children[0].group_by_all, "'...' groups by all, and is inherited"
    assert dots.children[1].group_by == ["team"] and not dots.children[1].group_by_all
    nine = tree.children[1]
    assert nine.children[0].receiver == "s" and nine.children[0].repeat_interval == timedelta(minutes=9)
    assert nine.mute_time_intervals == ["nights"] and nine.children[0].mute_time_intervals == [], "not inherited"
    assert effective_repeat_interval(nine) == timedelta(minutes=10)
    assert effective_repeat_interval(tree) == timedelta(hours=4)
    tree.children[0].repeat_interval = timedelta(minutes=1)
    assert effective_repeat_interval(tree.children[0]) == timedelta(minutes=5)


def test_muted_routes_with_at() -> None:
    from datetime import datetime

    from workflows.config import Config
    from workflows.policy.routing import receivers_for

    cfg = Config.model_validate(
        {
            "receivers": [{"name": "r"}, {"name": "day"}, {"name": "night"}],
            "time_intervals": [
                {"name": "nights", "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "06:00"}]}]}
            ],
            "route": {
                "receiver": "r",
                "routes": [
                    {"matchers": ['a="1"'], "receiver": "day", "mute_time_intervals": ["nights"], "continue": True},
                    {"matchers": ['a="1"'], "receiver": "night", "active_time_intervals": ["nights"]},
                ],
            },
        }
    )
    night, noon = datetime(2024, 1, 1, 3, tzinfo=UTC), datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert receivers_for(cfg.route, {"a": "1"}) == ["day", "night"]
    assert receivers_for(cfg.route, {"a": "1"}, at=night, time_intervals=cfg.time_intervals) == ["night"]
    assert receivers_for(cfg.route, {"a": "1"}, at=noon, time_intervals=cfg.time_intervals) == ["day"]


def test_redact_patterns_must_compile() -> None:
    from operations.config import ConfigError, parse_config

    try:
        parse_config({"redact_patterns": ["ok-[a-z]+", "(unclosed"]})
    except ConfigError as exc:
        assert [i.path for i in exc.issues] == ["redact_patterns"], exc.issues
        assert "not a regular expression" in exc.issues[0].message
    else:
        raise AssertionError("an invalid redact pattern was accepted")
