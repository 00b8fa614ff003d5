#!/usr/bin/env bash
# Runs every test (scripts/run-tests.sh) on each supported PostgreSQL: the one $PG_CONFIG
# names (default: Debian's 15), then every archive in $PG_ARCHIVES (default:
# ../shared/postgresql beside the repository, if it exists: 16, 17, 18, 18 with
# assertions), each unpacked into its own throwaway folder. Fails if any version fails;
# the last line counts the tests of all versions together. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
archives=${PG_ARCHIVES:-../shared/postgresql}
started=$(date +%s)
summaries=()
total_passed=0 total_failed=0 status=0

# run <label> <environment...>: one version's run; adds its counts to the totals.
run() {
  local label=$1 out
  shift
  out=$(mktemp)
  local begun=$(date +%s) rc=0
  env "$@" bash scripts/run-tests.sh 2>&1 | tee "$out" || rc=1
  local counts
  counts=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)
  [ -n "$counts" ] || counts="0 passed, 1 failed"
  [ "$rc" = 0 ] || status=1
  local passed=${counts%% passed*} failed
  failed=${counts#*, }
  failed=${failed%% failed*}
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  summaries+=("$label: $passed passing, $failed failing, $(($(date +%s) - begun)) s")
  rm -f "$out"
}

run "$(${PG_CONFIG:-pg_config} --version)" PG_CONFIG="${PG_CONFIG:-pg_config}"

if [ -d "$archives" ]; then
  command -v zstd >/dev/null || bash scripts/install-deps.sh
  for archive in "$archives"/postgresql-*.tar.zst; do
    [ -f "$archive" ] || continue
    dir=$(mktemp -d /tmp/pg_connbudget-server.XXXXXX)
    zstd -dc "$archive" | tar -x -C "$dir"
    chmod 755 "$dir"
    pg_config=$(echo "$dir"/*/bin/pg_config)
    # The unit tests do not depend on the server: they ran once above.
    run "$(basename "$archive" .tar.zst)" PG_CONFIG="$pg_config" RUN_UNIT=0
    rm -rf "$dir"
  done
fi

echo "== every version, $(($(date +%s) - started)) s in all"
printf '  %s\n' "${summaries[@]}"
echo "$total_passed passed, $total_failed failed"
exit "$status"
