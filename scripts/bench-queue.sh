#!/usr/bin/env bash
# Measures the login queue under load, inside the extension: RUNS times, 500 logins
# (pgbench -C, 20 clients, each holding its session ~5 ms) through a budget of 5 that
# queues; prints the handoff latency (a freed slot handed to a waiter -> that waiter runs)
# and the admission cost from connbudget.latency, and the budget's counters. Prints
# figures; asserts nothing. Needs the extension installed; run as a non-root user.
set -euo pipefail
runs=${RUNS:-3}
source "$(dirname "$0")/throwaway-server.sh"
throwaway_server bench-queue 5436 "max_connections = 60"
dir=$server_dir
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
