"""Inhibition with Alertmanager's semantics (``inhibit/inhibit.go``)."""

from __future__ import annotations

from typing import Any

import pytest

from operations.config import ConfigError, parse_config
from workflows.config import InhibitRule
from workflows.policy.inhibit import inhibited, inhibited_by, parse_rule

CRITICAL_MUTES_WARNING = InhibitRule(
    source_matchers=['severity="critical"'], target_matchers=['severity="warning"'], equal=["alertname", "cluster"]
)


def test_source_inhibits_target_when_equal_labels_agree() -> None:
    firing = [{"alertname": "Down", "cluster": "eu", "severity": "critical"}]
    target = {"alertname": "Down", "cluster": "eu", "severity": "warning"}
    assert inhibited(target, firing, [CRITICAL_MUTES_WARNING])
    assert not inhibited(target | {"cluster": "us"}, firing, [CRITICAL_MUTES_WARNING])
    assert not inhibited(target | {"severity": "info"}, firing, [CRITICAL_MUTES_WARNING]), "target must match"
    assert not inhibited(target, [firing[0] | {"severity": "error"}], [CRITICAL_MUTES_WARNING]), "source must match"


def test_missing_equal_label_counts_as_empty() -> None:
    rule = InhibitRule(
        source_matchers=['severity="critical"'], target_matchers=['severity="warning"'], equal=["cluster"]
    )
    assert inhibited({"severity": "warning"}, [{"severity": "critical"}], [rule]), "missing on both sides is equal"
    assert inhibited({"severity": "warning", "cluster": ""}, [{"severity": "critical"}], [rule])
    assert not inhibited({"severity": "warning"}, [{"severity": "critical", "cluster": "eu"}], [rule])


def test_an_alert_never_inhibits_itself() -> None:
    rule = InhibitRule(source_matchers=['alertname="NodeDown"'], target_matchers=['alertname="NodeDown"'])
    alert = {"alertname": "NodeDown", "instance": "a"}
    peer = {"alertname": "NodeDown", "instance": "b"}
    assert not inhibited(alert, [alert], [rule])
    # Two-sided match: sources that also match the target side are disregarded, peers included.
    assert not inhibited(alert, [alert, peer], [rule])


def test_overlapping_rule_only_the_other_side_inhibits() -> None:
    rule = InhibitRule(
        source_matchers=['severity=~"critical|warning"'], target_matchers=['severity="warning"'], equal=["alertname"]
    )
    warning = {"alertname": "Disk", "severity": "warning", "instance": "a"}
    other_warning = {"alertname": "Disk", "severity": "warning", "instance": "b"}
    critical = {"alertname": "Disk", "severity": "critical"}
    assert not inhibited(warning, [warning, other_warning], [rule])
    assert inhibited(warning, [warning, other_warning, critical], [rule])
    assert inhibited_by(warning, [warning, other_warning, critical], [rule]) == [(0, critical)]


def test_legacy_match_keys_and_anchored_regexes() -> None:
    rule = {
        "source_match": {"alertname": "ClusterDown"},
        "source_match_re": {"service": "pay.*"},
        "target_match": {"severity": "warning"},
        "target_match_re": {"service": "pay"},
    }
    source = {"alertname": "ClusterDown", "service": "payments"}
    assert inhibited({"severity": "warning", "service": "pay"}, [source], [rule])
    assert not inhibited({"severity": "warning", "service": "payments"}, [source], [rule]), "regex is anchored"
    parsed = parse_rule(rule)
    assert [(m.name, m.op, m.value) for m in parsed.source] == [
        ("alertname", "=", "ClusterDown"),
        ("service", "=~", "^(?:pay.*)$"),
    ]


def test_any_rule_and_empty_inputs() -> None:
    rules = [
        InhibitRule(source_matchers=['a="1"'], target_matchers=['b="1"']),
        InhibitRule(source_matchers=['c="1"'], target_matchers=['b="1"']),
    ]
    assert inhibited({"b": "1"}, [{"c": "1"}], rules)
    assert inhibited_by({"b": "1"}, [{"c": "1"}, {"a": "1"}], rules) == [(0, {"a": "1"}), (1, {"c": "1"})]
    assert not inhibited({"b": "1"}, [], rules)
    assert not inhibited({"b": "1"}, [{"c": "1"}], [])


def test_empty_matcher_sides_match_everything_as_in_alertmanager() -> None:
    rule = InhibitRule(source_matchers=['alertname="Maintenance"'], equal=["cluster"])
    assert inhibited({"alertname": "X", "cluster": "eu"}, [{"alertname": "Maintenance", "cluster": "eu"}], [rule])


def config_issues(rules: list[dict[str, Any]]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config({"receivers": [{"name": "r"}], "route": {"receiver": "r"}, "inhibit_rules": rules})
    return [str(i) for i in err.value.issues]


def test_bad_inhibit_rules_name_their_key_path() -> None:
    found = "\n".join(
        config_issues(
            [
                {"source_matchers": ['severity="critical"', 'a=~"("'], "target_match_re": {"x": "a**"}},
                {"target_matchers": ['a="unterminated']},
                {"source_match": {"bad-name": "x"}, "equal": [""]},
            ]
        )
    )
    assert "inhibit_rules[0].source_matchers[1]: bad regex: missing closing )" in found
    assert "inhibit_rules[0].target_match_re.x: bad regex: invalid nested repetition operator" in found
    assert "inhibit_rules[1].target_matchers[0]: matcher value contains unescaped double quote" in found
    assert "inhibit_rules[2].equal: invalid label name '' in equal list" in found


def test_legacy_label_names_must_be_classic() -> None:
    found = config_issues([{"source_match": {"bad-name": "x"}}])
    assert found == ["inhibit_rules[0].source_match.bad-name: invalid label name 'bad-name'"]
