"""The HTTP API ``/api/v1`` and the CLI's remote mode, against a real dev server, worker and gateway.

Three users with API tokens: carol (deployer:prod, approver:prod), bob (deployer:staging only),
alice (approver:prod); ``prod`` is ``production: true``. Carol starts a prod deployment; her own
approval is refused (four eyes), bob's too (no role), a ``by`` naming someone else too; no token
and a wrong token are 401; alice's approval lets the deployment through. The CLI in remote mode
(``TOCSIN_URL``, ``TOCSIN_TOKEN``, and a ``TEMPORAL_ADDRESS`` where nothing listens) does the same
end to end, and the workflow history holds no token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from operations.auth import hash_token, new_token
from tests.fakes.hooks import FakeHooks
from tests.fakes.oidc import FakeOidcIssuer, github_claims
from tests.helpers import address_of, cli
from tests.procs import TOCSIN, base_env, free_port, process, tocsin_gateway

USERS = {
    "carol": ["deployer:prod", "approver:prod"],
    "bob": ["deployer:staging", "deployer:live"],
    "alice": ["approver:prod"],
}


@pytest.fixture(scope="module")
def stack(dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A worker and a gateway on a config with carol, bob and alice; yields the tokens and the URL."""
    tmp = tmp_path_factory.mktemp("api")
    tokens = {name: new_token() for name in USERS}
    with FakeHooks() as hooks, FakeOidcIssuer() as idp:
        config = {
            "channels": {"console": {"type": "console"}},
            "receivers": [{"name": "deploys", "channels": ["console"]}],
            "route": {"receiver": "deploys"},
            "users": [
                {"name": name, "roles": roles, "tokens": [{"id": "laptop", "sha256": hash_token(tokens[name])}]}
                for name, roles in USERS.items()
            ],
            "oidc": [
                {
                    "issuer": idp.issuer,
                    "audience": "tocsin",
                    "jwks_url": idp.jwks_url,
                    "claims": {"repository": "acme/payments", "ref": "refs/heads/main"},
                    "as": "ci-payments",
                    "roles": ["builder", "deployer:staging"],
                }
            ],
            "environments": {
                "prod": {
                    "production": True,
                    "required_approvals": 1,
                    "four_eyes": True,
                    "approval_timeout": "10m",
                    "receiver": "deploys",
                    "hooks": {"deploy": {"url": hooks.url + "/deploy"}, "health_deadline": "20s"},
                },
                "staging": {"required_approvals": 0},
                "live": {"production": True, "required_approvals": 0},  # no deploy hook: refused at start
            },
        }
        path = tmp / "tocsin.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        env = base_env(
            TEMPORAL_ADDRESS=address_of(dev_env.client),
            TOCSIN_TASK_QUEUE=f"tq-{uuid.uuid4().hex[:8]}",
            TOCSIN_CONFIG=str(path),
            TOCSIN_HOME=str(tmp / ".tocsin"),
            TOCSIN_GATEWAY_TOKEN=new_token(),
        )
        with process([TOCSIN, "worker"], tmp, env, tmp / "worker.log"), tocsin_gateway(tmp, env) as url:
            yield {"url": url, "tokens": tokens, "hooks": hooks, "idp": idp, "cwd": tmp, "env": env}


def bearer(stack: dict[str, Any], name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack['tokens'][name]}"}


def remote_env(stack: dict[str, Any], user: str | None, token: str | None = None) -> dict[str, str]:
    """The environment of `tocsin` in remote mode; Temporal's address points where nothing listens."""
    env = {
        k: v
        for k, v in base_env().items()
        if k not in ("TOCSIN_TOKEN", "TOCSIN_OIDC_TOKEN", "TOCSIN_CONFIG", "ACTIONS_ID_TOKEN_REQUEST_URL")
    }
    env.update(TOCSIN_URL=stack["url"], TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    if token is not None or user is not None:
        env["TOCSIN_TOKEN"] = token if token is not None else stack["tokens"][user]
    return env


def run_remote(
    stack: dict[str, Any], user: str | None, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = remote_env(stack, user, token)
    return subprocess.run([TOCSIN, *args], capture_output=True, text=True, env=env, cwd=stack["cwd"], timeout=60)


def decoded(node: Any) -> str:
    """The history as text, every payload's (base64) data decoded."""
    parts: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "data" and isinstance(value, str):
                    parts.append(base64.b64decode(value).decode("utf-8", "replace"))
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
        else:
            parts.append(str(item))
    return "\n".join(parts)


async def until_stage(client: httpx.AsyncClient, headers: dict[str, str], wid: str, *stages: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    last: Any = None
    while time.monotonic() < deadline:
        resp = await client.get(f"/api/v1/deployments/{wid}", headers=headers)
        if resp.status_code == 200:
            last = resp.json()
            if last["stage"] in stages:
                return dict(last)
        await asyncio.sleep(0.2)
    raise AssertionError(f"{wid} never reached {stages}: {last}")


async def test_api_prod_deployment_needs_a_second_verified_approver(
    dev_env: WorkflowEnvironment, stack: dict[str, Any]
) -> None:
    service = f"pay-{uuid.uuid4().hex[:6]}"
    wid = f"deploy/{service}/prod/1.2.3"
    body = {"service": service, "env": "prod", "version": "1.2.3"}
    async with httpx.AsyncClient(base_url=stack["url"], timeout=60) as client:
        # no credential, a wrong one: 401 with a challenge, and the token is never echoed
        resp = await client.post("/api/v1/deployments", json=body)
        assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer"), resp.text
        assert set(resp.json()) == {"error", "field"}
        wrong = "tocsin_" + "x" * 43
        resp = await client.post("/api/v1/deployments", json=body, headers={"Authorization": f"Bearer {wrong}"})
        assert resp.status_code == 401 and "www-authenticate" in resp.headers and wrong not in resp.text

        # bad input: 400 for a body that is not JSON, 422 naming the field
        resp = await client.post(
            "/api/v1/deployments",
            content=b"{not json",
            headers={**bearer(stack, "carol"), "Content-Type": "application/json"},
        )
        assert resp.status_code == 400 and resp.json()["error"], resp.text
        resp = await client.post("/api/v1/deployments", json={**body, "service": "a b"}, headers=bearer(stack, "carol"))
        assert resp.status_code == 422 and resp.json()["field"] == "service", resp.text
        # bob may not deploy to prod
        resp = await client.post("/api/v1/deployments", json=body, headers=bearer(stack, "bob"))
        assert resp.status_code == 403 and "deployer:prod" in resp.json()["error"], resp.text

        # carol starts it (201), once (200 the second time)
        resp = await client.post("/api/v1/deployments", json={**body, "by": "carol"}, headers=bearer(stack, "carol"))
        assert resp.status_code == 201 and resp.json() == {"id": wid, "started": True}, resp.text
        resp = await client.post("/api/v1/deployments", json=body, headers=bearer(stack, "carol"))
        assert resp.status_code == 200 and resp.json()["started"] is False, resp.text
        await until_stage(client, bearer(stack, "carol"), wid, "pending_approval")
        resp = await client.get(f"/api/v1/deployments/{wid}/result", headers=bearer(stack, "carol"))
        assert resp.status_code == 202 and resp.json() == {"id": wid, "status": "running"}, resp.text

        approve = f"/api/v1/deployments/{wid}/approve"
        resp = await client.post(approve, json={}, headers=bearer(stack, "carol"))
        assert resp.status_code == 403 and "carol" in resp.json()["error"], resp.text  # four eyes
        resp = await client.post(approve, json={}, headers=bearer(stack, "bob"))
        assert resp.status_code == 403 and "approver:prod" in resp.json()["error"], resp.text  # no role
        resp = await client.post(approve, json={"by": "carol"}, headers=bearer(stack, "alice"))
        assert resp.status_code == 403 and "credential" in resp.json()["error"], resp.text  # by is not alice
        resp = await client.post(approve, json={})
        assert resp.status_code == 401
        resp = await client.post(approve, json={}, headers={"Authorization": "Bearer nope"})
        assert resp.status_code == 401
        state = await until_stage(client, bearer(stack, "carol"), wid, "pending_approval")
        assert state["approvals"] == []

        resp = await client.post(approve, json={"comment": "lgtm"}, headers=bearer(stack, "alice"))
        assert resp.status_code == 200 and resp.json()["accepted"] is True, resp.text
        resp = await client.get(f"/api/v1/deployments/{wid}/result", params={"wait": 25}, headers=bearer(stack, "bob"))
        assert resp.status_code == 200 and resp.json()["outcome"] == "deployed", resp.text
        assert [a["by"] for a in resp.json()["approvals"]] == ["alice"]
    assert [c.body["version"] for c in stack["hooks"].calls_to("/deploy")][-1:] == ["1.2.3"]

    # the approval is recorded with its verified identity; no token is in the history
    history = decoded(json.loads((await dev_env.client.get_workflow_handle(wid).fetch_history()).to_json()))
    assert '"alice"' in history and '"laptop"' in history and '"token"' in history
    for token in stack["tokens"].values():
        assert token not in history
        assert token.removeprefix("tocsin_") not in history


async def test_api_incident_ids_with_slashes_and_404(stack: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=stack["url"], timeout=30) as client:
        resp = await client.get("/api/v1/incidents/incident/does-not-exist", headers=bearer(stack, "alice"))
        assert resp.status_code == 404 and resp.json()["field"] is None, resp.text
        resp = await client.get("/api/v1/no/such/route", headers=bearer(stack, "alice"))
        assert resp.status_code == 404 and set(resp.json()) == {"error", "field"}
        resp = await client.get("/api/v1/silences", headers=bearer(stack, "alice"))
        assert resp.status_code == 200 and "silences" in resp.json(), resp.text


def test_openapi_lists_the_routes(stack: dict[str, Any]) -> None:
    resp = httpx.get(f"{stack['url']}/api/v1/openapi.json", timeout=30)
    assert resp.status_code == 200
    paths = resp.json()["paths"]
    for path, method in (
        ("/api/v1/builds", "post"),
        ("/api/v1/notify", "post"),
        ("/api/v1/alerts", "post"),
        ("/api/v1/incidents/{incident_id}/ack", "post"),
        ("/api/v1/incidents/{incident_id}/snooze", "post"),
        ("/api/v1/deployments", "post"),
        ("/api/v1/deployments/{deployment_id}", "get"),
        ("/api/v1/deployments/{deployment_id}/approve", "post"),
        ("/api/v1/deployments/{deployment_id}/reject", "post"),
        ("/api/v1/deployments/{deployment_id}/abort", "post"),
        ("/api/v1/rollbacks", "post"),
        ("/api/v1/silences", "post"),
        ("/api/v1/silences/{silence_id}/expire", "post"),
        ("/api/v1/status", "get"),
        ("/api/v1/audit", "get"),
        ("/api/v1/audit/verify", "get"),
    ):
        assert method in paths.get(path, {}), (path, sorted(paths))
    assert "/webhooks/alertmanager" not in paths


async def test_cli_remote_mode_end_to_end(stack: dict[str, Any]) -> None:
    service = f"shop-{uuid.uuid4().hex[:6]}"
    deploy = subprocess.Popen(
        [TOCSIN, "deploy", "--service", service, "--env", "prod", "--version", "v2", "--by", "carol", "--wait"],
        env=remote_env(stack, "carol"),
        cwd=stack["cwd"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert deploy.stdout is not None
        wid = deploy.stdout.readline().strip()
        assert wid == f"deploy/{service}/prod/v2", deploy.stderr.read() if deploy.poll() is not None else wid
        async with httpx.AsyncClient(base_url=stack["url"], timeout=30) as client:
            await until_stage(client, bearer(stack, "carol"), wid, "pending_approval")

        # refusals exit as in direct mode (approve refused: 2), with the reason
        done = await asyncio.to_thread(run_remote, stack, "carol", "approve", wid, "--by", "carol")
        assert done.returncode == 2 and "approve refused" in done.stderr, done.stderr
        done = await asyncio.to_thread(run_remote, stack, "bob", "approve", wid, "--by", "bob")
        assert done.returncode == 2 and "approver:prod" in done.stderr, done.stderr
        done = await asyncio.to_thread(run_remote, stack, "alice", "approve", wid, "--by", "carol")
        assert done.returncode == 2 and "credential" in done.stderr, done.stderr
        # not authenticated: exit 1 with the reason, the token never printed
        done = await asyncio.to_thread(run_remote, stack, None, "approve", wid, "--by", "alice")
        assert done.returncode == 1 and "TOCSIN_TOKEN" in done.stderr, done.stderr
        wrong = "tocsin_" + "y" * 43
        done = await asyncio.to_thread(run_remote, stack, None, "approve", wid, "--by", "alice", token=wrong)
        assert done.returncode == 1 and "not authenticated" in done.stderr and wrong not in done.stderr, done.stderr
        # a field only the server can judge (its environment has no deploy hook): exit 2 naming it
        done = await asyncio.to_thread(
            run_remote, stack, "bob", "deploy", "--service", service, "--env", "live", "--version", "v3", "--by", "bob"
        )
        assert done.returncode == 2 and "--env" in done.stderr and "hooks.deploy" in done.stderr, done.stderr

        # without TOCSIN_URL the CLI talks to Temporal directly, unverified: no approvals in production
        done = await asyncio.to_thread(cli, "approve", wid, "--by", "alice", env=stack["env"], cwd=stack["cwd"])
        assert done.returncode == 2 and "not verified" in done.stderr, done.stderr

        done = await asyncio.to_thread(run_remote, stack, "alice", "approve", wid, "--by", "alice", "--comment", "ok")
        assert done.returncode == 0 and "approved by alice" in done.stdout, done.stderr
        out, err = await asyncio.to_thread(deploy.communicate, timeout=60)
        assert deploy.returncode == 0, err
        assert "deployed" in err and "alice" in err, err
    finally:
        if deploy.poll() is None:
            deploy.kill()
            deploy.wait()

    done = await asyncio.to_thread(run_remote, stack, "bob", "status", "--json")
    assert done.returncode == 0, done.stderr
    done = await asyncio.to_thread(run_remote, stack, "alice", "audit", "export", "--service", service)
    assert done.returncode == 0 and wid in done.stdout and "alice" in done.stdout, done.stderr
    for token in stack["tokens"].values():
        assert token not in done.stdout
    # the gateway's refusals (never in Temporal) are in the journal, sealed, with the verified actor
    done = await asyncio.to_thread(
        run_remote, stack, "alice", "audit", "export", "--action", "refused", "--actor", "bob"
    )
    assert done.returncode == 0, done.stderr
    refused = [json.loads(line) for line in done.stdout.splitlines()]
    mine = [r for r in refused if r["journal"]["key"].startswith("refusal/")]
    approvals = [r for r in mine if r["detail"]["role"] == "approver:prod"]  # bob's other refusals may come first
    assert approvals, refused
    assert approvals[0]["identity"]["verified"] is True and approvals[0]["identity"]["method"] == "token"
    done = await asyncio.to_thread(run_remote, stack, "bob", "audit", "verify")
    assert done.returncode == 0 and "chain intact" in done.stdout, done.stderr


async def test_oidc_id_tokens_through_the_api_and_the_cli(stack: dict[str, Any]) -> None:
    """A CI job proves itself with its OIDC ID token: no API token, no path to Temporal."""
    idp: FakeOidcIssuer = stack["idp"]
    service = f"ci-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=stack["url"], timeout=30) as client:
        headers = {"Authorization": f"Bearer {idp.mint(github_claims())}"}
        body = {"service": service, "env": "staging", "version": "7", "by": "ci-payments"}
        resp = await client.post("/api/v1/deployments", json=body, headers=headers)
        assert resp.status_code == 201, resp.text
        resp = await client.post("/api/v1/deployments", json={**body, "env": "prod"}, headers=headers)
        assert resp.status_code == 403 and "deployer:prod" in resp.json()["error"], resp.text
        forged = idp.mint(github_claims(repository="evil/repo"))
        resp = await client.post("/api/v1/deployments", json=body, headers={"Authorization": f"Bearer {forged}"})
        assert resp.status_code == 401 and "repository" in resp.json()["error"] and forged not in resp.text

    build = ("build", "--repo", "acme/payments", "--branch", "main", "--commit", "abc1234", "--status", "success")
    env = {**remote_env(stack, None), **idp.actions_env()}
    done = await asyncio.to_thread(
        subprocess.run, [TOCSIN, "--oidc", "github", *build], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "pipeline/acme/payments/main", done.stderr
    env = {**remote_env(stack, None), "TOCSIN_OIDC_TOKEN": idp.mint(github_claims(ref="refs/heads/feature"))}
    done = await asyncio.to_thread(
        subprocess.run, [TOCSIN, *build], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 1 and "not authenticated" in done.stderr and "ref" in done.stderr, done.stderr
