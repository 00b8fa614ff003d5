#!/usr/bin/env bash
# The operator's tour (the second demo): a throwaway PostgreSQL with pg_connbudget preloaded, budgets for the seed's four
# applications (an API backend and three kinds of worker container), workers scaled past
# their budgets (two kinds queue, one is refused) and past the server while the API
# backend's reservation stays available, and connbudget.status printed during and after;
# then the operator's side: counters by reason, waits by length, the rate-limited server
# log, a dry run in monitor mode, pause/resume and terminate_excess. As root on a fresh
# Debian 12 machine it first installs what it needs and the extension, then runs the server
# as the unprivileged "postgres" user.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  bash scripts/install-deps.sh
  make -s -j"$(nproc)"
  make -s install
  exec runuser -u postgres -- bash "$(pwd)/scripts/demo-operator.sh"
fi

source "$(dirname "$0")/throwaway-server.sh"
throwaway_server demo 5433 "max_connections = 60" "connbudget.sample_interval = 1s"
dir=$server_dir
q() { psql -U postgres -X -q "$@"; }

echo "== A server with max_connections = 60 (57 for ordinary logins; queued logins hold one each while"
echo "   they wait). Budgets for the seed's applications:"
q <<'SQL'
CREATE EXTENSION pg_connbudget;
CREATE ROLE api LOGIN;
CREATE ROLE extraction LOGIN;
CREATE ROLE semantic LOGIN;
CREATE ROLE event LOGIN;
CREATE ROLE reports LOGIN;
INSERT INTO connbudget.budgets (name, application_name, role_name, max_connections, reserved, on_full, queue_timeout, priority, comment) VALUES
  ('api',        'backend',           'api',        10, 10, 'reject', NULL,  0, 'the API backend: one pool of 10, always available'),
  ('extraction', 'extraction_worker', 'extraction', 12,  0, 'queue',  '10s', 2, '4 containers x 3; more wait their turn'),
  ('semantic',   'semantic_worker',   'semantic',   12,  0, 'queue',  '10s', 1, '4 containers x 3; more wait their turn'),
  ('event',      'event_worker',      'event',       8,  0, 'reject', NULL,  0, 'few containers; more are refused');
SELECT connbudget.reload() AS generation \gset
SELECT name, application_name, role_name, max_connections, reserved, on_full, queue_timeout, priority FROM connbudget.budgets ORDER BY name;
SQL

echo "== connbudget.status before the overload:"
q -c "SELECT budget, max_connections, reserved, on_full, priority, active, waiting, admitted, rejected, reserved_in_use, server_free FROM connbudget.status"

role_of() {  # the role of each application: one role per service
  case $1 in backend) echo api ;; report_job) echo reports ;; *) echo "${1%_worker}" ;; esac
}
hold() {  # hold <application_name> <count> <seconds> [<spacing>]: that many sessions, each in
          # its own client, started <spacing> seconds apart
  for _ in $(seq "$2"); do
    PGAPPNAME="$1" psql -U "$(role_of "$1")" -X -q -c "SELECT pg_sleep($3)" >/dev/null 2>>"$dir/refused.log" &
    sleep "${4:-0}"
  done
}

echo "== The API backend opens 6 connections. Then each worker type scales to 8 containers x 3 = 24"
echo "   connections (72 in all; event, then semantic, then extraction), each held for 4 seconds."
hold backend 6 9
hold event_worker 24 4 0.02
hold semantic_worker 24 4 0.02
hold extraction_worker 24 4 0.05
sleep 0.5

example() {  # example <message>: how many refusals said so, and the first of them
  echo "   refused logins: $(grep -c "FATAL:  $1" "$dir/refused.log" || true)"
  { grep -m1 -A2 "FATAL:  $1" "$dir/refused.log" || true; } | sed 's/^/   /'
}
echo "== Extraction and semantic workers past their budget (on_full = queue) wait their turn:"
q -c "SELECT budget, state, count(*), max(queue_position) AS last_in_line, round(max(waited_ms)) AS longest_wait_ms FROM connbudget.sessions WHERE budget IN ('extraction', 'semantic') GROUP BY 1, 2 ORDER BY 1, 2"
echo "== Event workers past their budget (on_full = reject) are refused at login, SQLSTATE 53300:"
example 'connection budget "event" is full'
echo "== Waiting logins hold a backend too, and may not take one another budget is entitled to (the"
echo "   budgets' 42 fit the server's 57, so each may always have its max_connections): beyond the"
echo "   15 spare, workers are refused, queueing or not; a waiting semantic worker (priority 1)"
echo "   gives its place to an extraction worker (priority 2):"
example 'remaining connections are reserved'

echo "== The API backend still logs in 4 more times (its reservation is kept free for it):"
for _ in 1 2 3 4; do
  PGAPPNAME=backend psql -U api -X -At -c "SELECT '   the API backend logged in: ' || current_setting('application_name') || ' as ' || current_user"
done
echo "   and connbudget.explain() says why a further worker login is refused:"
q -x -c "SELECT budget, verdict, server_capacity, server_in_use, reserved_for_others FROM connbudget.explain('semantic_worker', 'semantic', 'postgres')" | sed 's/^/   /'

echo "== SELECT * FROM connbudget.status; during the overload"
q -c "SELECT budget, max_connections, reserved, on_full, priority, active, waiting, admitted, rejected, reserved_in_use, server_free FROM connbudget.status"
echo "== Who holds what (connbudget.sessions):"
q -c "SELECT budget, state, role_name, count(*) AS sessions FROM connbudget.sessions GROUP BY 1, 2, 3 ORDER BY 1, 2"

wait
echo "== After the sessions ended, every slot came back:"
q -c "SELECT budget, max_connections, reserved, on_full, priority, active, waiting, admitted, rejected, reserved_in_use, server_free FROM connbudget.status"
echo "== Queued workers got in as slots freed; what it cost, measured inside the extension:"
q -c "SELECT budget, admitted, rejected, queued, timed_out, round(avg_wait_ms) AS avg_wait_ms, round(max_wait_ms) AS max_wait_ms FROM connbudget.status WHERE budget IN ('extraction', 'semantic', 'event')"
q -c "SELECT measure, count, round(mean_us::numeric, 1) AS mean_us, round(p50_us::numeric, 1) AS p50_us, round(p99_us::numeric, 1) AS p99_us FROM connbudget.latency"

echo
echo "==== Operating it"
echo "== Who was turned away, and why (connbudget.status):"
q -c "SELECT budget, admitted, rejected_full, rejected_queue_full, rejected_reserved, timed_out, queued, waits, peak, to_char(peak_at, 'HH24:MI:SS.MS') AS peak_at, to_char(last_refusal_at, 'HH24:MI:SS.MS') AS last_refusal_at FROM connbudget.status WHERE budget <> 'exempt'"
echo "== How long the queued workers waited (connbudget.wait_histogram, per bucket):"
q -c "SELECT budget, string_agg(CASE WHEN le_ms = 'Infinity' THEN '>10s' ELSE '<=' || le_ms || 'ms' END || ': ' || waits, '  ' ORDER BY le_ms) AS waits FROM connbudget.wait_histogram WHERE budget IN ('extraction', 'semantic') GROUP BY budget ORDER BY budget"
echo "== What happened second by second (connbudget.history, sampled every second here; admitted"
echo "   and rejected are what each second added):"
q -c "SELECT to_char(sampled_at, 'HH24:MI:SS') AS sampled_at, budget, active, waiting, admitted, rejected FROM connbudget.history WHERE budget IN ('extraction', 'event') AND (active + waiting + admitted + rejected) > 0 ORDER BY sampled_at, budget LIMIT 14"
echo "== The server log: at most one line per budget per second, the rest summarised by the worker:"
sleep 1.2
grep -A1 -E 'connection budget "event"' "$dir/server.log" | grep -v -E 'HINT|^--' | sed -E 's/^[0-9-]+ ([0-9:.]+) UTC \[[0-9]+\] (\[unknown\] )?/   \1 /' | head -6

echo "== A dry run: a new budget for report jobs in monitor mode, max_connections 2; 4 report jobs log in:"
q <<'SQL'
INSERT INTO connbudget.budgets (name, application_name, role_name, max_connections, on_full, mode)
VALUES ('reports', 'report_job', 'reports', 2, 'reject', 'monitor');
SELECT connbudget.reload() AS generation \gset
SQL
hold report_job 4 2
sleep 0.5
q -c "SELECT budget, mode, max_connections, active, admitted, rejected, would_reject, would_queue FROM connbudget.status WHERE budget = 'reports'"
grep -m1 -A1 'would have refused' "$dir/server.log" | sed -E 's/^[0-9-]+ ([0-9:.]+) UTC \[[0-9]+\] (\[unknown\] )?/   \1 /'
wait

echo "== An incident: pause the semantic workers. Their 2 sessions go on; a new login waits:"
hold semantic_worker 2 3
sleep 0.3
q -c "SELECT connbudget.pause('semantic')"
hold semantic_worker 1 1
sleep 0.5
q -c "SELECT budget, paused, active, waiting FROM connbudget.status WHERE budget = 'semantic'"
echo "   resume() lets the waiting login in at once:"
q -c "SELECT connbudget.resume('semantic')"
sleep 0.3
q -c "SELECT budget, paused, active, waiting FROM connbudget.status WHERE budget = 'semantic'"
wait

echo "== Another: 5 idle extraction sessions and 2 inside a transaction; the budget is cut to 1 and"
echo "   terminate_excess() ends the idle ones, longest idle first, never one inside a transaction:"
for _ in 1 2 3 4 5; do
  { sleep 8; } | PGAPPNAME=extraction_worker psql -U extraction -X -q >/dev/null 2>&1 &
  sleep 0.1
done
for _ in 1 2; do
  { echo 'BEGIN;'; echo 'SELECT 1;'; sleep 8; } | PGAPPNAME=extraction_worker psql -U extraction -X -q >/dev/null 2>&1 &
done
sleep 0.5
q -c "UPDATE connbudget.budgets SET max_connections = 1 WHERE name = 'extraction'"
q -c "SELECT connbudget.reload() > 0 AS live" >/dev/null
q -c "SELECT pid, state, to_char(state_change, 'HH24:MI:SS.MS') AS state_change, application_name FROM connbudget.terminate_excess('extraction')"
q -c "SELECT budget, max_connections, active FROM connbudget.status WHERE budget = 'extraction'"
wait
echo "== The metrics file for postgres_exporter: metrics/postgres_exporter.yaml (see the README)."
