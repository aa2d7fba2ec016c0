#!/bin/sh
# Run test programs and the SQL tests; print one closing summary line.
#   tests/run.sh BUILD "BINARIES" [asan]
# Each cmocka program prints its own report; this adds them up.
set -u
build=$1; bins=$2; mode=${3:-}
passed=0; failed=0; failures=""
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Seconds each part took, printed slowest first at the end, so that the
# parts to move to the long targets are found by measurement.
t0=$(date +%s)
timed() { t1=$(date +%s); echo "$((t1 - t0)) $1" >>"$tmp/times"; t0=$t1; }
for b in $bins; do
  [ -x "$b" ] || continue
  echo "== $b"
  TINKV_SO="$build/tinkv" "$b" >"$tmp/out" 2>&1; rc=$?
  cat "$tmp/out"
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$tmp/out" | tail -n 1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$tmp/out" | tail -n 1)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  if [ $rc -ne 0 ] && [ "${f:-0}" = 0 ]; then failed=$((failed + 1)); fi
  [ $rc -ne 0 ] && failures="$failures $b"
  timed "$b"
done
# SQL tests through the real sqlite3 shell (not in the sanitizer pass).
if [ -z "$mode" ] && [ -x tests/sql.sh ]; then
  sh tests/sql.sh "$build" >"$tmp/sql" 2>&1; rc=$?
  cat "$tmp/sql"
  p=$(sed -n 's/^sql: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$tmp/sql")
  f=$(sed -n 's/^sql: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$tmp/sql")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  [ $rc -ne 0 ] && { [ "${f:-0}" = 0 ] && failed=$((failed + 1)); failures="$failures sql"; }
  timed "sql"
fi
# Server tests (need the server binary); in the sanitizer pass too, where
# tests/server.sh skips the benchmark and proxy runs.
if { [ -z "$mode" ] || [ "$mode" = asan ]; } && [ -x tests/server.sh ] && [ -x "$build/tinkv-server" ]; then
  sh tests/server.sh "$build" $mode >"$tmp/srv" 2>&1; rc=$?
  cat "$tmp/srv"
  p=$(sed -n 's/^server: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$tmp/srv")
  f=$(sed -n 's/^server: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$tmp/srv")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  [ $rc -ne 0 ] && { [ "${f:-0}" = 0 ] && failed=$((failed + 1)); failures="$failures server"; }
  timed "server"
fi
# tinkvctl and the SQL check/backup functions.
if [ -z "$mode" ] && [ -f tests/tools.sh ] && [ -x "$build/tinkvctl" ]; then
  sh tests/tools.sh "$build" >"$tmp/tools" 2>&1; rc=$?
  cat "$tmp/tools"
  p=$(sed -n 's/^tools: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$tmp/tools")
  f=$(sed -n 's/^tools: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$tmp/tools")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  [ $rc -ne 0 ] && { [ "${f:-0}" = 0 ] && failed=$((failed + 1)); failures="$failures tools"; }
  timed "tools"
fi
# One store, every front end: tinkv-server and SQL's encoding=raw.
if [ -z "$mode" ] && [ -f tests/frontends.sh ] && [ -x "$build/tinkv-server" ]; then
  sh tests/frontends.sh "$build" >"$tmp/fe" 2>&1; rc=$?
  cat "$tmp/fe"
  p=$(sed -n 's/^frontends: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$tmp/fe")
  f=$(sed -n 's/^frontends: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$tmp/fe")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  [ $rc -ne 0 ] && { [ "${f:-0}" = 0 ] && failed=$((failed + 1)); failures="$failures frontends"; }
  timed "frontends"
fi
# Every code block of README.md, run as shown.
if [ -z "$mode" ] && [ -f tests/readme.sh ]; then
  sh tests/readme.sh "$build" >"$tmp/readme" 2>&1; rc=$?
  cat "$tmp/readme"
  p=$(sed -n 's/^readme: \([0-9]*\) passed, \([0-9]*\) failed.*/\1/p' "$tmp/readme")
  f=$(sed -n 's/^readme: \([0-9]*\) passed, \([0-9]*\) failed.*/\2/p' "$tmp/readme")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  [ $rc -ne 0 ] && { [ "${f:-0}" = 0 ] && failed=$((failed + 1)); failures="$failures readme"; }
  timed "readme"
fi
# Install, pkg-config, `.load tinkv` by name, exported symbols, static link.
if [ -z "$mode" ] && [ -f tests/install.sh ]; then
  sh tests/install.sh "$build" >"$tmp/inst" 2>&1; rc=$?
  cat "$tmp/inst"
  p=$(sed -n 's/^install: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$tmp/inst")
  f=$(sed -n 's/^install: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$tmp/inst")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  [ $rc -ne 0 ] && { [ "${f:-0}" = 0 ] && failed=$((failed + 1)); failures="$failures install"; }
  timed "install"
fi
echo "slowest parts (seconds):"
sort -rn "$tmp/times" 2>/dev/null | head -n 8 | sed 's/^/  /'
[ -n "$failures" ] && echo "failing:$failures"
echo "${mode:-tests}: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ -z "$failures" ]
