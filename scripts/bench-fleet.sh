#!/usr/bin/env bash
# The seed's fleet (scripts/fleet.py: an API pool of 10 and CONTAINERS containers of each
# of three kinds of worker, each with its own asyncpg pool of 1 to 3) on a server with
# max_connections 40, in several set-ups one after another, SECONDS each:
#   budgets+reclaim   pg_connbudget budgets (api reserves 10; extraction 7, semantic 7,
#                     event 6 queue 10 s) with idle_reclaim = 1s
#   budgets           the same budgets, no idle_reclaim
#   no budgets        pg_connbudget loaded, no budgets
#   busy+reclaim      budgets with idle_reclaim, twice the containers, jobs twice as often
#   pgbouncer-session / pgbouncer-transaction
#                     no budgets; every client through Debian's PgBouncer with per-user
#                     limits like the budgets (max_user_connections api 10, extraction 7,
#                     semantic 7, event 6), in session and in transaction pool mode
# Prints, per set-up, the API's errors and p99 and, per kind of worker, containers never
# served, job latency p50/p99, job errors by class and sessions reclaimed; then one table.
# A set-up named twice runs twice. Figures only; asserts nothing. Needs the extension
# installed; run as a non-root user.
#   CONTAINERS=8 SECONDS_EACH=40 SETUPS="budgets+reclaim pgbouncer-transaction" bash scripts/bench-fleet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
containers=${CONTAINERS:-8}
seconds=${SECONDS_EACH:-40}
setups=${SETUPS:-"budgets+reclaim budgets no-budgets busy+reclaim pgbouncer-session pgbouncer-transaction"}
source scripts/throwaway-server.sh
throwaway_server bench-fleet 5437 "max_connections = 40" "log_line_prefix = '%m [%p] %q%a '"
results="$server_dir/results"
mkdir -p "$results"
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION pg_connbudget;
CREATE ROLE api LOGIN;
CREATE ROLE extraction LOGIN;
CREATE ROLE semantic LOGIN;
CREATE ROLE event LOGIN;
SQL

# budgets <idle_reclaim or NULL>: the seed's budgets; "none": no budgets.
budgets() {
  psql -X -q -v ON_ERROR_STOP=1 -c "DELETE FROM connbudget.budgets" -c "SELECT connbudget.reset_stats()" >/dev/null
  [ "$1" = none ] || psql -X -q -v ON_ERROR_STOP=1 <<SQL
INSERT INTO connbudget.budgets (name, application_name, role_name, max_connections, reserved, on_full, queue_timeout, priority, idle_reclaim) VALUES
  ('api',        'backend',           'api',        10, 10, 'reject', NULL,  0, NULL),
  ('extraction', 'extraction_worker', 'extraction',  7,  0, 'queue',  '10s', 2, $1),
  ('semantic',   'semantic_worker',   'semantic',    7,  0, 'queue',  '10s', 1, $1),
  ('event',      'event_worker',      'event',       6,  0, 'queue',  '10s', 0, $1);
SQL
  psql -X -q -At -c "SELECT connbudget.reload()" >/dev/null
}

bouncer_pid=
pgbouncer_start() {  # pgbouncer_start <pool mode>: PgBouncer on port 6437 in front of the server
  cat > "$server_dir/pgbouncer.ini" <<INI
[databases]
postgres = host=$server_dir port=$PGPORT dbname=postgres
[users]
api = max_user_connections=10
extraction = max_user_connections=7
semantic = max_user_connections=7
event = max_user_connections=6
[pgbouncer]
listen_addr =
unix_socket_dir = $server_dir
listen_port = 6437
auth_type = trust
auth_file = $server_dir/userlist.txt
pool_mode = $1
max_client_conn = 1000
default_pool_size = 10
query_wait_timeout = 10
logfile = $server_dir/pgbouncer.log
pidfile = $server_dir/pgbouncer.pid
INI
  printf '"%s" ""\n' api extraction semantic event postgres > "$server_dir/userlist.txt"
  /usr/sbin/pgbouncer -d "$server_dir/pgbouncer.ini"
  until [ -S "$server_dir/.s.PGSQL.6437" ]; do sleep 0.1; done
}
pgbouncer_stop() {
  [ -f "$server_dir/pgbouncer.pid" ] || return 0
  kill -INT "$(cat "$server_dir/pgbouncer.pid")" 2>/dev/null || true  # SIGINT: safe shutdown
  while [ -f "$server_dir/pgbouncer.pid" ]; do sleep 0.1; done
}
trap 'pgbouncer_stop; pg_ctl -D "$server_dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$server_dir"' EXIT

# fleet <setup> [fleet.py options]: one run (the n-th), its summary.
n=0
fleet() {
  local setup=$1
  shift
  n=$((n + 1))
  echo
  echo "==== $setup"
  /usr/bin/python3 scripts/fleet.py run --host "$PGHOST" --port "$PGPORT" --seconds "$seconds" \
    --containers "$containers" --label "$setup" --json "$results/$n.json" \
    --log-file "$server_dir/server.log" "$@" | tail -n 7
}

# Until the fleet's sessions have all ended (PgBouncer's too, once it is stopped).
wait_for_empty_server() {
  until [ "$(psql -X -At -c "SELECT count(*) FROM pg_stat_activity WHERE usename IN ('api', 'extraction', 'semantic', 'event')")" = 0 ]; do
    sleep 0.2
  done
}

for setup in $setups; do
  case $setup in
    budgets+reclaim) budgets "'1s'"; fleet "$setup" ;;
    budgets) budgets NULL; fleet "$setup" ;;
    no-budgets) budgets none; fleet "$setup" ;;
    busy+reclaim) budgets "'1s'"; fleet "$setup" --containers $((2 * containers)) --job-interval 0.75 ;;
    pgbouncer-session | pgbouncer-transaction)
      budgets none
      pgbouncer_start "${setup#pgbouncer-}"
      fleet "$setup" --host "$server_dir" --port 6437 --monitor-port "$PGPORT" --no-statement-cache
      pgbouncer_stop
      ;;
    *) echo "unknown set-up $setup" >&2; exit 2 ;;
  esac
  wait_for_empty_server
done

echo
echo "==== all set-ups, $containers containers per kind (busy+reclaim: $((2 * containers))), $seconds s each"
/usr/bin/python3 - "$results" "$n" <<'PY'
import json, sys
folder, runs = sys.argv[1], int(sys.argv[2])
print("%-22s %10s %8s | %-44s" % ("set-up", "API errors", "API p99", "per worker kind: never served, job p50/p99 ms, errors %, reclaimed"))
for run in range(1, runs + 1):
    with open("%s/%d.json" % (folder, run)) as f:
        r = json.load(f)
    setup = r["label"]
    api = r["apps"]["api"]
    kinds = []
    for k in ("extraction", "semantic", "event"):
        a = r["apps"][k]
        total = a["done"] + a["error_count"]
        kinds.append("%s %d, %s/%s, %.1f%%, %d" % (k[:3], a["never_served"], a["p50_ms"], a["p99_ms"],
                                                  100.0 * a["error_count"] / total if total else 0, a["reclaimed"]))
    print("%-22s %10d %8s | %s" % (setup, api["error_count"], api["p99_ms"], "; ".join(kinds)))
PY
