#!/usr/bin/env bash
# Runs TAP files with every server process under valgrind's memcheck, and reports the
# errors whose stack passes through pg_connbudget. PostgreSQL's own noise (its allocator,
# shared memory) is left out by looking only at those stacks. Slow (20 to 50 times), so by
# default a few files that cover the login path, the queue, reclaim and the worker.
# Needs valgrind (Debian's), the extension installed, a non-root user.
#   bash scripts/valgrind-tap.sh [test/t/010_reject.pl ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-pg_config}
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/t/010_reject.pl test/t/050_queue.pl test/t/062_exact_capacity.pl test/t/067_idle_reclaim.pl)
bindir=$("$PG_CONFIG" --bindir)
work=$(mktemp -d /tmp/pg_connbudget-valgrind.XXXXXX)
mkdir "$work/bin" "$work/logs"
# A bindir whose postgres runs under valgrind. pg_ctl finds postgres beside its own
# resolved path, so it is a copy; the other tools (initdb too) stay links to the real ones.
for tool in "$bindir"/*; do ln -s "$tool" "$work/bin/$(basename "$tool")"; done
rm "$work/bin/postgres" "$work/bin/pg_ctl"
cp "$bindir/pg_ctl" "$work/bin/pg_ctl"
cat > "$work/bin/postgres" <<EOF
#!/bin/sh
exec valgrind --quiet --trace-children=yes --track-origins=no --leak-check=no --error-limit=no \\
  --num-callers=30 --log-file=$work/logs/%p.log "$bindir/postgres" "\$@"
EOF
chmod +x "$work/bin/postgres"
mkdir "$work/tree"
tar --exclude=./.git --exclude='*.o' --exclude='*.so' --exclude=./tmp_check -cf - . | tar -xf - -C "$work/tree"
pgxs=$(dirname "$("$PG_CONFIG" --pgxs)")/../..
status=0
(
  cd "$work/tree"
  mkdir -p tmp_check
  export PATH="$work/bin:$PATH" TESTDIR="$work/tree" PG_REGRESS="$pgxs/src/test/regress/pg_regress"
  export PG_TEST_TIMEOUT_DEFAULT=600 LD_LIBRARY_PATH="$("$PG_CONFIG" --libdir)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  prove -I "$pgxs/src/test/perl" -I test/perl "${files[@]}"
) || status=1
# An error report is a block of the log. Ours are those with one of our own frames (our
# sources are built with -g: "(ledger.cpp:123)") among their four innermost; deeper
# frames of ours only mean PostgreSQL's own code ran below our call (its relcache init
# file writes padding, for one).
report() {
  awk '/^==[0-9]+== [A-Z]/ { frames = 0; ours = 0; block = "" }
       /^==[0-9]+==    (at|by) / { frames++; if (frames <= 4 && $0 ~ /\.(cpp|hpp):[0-9]+\)/) ours = 1 }
       { block = block $0 "\n" }
       /^==[0-9]+== $/ { if (ours) printf "%s", block; ours = 0; block = "" }' "$work"/logs/*.log
}
errors=$(report | grep -c '^==[0-9]*== [A-Z]' || true)
echo "valgrind: $(ls "$work"/logs | wc -l) server processes ran under memcheck; errors in pg_connbudget's code: $errors"
[ "$errors" = 0 ] || report | head -n 80
echo "logs: $work/logs"
[ "$status" = 0 ] && [ "$errors" = 0 ]
