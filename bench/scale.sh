#!/usr/bin/env bash
# Admission at scale: what a login costs with 10 to 100,000 budgets. For each number of
# budgets and each kind (application_name patterns 'app_<i>-%', exact application_names
# 'svc<i>', roles 'tenant_<i>'), the login's budget is the last in position order. Prints
# one line per (budgets, kind, clients), by the medians of ROUNDS rounds. A round makes
# PAIRS logins per client into each of two servers, the one with the library preloaded and
# one that does not load it (with the extension created and the same budgets written all the
# same, so that the two differ only by the library's work, not by their catalogs' contents:
# those alone move a login's page faults by a few), interleaved login by login
# (bench/interleaved_logins.py: a login into one, then one into the other), so that the
# host's drift, tens of percent within seconds here, slows both alike: logins/s of each and
# their ratio (also its quartiles over the rounds), each server's page faults per login
# (its backends' minor faults, from the postmaster's /proc stat: deterministic, where
# logins/s is not), and cpu_ratio: the CPU each server spent per login (its postmaster's and
# its backends'), without over with, over all rounds: what a server whose CPU is the limit
# takes. With 16 clients the servers' CPU is saturated and a login's time is mostly its wait
# for it, which the scheduler splits between the two servers' postmasters (each its own
# session's group) unevenly from one restart to the next: the same pair of servers then
# gives ratios from 0.81 to 0.95, two identical servers 0.97 to 1.03. There cpu_ratio is the
# figure; with 1 client the two agree. Both servers run on the last CPU and the clients on the others (with 2
# CPUs or more), so that the scheduler moves neither. Each round
# restarts both servers first (in turn, the one or the other first): two identical servers
# differ by up to 1 % in logins/s here, for as long as they run, by where their memory
# happens to lie, so that a ratio from one pair of server processes would keep that bias. Then
# LOGINS logins by pgbench -C into the server with the library alone give the extension's
# own figures (connbudget.latency: 'admission' = classify, decide, book; 'login_checks' =
# the role and PostgreSQL's checks, made first, whose page faults PostgreSQL then no longer
# takes), and as many of a control login that no budget matches (role control_bench: the
# default budget, whose slot lies among the pages every login touches, whatever the number
# of budgets): its admission is the same work without its budget's own pages, so its p99 is
# what this host's jitter alone leaves (ctl_p50_us, ctl_p99_us).
# Then, per number of budgets, COMMIT -> live (the worker's load of all of them, and of one
# UPDATE, median of 5) and the shared memory connbudget.worker reports.
#
# As root on Debian 12 it installs what it needs, builds and installs the extension from a
# copy of the tree and runs the servers as the "postgres" user; as any other user the
# extension must be installed already. Settings (environment): PG_CONFIG, BUDGETS="10 1000
# 10000 100000", KINDS="pattern exact role", CLIENTS="1 16", ROUNDS=8, PAIRS=300, LOGINS=400,
# HUGE_PAGES (PostgreSQL's huge_pages for both servers; unset: its default, try),
# MAX_CONNECTIONS=60 (beyond about 100 the session slots fill the extension's first window). With
# HUGE_PAGES=on, as root, it reserves the huge pages both servers need (vm.nr_hugepages) and
# gives them back at the end. A new backend pays a page fault for each shared page it first
# touches; with huge pages one fault maps 2 MB, so logins cost less with or without the
# extension, and admission's faults (its budget's slot, one bucket) cost less.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=$(command -v "${PG_CONFIG:-pg_config}")
read -r -a budget_counts <<<"${BUDGETS:-10 1000 10000 100000}"
most=$(printf '%s\n' "${budget_counts[@]}" | sort -n | tail -n 1)  # connbudget.max_budgets (at most 100000)
if [ "$(id -u)" = 0 ]; then
  bash scripts/install-deps.sh >/dev/null
  build=$(mktemp -d /tmp/pg_connbudget-scale.XXXXXX)
  tar --exclude=./.git --exclude='*.o' --exclude='*.so' -cf - . | tar -xf - -C "$build"
  make -s -C "$build" -j"$(nproc)" PG_CONFIG="$PG_CONFIG" install >/dev/null
  chown -R postgres "$build"
  chmod 755 "$build"
  if [ "${HUGE_PAGES:-}" = on ]; then
    # Two servers of about 160 MB (shared_buffers and the rest) plus about 1.1 KB per budget
    # of connbudget.max_budgets each, in 2 MB pages, with room to spare.
    reserved_before=$(cat /proc/sys/vm/nr_hugepages)
    trap 'echo "$reserved_before" >/proc/sys/vm/nr_hugepages' EXIT
    echo $((reserved_before + 2 * ((160 + most * 11 / 10240) / 2 + 16))) >/proc/sys/vm/nr_hugepages
  fi
  runuser -u postgres -- env PG_CONFIG="$PG_CONFIG" BUDGETS="${BUDGETS:-}" KINDS="${KINDS:-}" \
    CLIENTS="${CLIENTS:-}" ROUNDS="${ROUNDS:-}" PAIRS="${PAIRS:-}" LOGINS="${LOGINS:-}" \
    HUGE_PAGES="${HUGE_PAGES:-}" MAX_CONNECTIONS="${MAX_CONNECTIONS:-}" bash "$build/bench/scale.sh"
  exit
fi
read -r -a kinds <<<"${KINDS:-pattern exact role}"
read -r -a client_counts <<<"${CLIENTS:-1 16}"
rounds=${ROUNDS:-8}
pairs=${PAIRS:-300}
logins=${LOGINS:-400}
PATH="$("$PG_CONFIG" --bindir):$PATH"
export LD_LIBRARY_PATH="$("$PG_CONFIG" --libdir)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
dir=$(mktemp -d /tmp/pg_connbudget-scale-run.XXXXXX)
export PGHOST="$dir" PGDATABASE=postgres PGUSER=postgres
declare -A port=([with]=5436 [without]=5437)
cpus=$(nproc)
server_cpu="" client_cpus=""
[ "$cpus" -ge 2 ] && server_cpu="taskset -c $((cpus - 1))" client_cpus="taskset -c 0-$((cpus - 2))"
cleanup() {
  for side in with without; do pg_ctl -D "$dir/$side" -m immediate stop >/dev/null 2>&1 || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

for side in with without; do
  initdb -D "$dir/$side" -A trust -U postgres >/dev/null
  cat >>"$dir/$side/postgresql.conf" <<CONF
max_connections = ${MAX_CONNECTIONS:-60}
# An autovacuum worker that exits would add its page faults to a round's count.
autovacuum = off
listen_addresses = ''
unix_socket_directories = '$dir'
port = ${port[$side]}
CONF
  [ -n "${HUGE_PAGES:-}" ] && echo "huge_pages = $HUGE_PAGES" >>"$dir/$side/postgresql.conf"
  # (Without the library this is only a placeholder, which the budgets table's check reads.)
  echo "connbudget.max_budgets = $most" >>"$dir/$side/postgresql.conf"
  [ "$side" = with ] && echo "shared_preload_libraries = 'pg_connbudget'" >>"$dir/$side/postgresql.conf"
  $server_cpu pg_ctl -D "$dir/$side" -l "$dir/$side.log" -w start >/dev/null
  psql -X -q -v ON_ERROR_STOP=1 -p "${port[$side]}" -c "CREATE ROLE tenant_bench LOGIN" \
    -c "CREATE ROLE control_bench LOGIN" \
    -c "CREATE EXTENSION pg_connbudget"
  # (In both, so that their catalogs stay alike.)
  psql -X -q -v ON_ERROR_STOP=1 -p "${port[$side]}" <<'SQL'
-- Milliseconds from committed_ms (epoch) until the worker has made a new generation live
-- with `budgets` budgets.
CREATE FUNCTION bench_wait_live(before bigint, budgets integer, committed_ms double precision)
RETURNS double precision LANGUAGE plpgsql AS $$
BEGIN
  WHILE (SELECT w.generation = before OR w.budgets <> bench_wait_live.budgets FROM connbudget.worker w) LOOP
    PERFORM pg_sleep(0.0002);
  END LOOP;
  RETURN extract(epoch FROM clock_timestamp()) * 1000 - committed_ms;
END $$;
SQL
done
echo "SELECT 1;" >"$dir/select1.sql"

on() { psql -X -At -q -v ON_ERROR_STOP=1 -p "${port[with]}" "$@"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# The first and third quartiles of the values, as "q1-q3" (nearest rank).
quartiles() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {
    q1 = int((NR + 3) / 4); q3 = int((3 * NR + 3) / 4); printf "%.3f-%.3f", a[q1], a[q3] }'
}

# The transaction that replaces every budget with $2 budgets of kind $1.
replace_budgets() {
  local kind=$1 n=$2 rule
  case $kind in
    pattern) rule="'app_' || i || '-%', NULL" ;;
    exact) rule="'svc' || i, NULL" ;;
    role) rule="NULL, CASE WHEN i = $n THEN 'tenant_bench' ELSE 'tenant_' || i END" ;;
  esac
  cat <<SQL
BEGIN;
DELETE FROM connbudget.budgets;
INSERT INTO connbudget.budgets (name, position, application_name, role_name, max_connections)
SELECT 'b' || i, i, $rule, 100 FROM generate_series(1, $n) i;
COMMIT;
SQL
}

# Writes them into both servers; prints COMMIT -> live in the one with the library, ms.
load_budgets() {
  replace_budgets "$1" "$2" | psql -X -q -v ON_ERROR_STOP=1 -p "${port[without]}"
  on <<SQL
SELECT generation AS before FROM connbudget.worker \gset
$(replace_budgets "$1" "$2")
SELECT extract(epoch FROM clock_timestamp()) * 1000 AS committed \gset
SELECT round(bench_wait_live(:before, $2, :committed)::numeric, 1);
SQL
}

# Restarts both servers, the one first in $1 first; returns once the one with the library
# has its $2 budgets live and both have served a few logins (the first after a start reads
# files the next find cached).
restart_servers() {
  local side
  for side in $1; do pg_ctl -D "$dir/$side" -m fast -w stop >/dev/null; done
  for side in $1; do $server_cpu pg_ctl -D "$dir/$side" -l "$dir/$side.log" -w start >/dev/null; done
  until [ "$(on -c "SELECT budgets FROM connbudget.worker WHERE generation > 0")" = "$2" ]; do sleep 0.1; done
  for side in $1; do pgbench_logins "$side" 1 warm-up postgres -t 20 >/dev/null; done
}

# COMMIT -> live of one UPDATE among $1 budgets, median of 5, ms.
update_live() {
  local n=$1 times=()
  for i in 1 2 3 4 5; do
    times+=("$(on <<SQL
SELECT generation AS before FROM connbudget.worker \gset
UPDATE connbudget.budgets SET max_connections = $((100 + i)) WHERE name = 'b1';
SELECT extract(epoch FROM clock_timestamp()) * 1000 AS committed \gset
SELECT round(bench_wait_live(:before, $n, :committed)::numeric, 2);
SQL
)")
  done
  median "${times[@]}"
}

# pgbench -C against a side, with pgbench's options (-t LOGINS_PER_CLIENT); prints logins/s.
# Fails loudly if pgbench does.
pgbench_logins() {
  local side=$1 clients=$2 app=$3 role=$4 out
  shift 4
  if ! out=$(PGAPPNAME=$app pgbench -n -C -c "$clients" -j "$clients" "$@" -f "$dir/select1.sql" \
    -p "${port[$side]}" -U "$role" postgres 2>&1); then
    echo "pgbench failed against the server $side pg_connbudget:" >&2
    echo "$out" | tail -n 5 >&2
    exit 1
  fi
  echo "$out" | awk '/^tps = / {print $3; exit}'
}

# Minor page faults so far of a side's exited backends (the postmaster's cminflt: its reaped
# children's), and the connection string of a login into it.
faults() { awk '{print $11}' "/proc/$(head -n 1 "$dir/$1/postmaster.pid")/stat"; }
# CPU so far of a side's server, microseconds: the postmaster's own (schedstat, in ns) and
# its exited backends' (utime and stime of its reaped children, in clock ticks). Summed over
# all rounds, so that the ticks' 10 ms resolution is well under the difference measured.
clock_tick=$(getconf CLK_TCK)
server_cpu_us() {
  local pid
  pid=$(head -n 1 "$dir/$1/postmaster.pid")
  echo "$(cut -d ' ' -f 1 "/proc/$pid/schedstat") $(awk '{print $16 + $17}' "/proc/$pid/stat")" |
    awk -v tick="$clock_tick" '{printf "%.0f\n", $1 / 1000 + $2 * 1e6 / tick}'
}
conninfo() { echo "host=$dir port=${port[$1]} dbname=postgres user=$3 application_name=$2"; }
libpq="$("$PG_CONFIG" --libdir)/libpq.so.5"

echo "$("$PG_CONFIG" --version), $(nproc) cores, huge_pages ${HUGE_PAGES:-try (the default)}$(
  on -c "SELECT ' (' || current_setting('huge_pages_status', true) || ')'"); pgbench -C; medians of $rounds rounds," \
  "each: $pairs logins per client into each server, interleaved (logins/s, ratio, faults per login)," \
  "servers on CPU $((cpus - 1)) ${server_cpu:+(pinned)}, then $logins logins by pgbench -C into the one with" \
  "pg_connbudget alone (its latency)"
printf '%8s %-8s %7s %10s %10s %7s %12s %9s %9s %9s %10s %10s %10s %10s %10s %10s\n' budgets kind clients "without/s" "with/s" ratio \
  ratio_q1-q3 cpu_ratio flt_wo flt_with adm_p50_us adm_p99_us chk_p50_us chk_p99_us ctl_p50_us ctl_p99_us
declare -A bulk_ms update_ms
for n in "${budget_counts[@]}"; do
  for kind in "${kinds[@]}"; do
    bulk_ms[$n]+="$(load_budgets "$kind" "$n") "
    case $kind in
      pattern) app="app_$n-bench" role=tenant_bench ;;
      exact) app="svc$n" role=tenant_bench ;;
      role) app=pgbench role=tenant_bench ;;
    esac
    [ "$(on -c "SELECT connbudget.match('$app', '$role', 'postgres')")" = "b$n" ] ||
      { echo "the login does not fall into budget b$n" >&2; exit 1; }
    [ "$(on -c "SELECT connbudget.match('control', 'control_bench', 'postgres')")" = default ] ||
      { echo "the control login does not fall into the default budget" >&2; exit 1; }
    for clients in "${client_counts[@]}"; do
      cpu_with=0 cpu_without=0
      with=() without=() ratios=() fwith=() fwithout=() adm50=() adm99=() chk50=() chk99=() ctl50=() ctl99=()
      for round in $(seq "$rounds"); do
        restart_servers "$([ $((round % 2)) = 1 ] && echo with without || echo without with)" "$n"
        # Interleaved: a login into one server, then one into the other.
        read -r f0_with f0_without <<<"$(faults with) $(faults without)"
        read -r c0_with c0_without <<<"$(server_cpu_us with) $(server_cpu_us without)"
        read -r w wo r < <($client_cpus python3 bench/interleaved_logins.py "$libpq" \
          "$(conninfo with "$app" "$role")" "$(conninfo without "$app" "$role")" "$pairs" "$clients") ||
          { echo "the interleaved logins failed" >&2; exit 1; }
        read -r f1_with f1_without <<<"$(faults with) $(faults without)"
        read -r c1_with c1_without <<<"$(server_cpu_us with) $(server_cpu_us without)"
        cpu_with=$((cpu_with + c1_with - c0_with)) cpu_without=$((cpu_without + c1_without - c0_without))
        with+=("$w") without+=("$wo") ratios+=("$r")
        fwith+=("$(echo "$f0_with $f1_with $((pairs * clients))" | awk '{print ($2 - $1) / $3}')")
        fwithout+=("$(echo "$f0_without $f1_without $((pairs * clients))" | awk '{print ($2 - $1) / $3}')")
        # Alone: the extension's own figures, with no second server taking the cores.
        on -c "SELECT connbudget.reset_stats()" >/dev/null
        pgbench_logins with "$clients" "$app" "$role" -t $((logins / clients)) >/dev/null
        read -r a50 a99 c50 c99 < <(on -F ' ' -c "SELECT
            max(p50_us) FILTER (WHERE measure = 'admission'), max(p99_us) FILTER (WHERE measure = 'admission'),
            max(p50_us) FILTER (WHERE measure = 'login_checks'), max(p99_us) FILTER (WHERE measure = 'login_checks')
          FROM connbudget.latency")
        adm50+=("$a50") adm99+=("$a99") chk50+=("$c50") chk99+=("$c99")
        on -c "SELECT connbudget.reset_stats()" >/dev/null
        pgbench_logins with "$clients" control control_bench -t $((logins / clients)) >/dev/null
        read -r a50 a99 < <(on -F ' ' -c "SELECT p50_us, p99_us FROM connbudget.latency WHERE measure = 'admission'")
        ctl50+=("$a50") ctl99+=("$a99")
      done
      printf '%8s %-8s %7s %10.0f %10.0f %7.3f %12s %9.3f %9.1f %9.1f %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f\n' "$n" "$kind" "$clients" \
        "$(median "${without[@]}")" "$(median "${with[@]}")" "$(median "${ratios[@]}")" "$(quartiles "${ratios[@]}")" \
        "$(echo "$cpu_without $cpu_with" | awk '{print $1 / $2}')" \
        "$(median "${fwithout[@]}")" "$(median "${fwith[@]}")" \
        "$(median "${adm50[@]}")" \
        "$(median "${adm99[@]}")" "$(median "${chk50[@]}")" "$(median "${chk99[@]}")" \
        "$(median "${ctl50[@]}")" "$(median "${ctl99[@]}")"
    done
  done
  update_ms[$n]=$(update_live "$n")
done

echo
echo "COMMIT -> live (the worker's load), ms: all budgets at once per kind; one UPDATE among them (median of 5)"
for n in "${budget_counts[@]}"; do
  printf '%8s budgets: bulk %s; one UPDATE %s\n' "$n" "${bulk_ms[$n]% }" "${update_ms[$n]}"
done
echo
on -F ' ' -c "SELECT shared_memory_bytes, bytes_per_budget, bytes_per_session FROM connbudget.worker" |
  while read -r total per_budget per_session; do
    echo "shared memory: $((total / 1024 / 1024)) MB for connbudget.max_budgets $most and $(on -c 'SHOW max_connections') connections: $per_budget bytes per budget, $per_session per session"
  done
