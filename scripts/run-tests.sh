#!/usr/bin/env bash
# Runs every test of pg_connbudget. As root on a fresh Debian 12 machine it first installs
# the packages it needs and the extension itself; the servers then run as the unprivileged
# "postgres" user (PostgreSQL refuses to run as root) in a copy of the tree. As any other
# user it expects the extension to be installed already and runs the tests as that user.
#   unit tests of the core (GoogleTest), pg_regress (SQL surface), TAP (real servers)
set -euo pipefail
cd "$(dirname "$0")/.."
source=$(pwd)
logs=$(mktemp -d /tmp/pg_connbudget-tests.XXXXXX)
chmod 755 "$logs"

run_as=()
if [ "$(id -u)" = 0 ]; then
  bash scripts/install-deps.sh
  make -s -j"$(nproc)"
  make -s install
  run_as=(runuser -u postgres --)
fi

echo "== unit tests of the core"
make -s unittest | tee "$logs/unit.log"

# pg_regress and the TAP suites write into the tree: give them a copy they own.
work="$logs/tree"
mkdir "$work"
tar --exclude=./.git --exclude=./results --exclude=./tmp_check --exclude=./tmp_check_regress -cf - . | tar -xf - -C "$work"
[ "$(id -u)" = 0 ] && chown -R postgres "$work" "$logs"

status=0
echo "== pg_regress and TAP tests"
"${run_as[@]}" make -s -C "$work" installcheck PROVE_FLAGS=--timer 2>&1 | tee "$logs/installcheck.log" || status=1
if [ "$status" != 0 ]; then
  [ -f "$work/regression.diffs" ] && cat "$work/regression.diffs"
  for log in "$work"/tmp_check/log/regress_log_*; do
    [ -f "$log" ] && { echo "== tail of $log"; tail -n 40 "$log"; }
  done
fi

unit=$(grep -oP '^\[  PASSED  \] \K[0-9]+' "$logs/unit.log" || echo 0)
regress=$(grep -oP 'All \K[0-9]+(?= tests passed)' "$logs/installcheck.log" || echo 0)
regress_failed=$(grep -oP '\b\K[0-9]+(?= of [0-9]+ tests failed)' "$logs/installcheck.log" || echo 0)
tap=$(grep -oP 'Files=[0-9]+, Tests=\K[0-9]+' "$logs/installcheck.log" || echo 0)
tap_failed=$({ grep -oP 'Failed \K[0-9]+(?=/[0-9]+ subtests)' "$logs/installcheck.log" || true; } | awk '{s += $1} END {print s + 0}')
echo "unit: $unit passed; pg_regress: $regress passed, $regress_failed failed; TAP: $tap assertions"
passed=$((unit + regress + tap - tap_failed))
failed=$((regress_failed + tap_failed))
[ "$status" = 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "$passed passed, $failed failed"
exit "$status"
