"""Config.route_tree (built once per Config), routing.find_node, and the route-tree checks."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from workflows.config import Config, Route, validate_references
from workflows.policy.durations import check_duration
from workflows.policy.route_checks import legacy_key_issues, route_issues, route_receivers
from workflows.policy.routing import RouteNode, build_tree, find_node, match_routes

CONFIG = {
    "receivers": [{"name": "r"}, {"name": "db"}, {"name": "web"}, {"name": "pager"}],
    "route": {
        "receiver": "r",
        "group_by": ["alertname"],
        "routes": [
            {
                "matchers": ['team="db"'],
                "receiver": "db",
                "routes": [{"matchers": ['severity="critical"'], "receiver": "pager", "repeat_interval": "1h"}],
            },
            {"matchers": ['team="web"'], "receiver": "web", "group_wait": "10s"},
        ],
    },
}


def config() -> Config:
    return Config.model_validate(CONFIG)


def test_find_node_finds_each_path_and_nothing_else() -> None:
    tree = build_tree(config().route)
    assert find_node(tree, "route") is tree
    assert find_node(tree, "route.routes[1]") is tree.children[1]
    deep = find_node(tree, "route.routes[0].routes[0]")
    assert deep is tree.children[0].children[0]
    assert deep is not None and deep.receiver == "pager" and deep.repeat_interval == timedelta(hours=1)
    for node in tree.walk():
        assert find_node(tree, node.path) is node
    assert find_node(tree, "route.routes[2]") is None
    assert find_node(tree, "") is None
    assert find_node(tree.children[0], "route.routes[1]") is None, "searches the given subtree only"


def test_route_tree_equals_build_tree_and_is_built_once() -> None:
    cfg = config()
    tree = cfg.route_tree()
    assert isinstance(tree, RouteNode)
    assert tree == build_tree(cfg.route)
    assert cfg.route_tree() is tree, "cached on the instance"
    assert [n.receiver for n in match_routes(tree, {"team": "db", "severity": "critical"})] == ["pager"]


def test_route_tree_is_not_serialised_and_does_not_change_equality() -> None:
    fresh, built = config(), config()
    dump, dump_json = fresh.model_dump(), fresh.model_dump_json()
    built.route_tree()
    assert set(built.model_dump()) == set(Config.model_fields) == set(dump)
    assert built.model_dump() == dump and built.model_dump_json() == dump_json
    assert built == fresh and fresh == built
    assert Config.model_validate(built.model_dump()) == built


def test_copies_build_their_own_tree() -> None:
    cfg = config()
    tree = cfg.route_tree()
    for other in (cfg.snapshot(), cfg.model_copy(), cfg.model_copy(deep=True), copy.deepcopy(cfg)):
        assert other == cfg
        assert other.route_tree() == tree
    assert cfg.snapshot().route_tree() is not tree
    assert cfg.route_tree() is tree, "copying does not disturb the original's tree"


def test_route_tree_follows_a_replaced_route() -> None:
    cfg = config()
    old = cfg.route_tree()
    other = cfg.model_copy(update={"route": Route(receiver="web")})
    assert other.route_tree().receiver == "web" and other.route_tree().children == []
    cfg.route = Route(receiver="db")
    assert cfg.route_tree() is not old and cfg.route_tree().receiver == "db"


def test_route_checks_report_in_tree_order() -> None:
    route = Route.model_validate(
        {
            "receiver": "nobody",
            "continue": True,
            "routes": [
                {"receiver": "r"},
                {
                    "match": {"bad-key": "x"},
                    "mute_time_intervals": ["never"],
                    "escalation": "none",
                    "group_interval": "5m",
                    "repeat_interval": "7m",
                },
            ],
        }
    )
    assert route_issues(route, receivers={"r"}, intervals=set(), escalations=set()) == [
        ("route.continue", "the root route cannot have continue", "error"),
        ("route.receiver", "unknown receiver 'nobody'", "error"),
        (
            "route.routes[1]",
            "unreachable: route.routes[0] has no matchers and no 'continue', so it catches "
            "every alert before this route",
            "warning",
        ),
        ("route.routes[1].match.bad-key", "invalid label name 'bad-key'", "error"),
        ("route.routes[1].escalation", "unknown escalation policy 'none'", "error"),
        ("route.routes[1].mute_time_intervals[0]", "unknown time interval 'never'", "error"),
        (
            "route.routes[1].repeat_interval",
            "repeat_interval (7m) is not a multiple of group_interval (5m): it is rounded up to 10m",
            "warning",
        ),
    ]
    assert route_receivers(route) == {"nobody", "r"}
    assert legacy_key_issues({"ok_name": "1", "a.b": "2"}, "p") == [("p.a.b", "invalid label name 'a.b'", "error")]


def test_validate_references_still_reports_route_issues() -> None:
    cfg = Config.model_validate({**CONFIG, "route": {**CONFIG["route"], "receiver": "ghost"}})
    assert [str(i) for i in validate_references(cfg) if i.level == "error"] == [
        "route.receiver: unknown receiver 'ghost'"
    ]
    assert [str(i) for i in validate_references(cfg) if i.level == "warning"] == [
        "receivers[0]: receiver 'r' is not used by any route, escalation policy or environment"
    ]


def test_check_duration_is_a_validator() -> None:
    assert check_duration(None) is None
    assert check_duration("1h30m") == "1h30m" and check_duration(90) == "90"
    with pytest.raises(ValueError, match="not a duration"):
        check_duration("soon")
