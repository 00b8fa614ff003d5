#!/usr/bin/env bash
# Runs every test of pg_connbudget against one PostgreSQL: the one whose pg_config is
# $PG_CONFIG (default: pg_config on the PATH, Debian's PostgreSQL 15).
#   unit tests of the core (GoogleTest; again under ASan and UBSan; a short run of the two
#   fuzzers), pg_regress (SQL surface), TAP (real servers)
# As root on a fresh Debian 12 machine it first installs the packages it needs, then builds
# and installs the extension from a copy of the tree; the servers run as the unprivileged
# "postgres" user (PostgreSQL refuses to run as root). As any other user it builds in the
# copy too, expects the extension to be installed already, and runs the tests as that user.
# Settings: RUN_UNIT=0 skips the unit tests (they do not depend on the server version).
# A server log with an assertion failure (TRAP) or a backend that died of a signal other
# than the SIGKILL some tests send on purpose fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
source=$(pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
RUN_UNIT=${RUN_UNIT:-1}

run_as=()
if [ "$(id -u)" = 0 ]; then
  bash scripts/install-deps.sh
  run_as=(runuser -u postgres --)
fi
PG_CONFIG=$(command -v "$PG_CONFIG")
version=$("$PG_CONFIG" --version)
logs=$(mktemp -d /tmp/pg_connbudget-tests.XXXXXX)
chmod 755 "$logs"
echo "== $version ($PG_CONFIG), logs in $logs"

status=0
# Build, and let pg_regress and the TAP suites write, in a copy of the tree of our own.
work="$logs/tree"
mkdir "$work"
tar --exclude=./.git --exclude='*.o' --exclude='*.so' --exclude=./.deps --exclude=./results \
  --exclude=./tmp_check --exclude=./tmp_check_regress --exclude=./test/unit/run_unit_tests -cf - . |
  tar -xf - -C "$work"
make -s -C "$work" -j"$(nproc)" PG_CONFIG="$PG_CONFIG"
[ "$(id -u)" = 0 ] && make -s -C "$work" install PG_CONFIG="$PG_CONFIG"

unit=0 unit_failed=0
if [ "$RUN_UNIT" = 1 ]; then
  echo "== unit tests of the core"
  make -s -C "$work" unittest PG_CONFIG="$PG_CONFIG" | tee "$logs/unit.log" || unit_failed=$((unit_failed + 1))
  echo "== the same under AddressSanitizer and UndefinedBehaviorSanitizer (clang)"
  make -s -C "$work" unittest-sanitized PG_CONFIG="$PG_CONFIG" 2>&1 | tee "$logs/unit-sanitized.log" |
    grep -E '^\[  (PASSED|FAILED)  \]|ERROR|runtime error' || true
  grep -q '^\[  PASSED  \]' "$logs/unit-sanitized.log" && ! grep -qE 'ERROR: |runtime error' "$logs/unit-sanitized.log" ||
    { unit_failed=$((unit_failed + 1)); tail -n 40 "$logs/unit-sanitized.log"; }
  echo "== fuzzing matching and ledger operations, ${FUZZ_SECONDS:-15} s each (make fuzz runs longer)"
  make -s -C "$work" fuzz PG_CONFIG="$PG_CONFIG" FUZZ_SECONDS="${FUZZ_SECONDS:-15}" >"$logs/fuzz.log" 2>&1 ||
    { unit_failed=$((unit_failed + 1)); tail -n 40 "$logs/fuzz.log"; }
  grep -E '^stat::number_of_executed_units' "$logs/fuzz.log" || true
  unit=$(( $(grep -oP '^\[  PASSED  \] \K[0-9]+' "$logs/unit.log" || echo 0) \
         + $(grep -oP '^\[  PASSED  \] \K[0-9]+' "$logs/unit-sanitized.log" || echo 0) ))
  [ "$unit_failed" = 0 ] || status=1
fi
[ "$(id -u)" = 0 ] && chown -R postgres "$work" "$logs"

# The server's own libpq for its client programs (the relocatable builds' RUNPATH points
# where they were built).
in_tree=("${run_as[@]}" env LD_LIBRARY_PATH="$("$PG_CONFIG" --libdir)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  make -s -C "$work" PG_CONFIG="$PG_CONFIG")
echo "== pg_regress"
"${in_tree[@]}" installcheck TAP_TESTS= 2>&1 | tee "$logs/installcheck.log" || status=1
echo "== TAP tests"
"${in_tree[@]}" installcheck REGRESS= PROVE_FLAGS=--timer 2>&1 | tee -a "$logs/installcheck.log" || status=1
if [ "$status" != 0 ]; then
  [ -f "$work/regression.diffs" ] && cat "$work/regression.diffs"
  # The logs of the TAP files that failed (a "not ok", or no plan reached); all if none tells.
  failed_logs=()
  for log in "$work"/tmp_check/log/regress_log_*; do
    [ -f "$log" ] || continue
    if grep -qE '(^|\) )not ok' "$log" || ! grep -qE '(^|\) )1\.\.[0-9]+' "$log"; then failed_logs+=("$log"); fi
  done
  [ ${#failed_logs[@]} -gt 0 ] || failed_logs=("$work"/tmp_check/log/regress_log_*)
  for log in "${failed_logs[@]}"; do
    [ -f "$log" ] && { echo "== tail of $log"; tail -n 80 "$log"; }
  done
fi

# Server crashes: an assertion (TRAP), or a backend ended by a signal other than SIGKILL.
crashes=0
for log in "$work"/tmp_check/log/*.log "$work"/tmp_check_regress/log/*.log; do
  [ -f "$log" ] || continue
  if grep -qE '^TRAP: |terminated by signal ([0-8]|1[0-9]|[2-9][0-9])\b' "$log"; then
    echo "== server crash in $log:"
    grep -nE -B2 -A2 '^TRAP: |terminated by signal ([0-8]|1[0-9]|[2-9][0-9])\b' "$log" | head -n 40
    crashes=$((crashes + 1))
  fi
done

regress=$(grep -oP 'All \K[0-9]+(?= tests passed)' "$logs/installcheck.log" || echo 0)
regress_failed=$(grep -oP '\b\K[0-9]+(?= of [0-9]+ tests failed)' "$logs/installcheck.log" || echo 0)
[ "$regress" = 0 ] && [ "$regress_failed" != 0 ] &&
  regress=$(($(grep -oP '\b[0-9]+ of \K[0-9]+(?= tests failed)' "$logs/installcheck.log") - regress_failed))
tap=$(grep -oP 'Files=[0-9]+, Tests=\K[0-9]+' "$logs/installcheck.log" || echo 0)
tap_failed=$({ grep -oP 'Failed \K[0-9]+(?=/[0-9]+ subtests)' "$logs/installcheck.log" || true; } | awk '{s += $1} END {print s + 0}')
echo "$version: unit $unit passed, $unit_failed failed (plain and sanitized, and the fuzzers); pg_regress $regress passed, $regress_failed failed; TAP $((tap - tap_failed)) passed, $tap_failed failed; $crashes server logs with a crash"
passed=$((unit + regress + tap - tap_failed))
failed=$((unit_failed + regress_failed + tap_failed + crashes))
[ "$status" = 0 ] || [ "$failed" -gt 0 ] || failed=1
[ "$crashes" = 0 ] || status=1
echo "$passed passed, $failed failed"
exit "$status"
