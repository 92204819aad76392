#!/usr/bin/env bash
# Install the Debian packages Tocsin's test suite needs, only when missing.
#
#   docker-compose           compose v1; validates docker-compose.temporal.yml when
#                            the `docker compose` v2 plugin is absent
#   prometheus               real Prometheus for the metrics/canary integration tests
#   prometheus-alertmanager  real Alertmanager (and amtool) for the webhook/routing tests
#   postgresql               real PostgreSQL (initdb, pg_ctl) for the audit journal's tests
#   chromium chromium-driver headless Chromium for the web dashboard's browser test
#                            (driven by Playwright against /usr/bin/chromium; nothing downloaded)
#
# Idempotent: when everything is present it does nothing and touches no network.
# Safe in containers without systemd: a temporary policy-rc.d stops the
# packages' services from being started by their maintainer scripts.
# Not root and no sudo: prints what to install and exits 0, so the tests that
# need these tools fail with their own clear message instead.
set -euo pipefail

PACKAGES=(docker-compose prometheus prometheus-alertmanager postgresql chromium chromium-driver)

log() { printf 'install-system-deps: %s\n' "$*" >&2; }

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    log "not a Debian/Ubuntu system (no dpkg/apt-get); install by hand if the tests need them: ${PACKAGES[*]}"
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
    log "all present: ${PACKAGES[*]}"
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        log "missing Debian packages: ${missing[*]}"
        log "run as root:  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive

# Keep maintainer scripts from starting services (prometheus, alertmanager):
# invoke-rc.d and deb-systemd-invoke honour policy-rc.d exit code 101.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
    if [ "$created_policy" -eq 1 ]; then
        "${SUDO[@]}" rm -f "$POLICY" || true
    fi
}
trap cleanup EXIT
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    created_policy=1
fi

log "installing: ${missing[*]}"
# Unreachable third-party sources only warn; a failed update is not fatal as long
# as the install below can still find the packages.
"${SUDO[@]}" apt-get update -q || log "apt-get update reported errors; trying the install anyway"
"${SUDO[@]}" apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}"

# If a service got started anyway (a real systemd host where policy-rc.d was
# already present and permissive), stop and disable it: tests start their own.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for unit in prometheus prometheus-alertmanager; do
        if systemctl is-active --quiet "$unit" 2>/dev/null; then
            log "stopping and disabling the $unit service (tests run their own instances)"
            "${SUDO[@]}" systemctl disable --now "$unit" >/dev/null 2>&1 || true
        fi
    done
fi

still=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || still+=("$pkg")
done
if [ "${#still[@]}" -ne 0 ]; then
    log "still missing after install: ${still[*]}"
    exit 1
fi
log "done: ${PACKAGES[*]}"
