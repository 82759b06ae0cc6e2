#!/usr/bin/env bash
# Runs every test: unit, property, conformance (SQLite and PostgreSQL) and the integration
# tests that start the real binary. Makes sure PostgreSQL answers on 127.0.0.1:5432 first
# (starting it, or installing it from Debian packages on a machine without it), that
# promtool, prometheus and amtool are installed, and Chromium with its WebDriver, and that a
# Docker Engine of the tests' own answers (scripts/docker-test-env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

export STEWARD_TEST_DATABASE_URL="${STEWARD_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

pg_answers() {
  command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432
}

ensure_postgres() {
  if pg_answers; then return 0; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "PostgreSQL is not installed: installing it from Debian packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
    local hba
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n 1)
    # Tests connect as postgres over loopback without a password.
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  for _ in $(seq 1 30); do
    if pg_answers; then return 0; fi
    sleep 1
  done
  echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2
  return 1
}

# Prometheus's promtool and Prometheus itself (scrape and alerting tests) and Alertmanager's
# amtool (its read API tested with the real client) come from Debian's packages.
ensure_prometheus_tools() {
  if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 \
    && command -v amtool >/dev/null 2>&1; then
    return 0
  fi
  echo "installing prometheus and prometheus-alertmanager from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
}

# Headless Chromium and its WebDriver (the dashboard's browser tests) come from Debian too.
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    return 0
  fi
  echo "installing chromium and chromium-driver from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
}

# The agent's container inventory is tested against a real Docker Engine of its own.
ensure_docker() {
  if [ -n "${STEWARD_TEST_DOCKER_SOCKET:-}" ]; then return 0; fi
  local env
  # Assigned first, so that a failing script stops this one (inside eval it would not).
  env="$(scripts/docker-test-env.sh)"
  eval "$env"
  export STEWARD_TEST_DOCKER_SOCKET
}

ensure_postgres
ensure_prometheus_tools
ensure_chromium
ensure_docker

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

cargo nextest run --workspace --no-fail-fast "$@"
