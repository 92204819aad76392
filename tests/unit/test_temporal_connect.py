"""How Tocsin connects to Temporal: the Temporal CLI's environment configuration, no server needed."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.service import TLSConfig

from workers.settings import Settings
from workers.temporal import TemporalUnavailable, connect, connect_options, describe

KEY = "tmprl-api-key-DO-NOT-PRINT-4f9c"

PROFILES = f"""
[profile.default]
address = "default.example:7233"

[profile.cloud]
address = "acme.a1b2c.tmprl.cloud:7233"
namespace = "acme.a1b2c"
api_key = "{KEY}"

[profile.grpc]
address = "grpc.example:7233"
grpc_meta = {{ team = "sre" }}
"""

VARIABLES = (
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS",
    "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_SERVER_NAME",
    "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION",
    "TEMPORAL_PROFILE",
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "absent.toml"))


@pytest.fixture
def profiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "temporal.toml"
    path.write_text(PROFILES)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(path))
    return path


def test_defaults_are_tocsins_own() -> None:
    settings = Settings()
    assert (settings.address, settings.namespace) == ("localhost:7233", "default")
    assert connect_options(settings) == {"target_host": "localhost:7233", "namespace": "default"}


def test_the_profile_named_by_temporal_profile_is_honoured(profiles: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_PROFILE", "cloud")
    settings = Settings()
    assert (settings.address, settings.namespace) == ("acme.a1b2c.tmprl.cloud:7233", "acme.a1b2c")
    options = connect_options(settings)
    assert options["target_host"] == "acme.a1b2c.tmprl.cloud:7233" and options["namespace"] == "acme.a1b2c"
    assert options["api_key"] == KEY and options["tls"] is True  # an API key turns TLS on, as in the CLI
    assert describe(options) == "TLS, API key"


def test_the_default_profile_and_grpc_metadata(profiles: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().address == "default.example:7233" and Settings().namespace == "default"
    monkeypatch.setenv("TEMPORAL_PROFILE", "grpc")
    assert connect_options(Settings())["rpc_metadata"] == {"team": "sre"}


def test_environment_variables_win_over_the_profile(profiles: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_PROFILE", "cloud")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:7999")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "tocsin")
    monkeypatch.setenv("TEMPORAL_TLS", "false")
    options = connect_options(Settings())
    assert (options["target_host"], options["namespace"], options["tls"]) == ("127.0.0.1:7999", "tocsin", False)
    assert describe(options) == "plaintext, API key"


def test_explicit_settings_win_over_everything(profiles: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_PROFILE", "cloud")
    options = connect_options(replace(Settings(), address="127.0.0.1:1", namespace="ns"))
    assert (options["target_host"], options["namespace"], options["api_key"]) == ("127.0.0.1:1", "ns", KEY)


def test_the_api_key_from_the_environment_is_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_API_KEY", KEY)
    options = connect_options(Settings())
    assert options["api_key"] == KEY and options["tls"] is True


def test_tocsin_dev_settings_ignore_credentials(profiles: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_PROFILE", "cloud")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", "/nowhere/client.pem")
    settings = replace(Settings(), address="127.0.0.1:7233", namespace="default", temporal_env_config=False)
    assert connect_options(settings) == {"target_host": "127.0.0.1:7233", "namespace": "default"}


def test_tls_files_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ca", "client", "client-key"):
        (tmp_path / name).write_bytes(f"--{name}--".encode())
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(tmp_path / "ca"))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(tmp_path / "client"))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(tmp_path / "client-key"))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "temporal.internal")
    tls = connect_options(Settings())["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.server_root_ca_cert, tls.client_cert, tls.client_private_key, tls.domain) == (
        b"--ca--",
        b"--client--",
        b"--client-key--",
        "temporal.internal",
    )
    assert describe({"tls": tls}) == "mTLS"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"TEMPORAL_TLS_CLIENT_CERT_PATH": "/nowhere/client.pem", "TEMPORAL_TLS_CLIENT_KEY_PATH": "/nowhere/k"},
            "Temporal TLS settings (TEMPORAL_TLS_*): cannot read /nowhere/client.pem: No such file or directory",
        ),
        (
            {"TEMPORAL_TLS_CLIENT_KEY_PATH": "{tmp}/file"},
            "Temporal TLS settings: a client key without TEMPORAL_TLS_CLIENT_CERT_PATH; mTLS needs both",
        ),
        (
            {"TEMPORAL_PROFILE": "staging"},
            "Temporal client configuration (TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE): Profile 'staging' not found",
        ),
    ],
)
def test_unusable_settings_are_one_line(
    env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x")
    for name, value in env.items():
        monkeypatch.setenv(name, value.replace("{tmp}", str(tmp_path)))
    with pytest.raises(TemporalUnavailable) as caught:
        connect_options(Settings())
    assert str(caught.value) == expected


def test_a_malformed_profile_file_is_one_line_without_the_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "temporal.toml"
    path.write_text(f'[profile.default]\naddress = "a:1"\napi_key = "{KEY}"\nnot toml\n')
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(path))
    assert Settings().address == "localhost:7233"  # unusable here; connect() says why
    with pytest.raises(TemporalUnavailable) as caught:
        connect_options(Settings())
    message = str(caught.value)
    assert message.startswith(
        "Temporal client configuration (TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE): TOML parse error at line 4"
    )
    assert "\n" not in message and KEY not in message


async def test_connect_passes_the_key_and_never_logs_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TEMPORAL_API_KEY", KEY)
    seen: dict[str, Any] = {}

    async def refuse(**kwargs: Any) -> Client:
        seen.update(kwargs)
        raise RuntimeError(f"Failed client connect: bad metadata authorization: Bearer {KEY}\nmore detail")

    monkeypatch.setattr(Client, "connect", refuse)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TemporalUnavailable) as caught:
        await connect(Settings(), identity="tocsin-test")
    assert seen["api_key"] == KEY and seen["tls"] is True and seen["identity"] == "tocsin-test"
    assert "API key" in caplog.text
    assert KEY not in caplog.text and KEY not in str(caught.value)
    assert str(caught.value) == (
        "cannot reach Temporal at localhost:7233: Failed client connect: bad metadata authorization: Bearer ***"
    )


def test_unsupported_host_verification_switch_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_DISABLE_HOST_VERIFICATION", "true")
    connect_options(Settings())
    assert "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION is not supported" in caplog.text
