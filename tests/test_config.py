"""Config loading: schema, key paths in errors, ${ENV} references, defaults, reload."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from activities.config import ConfigError, ConfigStore, load_config_file, resolve_env
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
    path = write_config({"channels": {"c": {"type": "console"}}, "receivers": [{"name": "r", "channels": ["c"]}],
                         "route": {"receiver": "r"}})
    monkeypatch.setenv("TOCSIN_CONFIG", str(path))
    assert load_config_file(None).route.receiver == "r"


def test_errors_name_key_paths(write_config) -> None:  # type: ignore[no-untyped-def]
    found = issues_of(write_config, {
        "channels": {"c": {"type": "console"}},
        "receivers": [{"name": "r", "channels": ["c", "ghost"]}],
        "route": {"receiver": "r", "routes": [{"receiver": "r"}, {"receiver": "nowhere"}]},
    })
    assert "receivers[0].channels[1]: unknown channel 'ghost'" in found
    assert "route.routes[1].receiver: unknown receiver 'nowhere'" in found


def test_schema_errors_name_key_paths(write_config) -> None:  # type: ignore[no-untyped-def]
    found = issues_of(write_config, {
        "channels": {"c": {"type": "carrier-pigeon"}},
        "route": {"receiver": "r", "group_wait": "soon", "routes": [{"matchers": ['a=~"("']}]},
        "bogus": 1,
    })
    joined = "\n".join(found)
    assert "channels.c.type:" in joined
    assert "route.group_wait: not a duration: 'soon'" in joined
    assert "route.routes[0].matchers: bad regex" in joined
    assert "bogus: Extra inputs are not permitted" in joined


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("route: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "missing.yaml")


def test_env_references_resolved_only_on_demand(write_config, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    path = write_config({"channels": {"s": {"type": "slack", "token": "${SLACK_BOT_TOKEN}", "channel": "#ci"}},
                         "receivers": [{"name": "r", "channels": ["s"]}], "route": {"receiver": "r"}})
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
    base = {"channels": {"c": {"type": "console"}}, "receivers": [{"name": "r1", "channels": ["c"]}],
            "route": {"receiver": "r1"}}
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
