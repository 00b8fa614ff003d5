#!/usr/bin/env bash
# The demo: a throwaway PostgreSQL with pg_connbudget preloaded, budgets for the seed's four
# applications (an API backend and three kinds of worker container), workers scaled past
# their budgets, and connbudget.status printed before, during and after. As root on a fresh
# Debian 12 machine it first installs what it needs and the extension, then runs the server
# as the unprivileged "postgres" user.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  bash scripts/install-deps.sh
  make -s -j"$(nproc)"
  make -s install
  exec runuser -u postgres -- bash "$(pwd)/scripts/demo.sh"
fi

PATH="$(pg_config --bindir):$PATH"
dir=$(mktemp -d /tmp/pg_connbudget-demo.XXXXXX)
export PGHOST="$dir" PGPORT=5433 PGDATABASE=postgres
cleanup() { pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT

initdb -D "$dir/data" -A trust -U postgres >/dev/null
cat >> "$dir/data/postgresql.conf" <<CONF
shared_preload_libraries = 'pg_connbudget'
max_connections = 40
listen_addresses = ''
unix_socket_directories = '$dir'
port = $PGPORT
CONF
pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
q() { psql -U postgres -X -q "$@"; }

echo "== A server with max_connections = 40 (37 for ordinary logins). Budgets for the seed's applications:"
q <<'SQL'
CREATE EXTENSION pg_connbudget;
CREATE ROLE app LOGIN;
INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved, comment) VALUES
  ('api',        'backend',           10, 10, 'the API backend: one pool of 10'),
  ('extraction', 'extraction_worker',  9,  0, '3 containers x 3'),
  ('semantic',   'semantic_worker',    9,  0, '3 containers x 3'),
  ('event',      'event_worker',       9,  0, '3 containers x 3');
SELECT connbudget.reload() AS generation \gset
SELECT name, application_name, max_connections, reserved, on_full FROM connbudget.budgets ORDER BY name;
SQL

hold() {  # hold <application_name> <count> <seconds>: that many sessions, each in its own client
  for _ in $(seq "$2"); do
    PGAPPNAME="$1" psql -U app -X -q -c "SELECT pg_sleep($3)" >/dev/null 2>>"$dir/refused.log" &
  done
}

echo "== The API backend opens 6 connections; each worker type scales to 5 containers x 3 = 15 connections."
hold backend 6 8
for worker in extraction_worker semantic_worker event_worker; do hold "$worker" 15 8; done
sleep 3

echo "== Workers past their budget are refused at login, with SQLSTATE 53300 and this message:"
grep -c 'is full' "$dir/refused.log" | sed 's/^/   refused logins: /'
grep -m1 -A2 'FATAL' "$dir/refused.log" | sed 's/^/   /'

echo "== The API backend still logs in (no worker can take its slots):"
PGAPPNAME=backend psql -U app -X -At -c "SELECT '   the API backend logged in: ' || current_setting('application_name') || ' as ' || current_user"

echo "== SELECT * FROM connbudget.status; during the overload"
q -c "SELECT budget, max_connections, reserved, active, peak, admitted, rejected FROM connbudget.status"
echo "== Who holds what (connbudget.sessions):"
q -c "SELECT budget, role_name, count(*) AS sessions FROM connbudget.sessions GROUP BY 1, 2 ORDER BY 1"

wait
echo "== After the sessions ended, every slot came back:"
q -c "SELECT budget, active, peak, admitted, rejected FROM connbudget.status"
echo "== What admission cost per login, measured inside the login hook:"
q -c "SELECT logins, round(mean_us::numeric, 1) AS mean_us, p99_us, round(max_us::numeric, 1) AS max_us FROM connbudget.login_cost"
