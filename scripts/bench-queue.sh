#!/usr/bin/env bash
# Measures the login queue under load, inside the extension: RUNS times, 500 logins
# (pgbench -C, 20 clients, each holding its session ~5 ms) through a budget of 5 that
# queues; prints the handoff latency (a freed slot handed to a waiter -> that waiter runs)
# and the admission cost from connbudget.latency, and the budget's counters. Prints
# figures; asserts nothing. Needs the extension installed; run as a non-root user.
set -euo pipefail
runs=${RUNS:-3}
PATH="$(pg_config --bindir):$PATH"
dir=$(mktemp -d /tmp/pg_connbudget-bench-queue.XXXXXX)
export PGHOST="$dir" PGPORT=5436 PGDATABASE=postgres PGUSER=postgres
cleanup() { pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT

initdb -D "$dir/data" -A trust -U postgres >/dev/null
cat >> "$dir/data/postgresql.conf" <<CONF
shared_preload_libraries = 'pg_connbudget'
max_connections = 60
listen_addresses = ''
unix_socket_directories = '$dir'
port = $PGPORT
CONF
pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
psql -X -q <<'SQL'
CREATE EXTENSION pg_connbudget;
CREATE ROLE app LOGIN;
INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full, queue_timeout, max_queue)
VALUES ('burst', 'burst', 5, 'queue', '50s', 50);
SELECT connbudget.reload() \gset
SQL
echo "SELECT pg_sleep(0.005);" > "$dir/hold.sql"

for run in $(seq "$runs"); do
  psql -X -q -c "SELECT connbudget.reset_stats()" >/dev/null
  PGAPPNAME=burst pgbench -n -C -c 20 -j 20 -t 25 -f "$dir/hold.sql" -U app postgres >/dev/null 2>"$dir/pgbench.err" ||
    { cat "$dir/pgbench.err"; exit 1; }
  echo "run $run: 500 logins through a budget of 5 (20 clients):"
  psql -X -c "SELECT measure, count, round(p50_us::numeric, 1) AS p50_us, round(p99_us::numeric, 1) AS p99_us, round(max_us::numeric, 1) AS max_us FROM connbudget.latency" \
       -c "SELECT admitted, rejected, queued, timed_out, abandoned, peak, round(avg_wait_ms::numeric, 1) AS avg_wait_ms, round(max_wait_ms::numeric, 1) AS max_wait_ms FROM connbudget.status WHERE budget = 'burst'"
done
