#!/usr/bin/env bash
# Runs TAP files again and again to find flaky tests: each file ROUNDS times (default 20)
# against the installed extension of $PG_CONFIG (default: pg_config), as the calling user
# (not root), in a copy of the tree. Prints one line per file: passes out of runs, and the
# failed assertions of each failed run.
#   ROUNDS=20 bash scripts/repeat-tap.sh [test/t/060_reservations.pl ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-pg_config}
ROUNDS=${ROUNDS:-20}
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/t/*.pl)
work=$(mktemp -d /tmp/pg_connbudget-repeat.XXXXXX)
tar --exclude=./.git --exclude='*.o' --exclude='*.so' --exclude=./tmp_check -cf - . | tar -xf - -C "$work"
export LD_LIBRARY_PATH="$("$PG_CONFIG" --libdir)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
failures=0
for file in "${files[@]}"; do
  passed=0
  notes=()
  for round in $(seq "$ROUNDS"); do
    if make -s -C "$work" installcheck PG_CONFIG="$PG_CONFIG" REGRESS= PROVE_TESTS="$file" >"$work/out.log" 2>&1; then
      passed=$((passed + 1))
    else
      failures=$((failures + 1))
      log="$work/tmp_check/log/regress_log_$(basename "$file" .pl)"
      kept="$work/failed-$(basename "$file" .pl)-$round.log"
      cp "$log" "$kept" 2>/dev/null || cp "$work/out.log" "$kept"
      notes+=("round $round: $({ grep -E '^(\[[^]]*\]\([^)]*\) )?not ok' "$kept" || true; } | sed -E 's/^\[[^]]*\]\([^)]*\) //' | head -n 3 | paste -sd';' -) ($kept)")
    fi
  done
  echo "$file: $passed of $ROUNDS passed"
  for note in "${notes[@]}"; do echo "    $note"; done
done
echo "logs of failed runs are kept in $work"
[ "$failures" = 0 ]
