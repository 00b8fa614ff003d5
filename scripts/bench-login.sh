#!/usr/bin/env bash
# Benchmarks what pg_connbudget costs, side by side in one run on one throwaway server:
#  1. login throughput (pgbench -C: a new connection per transaction) with the library
#     preloaded and without it, alternating rounds so that machine noise hits both;
#  2. the admission path's own cost per login, measured inside the hook (connbudget.login_cost);
#  3. how long a committed change to connbudget.budgets takes to be live (COMMIT -> status).
# Prints figures; asserts nothing. Needs the extension installed (make install). Run as a
# user that may run PostgreSQL (not root). ROUNDS, SECONDS_PER_RUN and CLIENTS tune it.
set -euo pipefail
rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_RUN:-10}
clients=${CLIENTS:-2}
PATH="$(pg_config --bindir):$PATH"
dir=$(mktemp -d /tmp/pg_connbudget-bench.XXXXXX)
export PGHOST="$dir" PGPORT=5434 PGDATABASE=postgres PGUSER=postgres
cleanup() { pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT

initdb -D "$dir/data" -A trust -U postgres >/dev/null
cat >> "$dir/data/postgresql.conf" <<CONF
max_connections = 100
listen_addresses = ''
unix_socket_directories = '$dir'
port = $PGPORT
include_if_exists = 'preload.conf'
CONF
echo "SELECT 1;" > "$dir/select1.sql"

start() {  # start with|without
  if [ "$1" = with ]; then echo "shared_preload_libraries = 'pg_connbudget'" > "$dir/data/preload.conf"
  else : > "$dir/data/preload.conf"; fi
  pg_ctl -D "$dir/data" -l "$dir/server.log" -w restart >/dev/null 2>&1 || pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
}
tps() {  # logins per second of one pgbench -C run
  PGAPPNAME=pgbench pgbench -n -C -c "$clients" -j "$clients" -T "$seconds" -f "$dir/select1.sql" -U app postgres 2>/dev/null |
    awk '/^tps = / {print $3; exit}'
}

start with
psql -X -q <<'SQL'
CREATE EXTENSION pg_connbudget;
CREATE ROLE app LOGIN;
-- 20 budgets that do not match, then the one pgbench's logins fall into.
INSERT INTO connbudget.budgets (name, position, application_name, max_connections)
SELECT 'other_' || i, i, 'other_app_' || i || '%', 10 FROM generate_series(1, 20) i;
INSERT INTO connbudget.budgets (name, position, application_name, max_connections)
VALUES ('bench', 100, 'pgbench', 50);
SELECT connbudget.reload() \gset
SQL

echo "pgbench -C, $clients clients, ${seconds}s per run, logins/s (a new connection per SELECT 1):"
printf "%-6s %12s %12s %8s\n" round without with ratio
declare -a without_runs with_runs
for round in $(seq "$rounds"); do
  start without; w0=$(tps)
  start with; psql -X -q -c "SELECT connbudget.reset_stats()" >/dev/null; w1=$(tps)
  without_runs+=("$w0"); with_runs+=("$w1")
  printf "%-6s %12.1f %12.1f %8.3f\n" "$round" "$w0" "$w1" "$(echo "$w1 $w0" | awk '{print $1 / $2}')"
done
median() { printf "%s\n" "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
m0=$(median "${without_runs[@]}"); m1=$(median "${with_runs[@]}")
printf "%-6s %12.1f %12.1f %8.3f\n" median "$m0" "$m1" "$(echo "$m1 $m0" | awk '{print $1 / $2}')"

echo
echo "Admission cost inside the login hook (last 'with' run; classify among 21 budgets + book):"
psql -X -c "SELECT logins, round(mean_us::numeric, 1) AS mean_us, p99_us AS p99_us_bucket_bound, round(max_us::numeric, 1) AS max_us FROM connbudget.login_cost"

echo "COMMIT -> live in connbudget.status (20 UPDATEs of connbudget.budgets), ms:"
for i in $(seq 20); do
  psql -X -At -q <<SQL
UPDATE connbudget.budgets SET max_connections = $((100 + i)) WHERE name = 'bench';
SELECT extract(epoch FROM clock_timestamp()) * 1000 AS committed \gset
DO \$\$ BEGIN
  WHILE (SELECT max_connections FROM connbudget.status WHERE budget = 'bench') <> $((100 + i)) LOOP
    PERFORM pg_sleep(0.0002);
  END LOOP;
END \$\$;
SELECT round((extract(epoch FROM clock_timestamp()) * 1000 - :committed)::numeric, 2);
SQL
done | sort -g | awk '{a[NR] = $1} END {printf "median %.2f ms, max %.2f ms over %d changes\n", a[int((NR + 1) / 2)], a[NR], NR}'
