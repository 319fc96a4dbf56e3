#!/usr/bin/env bash
# Runs the test suite the way CI does: a throwaway PostgreSQL cluster on 127.0.0.1 for the
# store tests (FUSEDSTATS_TEST_POSTGRES_URL), then pytest from the virtualenv, then the
# cluster is stopped and removed. Arguments go to pytest.
#
#   bash scripts/setup.sh test && bash scripts/test.sh        # the README's test command
#   bash scripts/test.sh tests/store -x -q                    # a part of it
#
# FUSEDSTATS_VENV picks the virtualenv (default: .venv in the checkout, as setup.sh).
# PostgreSQL is Debian's server: installed with apt-get when running as root and missing.
# If it cannot be had or does not start, the PostgreSQL tests are skipped (said below);
# an already set FUSEDSTATS_TEST_POSTGRES_URL is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FUSEDSTATS_VENV:-.venv}"
python="$venv/bin/python"
if [ ! -x "$python" ]; then
  echo "no virtualenv at $venv: run 'bash scripts/setup.sh test' first" >&2
  exit 2
fi

pg_dir=""
pg_stop() {
  if [ -n "$pg_dir" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
trap pg_stop EXIT

if [ -z "${FUSEDSTATS_TEST_POSTGRES_URL:-}" ]; then
  if [ "$(id -u)" = 0 ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; } \
      >/dev/null 2>&1 || echo "postgresql could not be installed: its tests will be skipped" >&2
  fi
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -z "$pg_bin" ]; then
    echo "no PostgreSQL server found (Debian's postgresql package): its tests will be skipped" >&2
  else
    pg_dir="$(mktemp -d)"
    if [ "$(id -u)" = 0 ]; then chown postgres "$pg_dir"; fi # postgres refuses to run as root
    pg_port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    if as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 >/dev/null &&
      as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c fsync=off" start >/dev/null &&
      as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres fusedstats_test; then
      export FUSEDSTATS_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$pg_port/fusedstats_test"
    else
      echo "PostgreSQL did not start (log: $pg_dir/log): its tests will be skipped" >&2
      cat "$pg_dir/log" >&2 2>/dev/null || true
    fi
  fi
fi

# Not exec: the trap stops the cluster after pytest.
"$python" -m pytest "$@"
