"""The production-like stack: docker-compose.temporal.yml, the Dockerfile and deploy/.

The compose file is checked by Compose itself (``docker compose config``, or
Debian's ``docker-compose`` v1 where the v2 plugin is absent), so what is
asserted is what Compose would run. No Docker daemon is needed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from operations.config import ConfigError, load_config_file
from workflows.policy.durations import parse_duration
from workflows.search import ALL_KEYS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.temporal.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"

INSTALL_HINT = "run `scripts/install-system-deps.sh` as root (installs Debian's docker-compose, prometheus and prometheus-alertmanager)"

STACK = ("postgresql", "temporal", "temporal-ui", "tocsin-worker", "tocsin-gateway")
SECRETS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SENDGRID_API_KEY",
    "PAGERDUTY_ROUTING_KEY",
    "DISCORD_WEBHOOK_URL",
    "TEAMS_WEBHOOK_URL",
    "GITHUB_TOKEN",
    "JIRA_TOKEN",
    "TWILIO_AUTH_TOKEN",
)


# ---------------------------------------------------------------- helpers


def _referenced_variables(text: str) -> set[str]:
    """``${NAME}``, ``${NAME:-x}``… interpolated by Compose (``$${…}`` is a literal ``$``)."""
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def _dummy(name: str) -> str:
    return f"dummy-{name.lower().replace('_', '-')}"


def _compose_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    for name in _referenced_variables(COMPOSE_FILE.read_text(encoding="utf-8")):
        env[name] = _dummy(name)
    return env


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


@lru_cache(maxsize=1)
def _rendered() -> tuple[str, dict[str, Any]]:
    """(which Compose, the resolved model) — fails the calling test when no Compose exists."""
    env = _compose_env()
    if shutil.which("docker") and _run(["docker", "compose", "version"], env).returncode == 0:
        done = _run(["docker", "compose", "-f", str(COMPOSE_FILE), "config", "--format", "json"], env)
        assert done.returncode == 0, f"docker compose config rejected the file:\n{done.stderr}"
        return "docker compose (v2)", json.loads(done.stdout)
    if shutil.which("docker-compose"):
        done = _run(["docker-compose", "-f", str(COMPOSE_FILE), "config"], env)
        assert done.returncode == 0, f"docker-compose config rejected the file:\n{done.stderr}"
        return "docker-compose (v1)", yaml.safe_load(done.stdout)
    pytest.fail(
        "neither `docker compose` (v2) nor `docker-compose` (v1) is installed: "
        f"{INSTALL_HINT}, or install the Docker Compose v2 plugin",
        pytrace=False,
    )


def services() -> dict[str, dict[str, Any]]:
    return _rendered()[1]["services"]


def _published(service: dict[str, Any]) -> dict[int, int]:
    """published host port -> container port, from short or long syntax."""
    out: dict[int, int] = {}
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published") not in (None, ""):
                out[int(port["published"])] = int(port["target"])
        else:
            parts = str(port).split("/")[0].split(":")
            if len(parts) >= 2:
                out[int(parts[-2])] = int(parts[-1])
    return out


def _depends(service: dict[str, Any]) -> dict[str, str | None]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: None for name in deps}
    return {name: (spec or {}).get("condition") for name, spec in deps.items()}


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """container path -> (source, read-only), from short or long syntax."""
    out: dict[str, tuple[str, bool]] = {}
    for vol in service.get("volumes") or []:
        if isinstance(vol, dict):
            out[vol["target"]] = (str(vol.get("source", "")), bool(vol.get("read_only")))
        else:
            parts = str(vol).split(":")
            source, target = parts[0], parts[1]
            out[target] = (source, len(parts) > 2 and "ro" in parts[2].split(","))
    return out


def _environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict((item.split("=", 1) + [None])[:2] for item in env)  # type: ignore[misc]
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def _words(value: Any) -> str:
    return " ".join(value) if isinstance(value, list) else str(value or "")


# ---------------------------------------------------------------- compose


def test_compose_file_is_valid_and_has_the_stack() -> None:
    which, model = _rendered()
    missing = [name for name in STACK if name not in model["services"]]
    assert not missing, f"{which}: services missing from {COMPOSE_FILE.name}: {missing}"


def test_temporal_runs_on_postgres() -> None:
    svc = services()
    assert svc["postgresql"]["image"].startswith("postgres:16")
    assert svc["postgresql"].get("healthcheck", {}).get("test"), "postgresql needs a healthcheck"
    assert any(m[0] for m in _mounts(svc["postgresql"]).values()), "postgresql needs a data volume"
    assert _depends(svc["temporal"]).get("postgresql") == "service_healthy"
    env = _environment(svc["temporal"])
    assert env.get("DB") == "postgres12" or env.get("SQL_PLUGIN") == "postgres12"
    assert _published(svc["temporal"]).get(7233) == 7233


def test_ui_on_8233() -> None:
    ui = services()["temporal-ui"]
    assert ui["image"].startswith("temporalio/ui:")
    assert _published(ui).get(8233) == 8080
    assert _environment(ui).get("TEMPORAL_ADDRESS") == "temporal:7233"


def test_images_are_pinned() -> None:
    for name, svc in services().items():
        if "build" in svc:
            continue
        image = svc["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest", f"{name}: image {image!r} should have a pinned tag"


@pytest.mark.parametrize("name", ["tocsin-worker", "tocsin-gateway"])
def test_tocsin_services_build_from_the_repo(name: str) -> None:
    svc = services()[name]
    build = svc.get("build")
    assert build, f"{name} must be built from the repository"
    context = build if isinstance(build, str) else build["context"]
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert Path(context).resolve() == ROOT
    assert (Path(context) / dockerfile).resolve() == DOCKERFILE
    assert svc.get("restart") == "unless-stopped"
    assert _depends(svc).get("temporal") == "service_healthy"

    env = _environment(svc)
    assert env.get("TEMPORAL_ADDRESS") == "temporal:7233"
    assert env.get("TOCSIN_CONFIG") == "/etc/tocsin/tocsin.yaml"
    for secret in SECRETS:
        assert env.get(secret) == _dummy(secret), f"{name}: {secret} is not passed through from the host"
    if name == "tocsin-gateway":  # the gateway alone needs its token
        assert env.get("TOCSIN_GATEWAY_TOKEN") == _dummy("TOCSIN_GATEWAY_TOKEN"), "the gateway's token is not passed"
    else:
        assert "TOCSIN_GATEWAY_TOKEN" not in env, f"{name} has no use for the gateway's token"

    source, read_only = _mounts(svc)["/etc/tocsin/tocsin.yaml"]
    assert Path(source).resolve() == DEPLOY / "tocsin.yaml" and read_only


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_compose_requires_the_gateway_token(value: str | None) -> None:
    """The gateway listens on 0.0.0.0: Compose refuses to render the stack without TOCSIN_GATEWAY_TOKEN."""
    which = _rendered()[0]
    env = _compose_env()
    if value is None:
        del env["TOCSIN_GATEWAY_TOKEN"]
    else:
        env["TOCSIN_GATEWAY_TOKEN"] = value
    argv = ["docker-compose"] if which.endswith("(v1)") else ["docker", "compose"]
    done = _run([*argv, "-f", str(COMPOSE_FILE), "config"], env)
    assert done.returncode != 0, f"{which} rendered the stack without TOCSIN_GATEWAY_TOKEN"
    assert "TOCSIN_GATEWAY_TOKEN" in done.stderr + done.stdout


def test_worker_and_gateway_commands() -> None:
    svc = services()
    assert _words(svc["tocsin-worker"].get("command")).split()[:2] == ["tocsin", "worker"]
    gateway = _words(svc["tocsin-gateway"].get("command")).split()
    assert gateway[:2] == ["tocsin", "gateway"]
    assert "0.0.0.0" in gateway, "inside a container the gateway must listen on all interfaces"


def test_gateway_exposes_8080_with_a_healthcheck() -> None:
    gw = services()["tocsin-gateway"]
    assert _published(gw).get(8080) == 8080
    probe = _words(gw.get("healthcheck", {}).get("test"))
    assert "/healthz" in probe and "8080" in probe
    assert "curl" not in probe and "wget" not in probe, "python:3.11-slim has neither curl nor wget"


def test_search_attributes_are_registered_by_a_one_shot() -> None:
    shots = [svc for svc in services().values() if str(svc.get("image", "")).startswith("temporalio/admin-tools:")]
    assert shots, "an admin-tools one-shot should create Tocsin's search attributes"
    script = " ".join(_words(s.get("entrypoint")) + " " + _words(s.get("command")) for s in shots)
    assert "search-attribute create" in script and "Keyword" in script
    for key in ALL_KEYS:
        assert key.name in script, f"{key.name} is not registered by the compose stack"


# ---------------------------------------------------------------- Dockerfile


def _final_stage(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _exec_form(value: str) -> list[str]:
    try:
        parsed = json.loads(value)
    except ValueError:
        return value.split()
    return [str(p) for p in parsed]


def test_dockerfile_runs_tocsin_as_non_root() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"python:3\.11-slim", text), "the image should be based on python:3.11-slim"
    stage = _final_stage(text)
    program = [(w, _exec_form(v)) for w, v in stage if w in ("ENTRYPOINT", "CMD")]
    assert program, "the Dockerfile needs a CMD or ENTRYPOINT"
    words = [token for _, argv in program for token in argv]
    assert words and Path(words[0]).name == "tocsin", f"CMD/ENTRYPOINT should run tocsin, got {words}"
    assert "worker" in words, "the default command should be `tocsin worker`"
    users = [v for w, v in stage if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image should run as a non-root user"


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".git", ".venv", ".tocsin", ".pytest_cache", ".hypothesis"):
        assert entry in ignored, f".dockerignore should list {entry}"


# ---------------------------------------------------------------- deploy/


def test_example_tocsin_config_loads() -> None:
    path = DEPLOY / "tocsin.yaml"
    try:
        config = load_config_file(path)
    except ConfigError as exc:  # pragma: no cover - the failure message is the point
        pytest.fail(f"{path} does not load: " + "; ".join(str(i) for i in exc.issues), pytrace=False)

    contract_keys = {
        "channels",
        "receivers",
        "route",
        "inhibit_rules",
        "time_intervals",
        "escalation_policies",
        "environments",
        "rollback_triggers",  # the incidents issue's addition
        "dead_letter",  # issue 10's: the receiver told about undeliverable notifications
        "users",  # issue 11's: who may act (token hashes only), and CI identities by OIDC
        "oidc",
        "auth",
        "pipelines",  # issue 14's: watched branches, escalation, health thresholds, reports
    }
    assert set(yaml.safe_load(path.read_text(encoding="utf-8"))) <= contract_keys

    assert config.channels["ci-builds"].type == "slack"
    assert config.channels["ci-builds"].settings()["token"] == "${SLACK_BOT_TOKEN}"
    assert any(ch.type == "console" for ch in config.channels.values())
    names = {r.name for r in config.receivers}
    assert {"builds", "critical", "senior", "cto", "emergency", "blackhole"} <= names
    assert config.receiver("builds").backup  # type: ignore[union-attr]
    assert config.receiver("blackhole").channels == []  # type: ignore[union-attr]

    ladder = [(lvl.after, lvl.receiver) for lvl in config.escalation_policies["default"].levels]
    assert ladder == [("0m", "critical"), ("5m", "senior"), ("10m", "cto"), ("15m", "emergency")]
    assert {ti.name for ti in config.time_intervals} >= {"market-hours", "off-hours"}
    assert any(m == 'kind="build"' for r in config.route.routes for m in r.matchers)


def test_example_alertmanager_config_points_at_the_gateway() -> None:
    path = DEPLOY / "alertmanager.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    hooks = [hook for rcv in data["receivers"] for hook in rcv.get("webhook_configs", [])]
    assert [h["url"] for h in hooks] == ["http://tocsin-gateway:8080/webhooks/alertmanager"]
    auth = hooks[0]["http_config"]["authorization"]
    assert auth.get("type", "Bearer") == "Bearer" and (auth.get("credentials") or auth.get("credentials_file"))
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail(f"amtool (Debian prometheus-alertmanager) is not installed: {INSTALL_HINT}", pytrace=False)
    done = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------- audit (issue 13)


def test_namespace_retention_is_90_days() -> None:
    """The auto-setup creates Tocsin's namespace keeping closed workflows 90 days, not the image's 24 h."""
    env = _environment(services()["temporal"])
    assert env.get("DEFAULT_NAMESPACE") is not None
    assert parse_duration(str(env.get("DEFAULT_NAMESPACE_RETENTION"))) >= timedelta(days=90)


def test_audit_journal_database_is_created_and_passed_to_tocsin() -> None:
    svc = services()
    init = svc["tocsin-audit-db"]
    assert init["image"].startswith("postgres:16") and init.get("restart") == "no"
    assert _depends(init).get("postgresql") == "service_healthy"
    script = _words(init.get("entrypoint")) + " " + _words(init.get("command"))
    assert "CREATE DATABASE tocsin_audit" in script and "\\gexec" in script, "creation must be idempotent"
    assert _environment(init).get("PGHOST") == "postgresql"
    for name in ("tocsin-worker", "tocsin-gateway"):
        dsn = str(_environment(svc[name]).get("TOCSIN_AUDIT_DSN"))
        assert re.fullmatch(r"postgresql://tocsin:[^@]+@postgresql:5432/tocsin_audit", dsn), f"{name}: {dsn}"
        assert _depends(svc[name]).get("tocsin-audit-db") == "service_completed_successfully"


# ---------------------------------------------------------------- observability (issue 15)


def _flag(words: list[str], name: str) -> str | None:
    for i, word in enumerate(words):
        if word == name and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def test_prometheus_scrapes_the_worker_and_the_gateway_with_the_rules() -> None:
    svc = services()
    port = _flag(_words(svc["tocsin-worker"].get("command")).split(), "--metrics-port")
    assert port and int(port) > 0, "the worker must serve /metrics for Prometheus"
    prom = svc["prometheus"]
    assert prom["image"].startswith("prom/prometheus:")
    mounts = _mounts(prom)
    config_path = _flag(_words(prom.get("command")).split(), "--config.file") or "/etc/prometheus/prometheus.yml"
    source, read_only = mounts[config_path]
    assert Path(source).resolve() == DEPLOY / "prometheus" / "prometheus.yml" and read_only
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]] for job in config["scrape_configs"]
    }
    assert targets["tocsin-worker"] == [f"tocsin-worker:{port}"]
    assert targets["tocsin-gateway"] == ["tocsin-gateway:8080"]
    for rule_file in config["rule_files"]:
        inside = str(Path(config_path).parent / rule_file)
        assert Path(mounts[inside][0]).resolve() == DEPLOY / "prometheus" / "tocsin-rules.yml"
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.fail(f"promtool is not installed: {INSTALL_HINT}", pytrace=False)
    done = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    svc = services()
    grafana = svc["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    mounts = _mounts(grafana)
    assert Path(mounts["/etc/grafana/provisioning"][0]).resolve() == DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text(encoding="utf-8"))
    (source,) = sources["datasources"]
    assert (
        source["type"] == "prometheus" and source["url"] == f"http://prometheus:{_published(svc['prometheus'])[9090]}"
    )
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/tocsin.yml").read_text(encoding="utf-8"))
    folder = providers["providers"][0]["options"]["path"]
    dashboards = [
        target for target, (src, _) in mounts.items() if Path(src).resolve() == DEPLOY / "grafana" / "tocsin.json"
    ]
    assert dashboards and all(str(Path(d).parent) == folder for d in dashboards)
    assert _environment(grafana).get("GF_SECURITY_ADMIN_PASSWORD") == _dummy("GRAFANA_ADMIN_PASSWORD")


def test_compose_requires_the_grafana_password() -> None:
    which = _rendered()[0]
    env = _compose_env()
    del env["GRAFANA_ADMIN_PASSWORD"]
    argv = ["docker-compose"] if which.endswith("(v1)") else ["docker", "compose"]
    done = _run([*argv, "-f", str(COMPOSE_FILE), "config"], env)
    assert done.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in done.stderr + done.stdout


def test_dashboard_model() -> None:
    dash = json.loads((DEPLOY / "grafana" / "tocsin.json").read_text(encoding="utf-8"))
    assert dash["schemaVersion"] >= 39 and dash["uid"] == "tocsin"
    (var,) = [v for v in dash["templating"]["list"] if v["name"] == "datasource"]
    assert var["type"] == "datasource" and var["query"] == "prometheus"
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows == ["Pipelines", "Deployments and DORA keys", "Incidents", "Notifications"]
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert {p["type"] for p in panels} == {"stat", "timeseries"}
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
    titles = {p["title"] for p in panels}
    for seed in ("Build success rate", "Average build duration", "Deployment frequency", "MTTR", "Pipeline queue time"):
        assert seed in titles, seed
