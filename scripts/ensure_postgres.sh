#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 and that the test database exists.
#   - already running: only creates the database if missing;
#   - installed but stopped: starts the cluster with pg_ctlcluster;
#   - absent: installs Debian's postgresql with apt, and (on this fresh, CI-only install)
#     lets local TCP connections in without a password so the tests can connect as postgres.
# Env: CHENILLES_PG_DATABASE (default chenilles_test). Idempotent.
set -euo pipefail
DB=${CHENILLES_PG_DATABASE:-chenilles_test}
HOST=127.0.0.1
PORT=5432

say() { printf '\033[1m[postgres]\033[0m %s\n' "$*"; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}
cluster_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -1; }

fresh_install=0
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(cluster_version)" ]; then
  say "installing postgresql with apt"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  fresh_install=1
fi
VERSION=$(cluster_version)
PG_BIN=/usr/lib/postgresql/$VERSION/bin

if [ "$fresh_install" -eq 1 ]; then
  hba=/etc/postgresql/$VERSION/main/pg_hba.conf
  if ! $SUDO grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    say "trusting local TCP connections in $hba (test machine only)"
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
fi

ready() { "$PG_BIN/pg_isready" -h "$HOST" -p "$PORT" -q; }
if ! ready; then
  say "starting cluster $VERSION/main"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$VERSION" main start || true
  [ "$fresh_install" -eq 0 ] || $SUDO pg_ctlcluster --skip-systemctl-redirect "$VERSION" main reload
  for _ in $(seq 1 30); do ready && break; sleep 1; done
  ready || { echo "PostgreSQL did not come up on $HOST:$PORT" >&2; exit 1; }
fi

psql_tcp() { psql -h "$HOST" -p "$PORT" -U postgres -d postgres -tAq "$@"; }
if psql_tcp -c 'SELECT 1' >/dev/null 2>&1; then
  exists=$(psql_tcp -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")
  [ "$exists" = "1" ] || { say "creating database $DB"; psql_tcp -c "CREATE DATABASE \"$DB\""; }
else
  # No password-less TCP access: fall back to the local socket as the postgres OS user.
  exists=$(as_postgres psql -tAq -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")
  [ "$exists" = "1" ] || { say "creating database $DB"; as_postgres createdb "$DB"; }
fi
say "ready: postgresql://postgres@$HOST:$PORT/$DB"
