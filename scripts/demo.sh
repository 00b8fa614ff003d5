#!/usr/bin/env bash
# The demo: the seed's system with its own client (scripts/fleet.py: an API backend with an
# asyncpg pool of 10, and 8 containers of each of three kinds of worker, each container a
# process with its own asyncpg pool of 1 to 3) on a throwaway server with max_connections
# 40, three times in a row:
#   1. no budgets: the workers scale past the server and the API backend fails;
#   2. budgets (the API reserves 10; extraction 7, semantic 7 and event 6 queue): the API
#      never fails, but idle pooled connections starve the containers that have none;
#   3. the same budgets with idle_reclaim = 1s: idle connections go to whoever waits.
# Second by second it prints each application's sessions (s), logins waiting (w), jobs
# done (j) and errors (e); then a summary per run and a PNG chart of the three. About three
# minutes; it ends and cleans up by itself. As root on a fresh Debian 12 machine it first
# installs what it needs and the extension, then runs the server as the "postgres" user.
# The operator's tour of views and tools is the other demo: scripts/demo-operator.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
output=${DEMO_OUTPUT:-/tmp/pg_connbudget-demo}
if [ "$(id -u)" = 0 ]; then
  bash scripts/install-deps.sh
  make -s -j"$(nproc)"
  make -s install
  mkdir -p "$output"
  chown postgres "$output"
  exec runuser -u postgres -- env DEMO_OUTPUT="$output" bash "$(pwd)/scripts/demo.sh"
fi
mkdir -p "$output"
seconds=${DEMO_SECONDS:-45}

source "$(dirname "$0")/throwaway-server.sh"
throwaway_server fleet 5434 "max_connections = 40" "log_line_prefix = '%m [%p] %q%a '"
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
q <<'SQL'
CREATE EXTENSION pg_connbudget;
CREATE ROLE api LOGIN;
CREATE ROLE extraction LOGIN;
CREATE ROLE semantic LOGIN;
CREATE ROLE event LOGIN;
SQL

# run <label> <heading>: one run of the fleet; its figures go to $output/<label>.json.
run() {
  echo
  echo "==== $2"
  /usr/bin/python3 scripts/fleet.py run --host "$PGHOST" --port "$PGPORT" --seconds "$seconds" \
    --label "$2" --json "$output/$1.json" --log-file "$server_dir/server.log"
  # The next run starts from an empty server.
  until [ "$(psql -X -At -c "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '%_worker' OR application_name = 'backend'")" = 0 ]; do
    sleep 0.2
  done
}

echo "== A server with max_connections = 40: 37 connections for ordinary logins."
echo "   An API backend (pool of 10) and 8 containers of each kind of worker (pools of 1 to 3): 82 at most."
run no-budgets "1. no budgets"

q <<'SQL'
INSERT INTO connbudget.budgets (name, application_name, role_name, max_connections, reserved, on_full, queue_timeout, priority) VALUES
  ('api',        'backend',           'api',        10, 10, 'reject', NULL,  0),
  ('extraction', 'extraction_worker', 'extraction',  7,  0, 'queue',  '10s', 2),
  ('semantic',   'semantic_worker',   'semantic',    7,  0, 'queue',  '10s', 1),
  ('event',      'event_worker',      'event',       6,  0, 'queue',  '10s', 0);
SELECT connbudget.reload() AS generation \gset
SQL
echo
echo "== Budgets: the API reserves its 10; the workers' budgets (7 + 7 + 6) queue for 10 s."
q -c "SELECT name, application_name, role_name, max_connections, reserved, on_full, queue_timeout, priority, idle_reclaim FROM connbudget.budgets ORDER BY priority DESC, name"
run budgets "2. budgets"

q -c "UPDATE connbudget.budgets SET idle_reclaim = '1s' WHERE name <> 'api'"
q -At -c "SELECT connbudget.reload()" >/dev/null
echo
echo "== The same budgets, and a worker's session idle for 1 s may go to a login that waits:"
q -c "SELECT name, max_connections, on_full, idle_reclaim FROM connbudget.budgets ORDER BY priority DESC, name"
run reclaim "3. budgets with idle_reclaim"

echo
echo "== connbudget.status after the three runs:"
q -c "SELECT budget, max_connections, reserved, admitted, rejected, rejected_server_full, queued, timed_out, reclaimed FROM connbudget.status"
/usr/bin/python3 scripts/fleet.py chart --output "$output/fleet.png" \
  "$output/no-budgets.json" "$output/budgets.json" "$output/reclaim.json"
