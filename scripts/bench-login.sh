#!/usr/bin/env bash
# Benchmarks what pg_connbudget costs, side by side in one run on two throwaway servers:
#  1. login throughput and backend CPU per login (pgbench -C: a new connection per
#     transaction) with the library preloaded and without, on two servers that swap roles;
#  2. the admission path's own cost per login, measured inside the hook (connbudget.latency);
#  3. how long a committed change to connbudget.budgets takes to be live (COMMIT -> status).
# Prints figures; asserts nothing. Needs the extension installed (make install). Run as a
# user that may run PostgreSQL (not root). ROUNDS and LOGINS tune it.
set -euo pipefail
rounds=${ROUNDS:-8}
logins=${LOGINS:-1500}
PATH="$(pg_config --bindir):$PATH"
dir=$(mktemp -d /tmp/pg_connbudget-bench.XXXXXX)
export PGHOST="$dir" PGDATABASE=postgres PGUSER=postgres
servers=(a b)
declare -A port=([a]=5434 [b]=5435)
cleanup() {
  for server in "${servers[@]}"; do pg_ctl -D "$dir/$server" -m immediate stop >/dev/null 2>&1 || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# Two identical servers. Each round one of them has the library preloaded and the other
# not, swapping every round, so that neither the machine's noise nor a server's own quirks
# (memory placement, caches) favour one side.
for server in "${servers[@]}"; do
  initdb -D "$dir/$server" -A trust -U postgres >/dev/null
  cat >> "$dir/$server/postgresql.conf" <<CONF
max_connections = 100
listen_addresses = ''
unix_socket_directories = '$dir'
port = ${port[$server]}
include_if_exists = 'preload.conf'
CONF
  echo "shared_preload_libraries = 'pg_connbudget'" > "$dir/$server/preload.conf"
  pg_ctl -D "$dir/$server" -l "$dir/$server.log" -w start >/dev/null
  psql -X -q -p "${port[$server]}" <<'SQL'
CREATE ROLE app LOGIN;
CREATE EXTENSION pg_connbudget;
-- 20 budgets that do not match, then the one pgbench's logins fall into.
INSERT INTO connbudget.budgets (name, position, application_name, max_connections)
SELECT 'other_' || i, i, 'other_app_' || i || '%', 10 FROM generate_series(1, 20) i;
INSERT INTO connbudget.budgets (name, position, application_name, max_connections)
VALUES ('bench', 100, 'pgbench', 50);
SQL
done
echo "SELECT 1;" > "$dir/select1.sql"

restart() {  # restart <server> with|without
  if [ "$2" = with ]; then echo "shared_preload_libraries = 'pg_connbudget'" > "$dir/$1/preload.conf"
  else : > "$dir/$1/preload.conf"; fi
  pg_ctl -D "$dir/$1" -l "$dir/$1.log" -w restart >/dev/null
  if [ "$2" = with ]; then psql -X -q -p "${port[$1]}" -c "SELECT connbudget.reload()" >/dev/null; fi
}
# CPU time of a server's backends: the postmaster's reaped children (cutime + cstime).
backend_cpu_ticks() { awk '{print $16 + $17}' "/proc/$(head -1 "$dir/$1/postmaster.pid")/stat"; }
measure() {  # measure <server>: "<logins/s> <backend CPU us per login>" over one pgbench -C run
  local before after rate
  before=$(backend_cpu_ticks "$1")
  rate=$(PGAPPNAME=pgbench pgbench -n -C -c 1 -t "$logins" -f "$dir/select1.sql" -p "${port[$1]}" -U app postgres 2>/dev/null |
    awk '/^tps = / {print $3; exit}')
  after=$(backend_cpu_ticks "$1")
  echo "$rate $(( (after - before) * 1000000 / $(getconf CLK_TCK) / logins ))"
}

echo "pgbench -C -c 1 -t $logins per run (a new connection for each SELECT 1):"
printf "%-6s %-8s %14s %14s %16s %16s\n" round with_on "without login/s" "with login/s" "without CPU us" "with CPU us"
declare -a rate_ratios cpu_without cpu_with
for round in $(seq "$rounds"); do
  if (( round % 2 )); then on=a; off=b; else on=b; off=a; fi
  restart "$on" with
  restart "$off" without
  if (( (round - 1) / 2 % 2 )); then  # and which runs first swaps every two rounds
    read -r r1 c1 < <(measure "$on"); read -r r0 c0 < <(measure "$off")
  else
    read -r r0 c0 < <(measure "$off"); read -r r1 c1 < <(measure "$on")
  fi
  rate_ratios+=("$(echo "$r1 $r0" | awk '{print $1 / $2}')"); cpu_without+=("$c0"); cpu_with+=("$c1")
  printf "%-6s %-8s %14.1f %14.1f %16d %16d\n" "$round" "$on" "$r0" "$r1" "$c0" "$c1"
done
median() { printf "%s\n" "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo "median login/s ratio with/without: $(median "${rate_ratios[@]}")"
echo "median backend CPU per login: without $(median "${cpu_without[@]}") us, with $(median "${cpu_with[@]}") us"

export PGPORT=${port[$on]}
echo
echo "Admission cost inside the login hook, last 'with' run (role lookup, classify among 21 budgets, book):"
psql -X -c "SELECT count AS logins, round(mean_us::numeric, 1) AS mean_us, round(p50_us::numeric, 1) AS p50_us, round(p99_us::numeric, 1) AS p99_us, round(max_us::numeric, 1) AS max_us FROM connbudget.latency WHERE measure = 'admission'"

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
