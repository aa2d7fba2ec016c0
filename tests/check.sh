#!/bin/sh
# Tool runs over the engine and the extension.
#   tests/check.sh lint                  cppcheck and clang-tidy over core/, ext/ and
#                                        server/: must report nothing
#   tests/check.sh valgrind BUILD        the unit, extension and durability tests
#                                        under valgrind memcheck (no errors, no leaks)
#   tests/check.sh coverage BUILD        line and branch coverage of core/ and ext/
#                                        (BUILD built with --coverage)
set -u
what=$1; build=${2:-build}
tmp=${TMPDIR:-/tmp}
fast=$tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && fast=/dev/shm
case $what in
lint)
  fail=0
  cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability \
    --inline-suppr -D_GNU_SOURCE -Icore --suppress=missingIncludeSystem \
    --suppress=pointerSize:core/keydir.c \
    core ext server || fail=1
  for f in core/*.c ext/*.c server/*.c; do
    clang-tidy --quiet "$f" -- -std=c11 -D_GNU_SOURCE -Icore 2>/dev/null || fail=1
  done
  [ $fail = 0 ] && echo "lint: cppcheck and clang-tidy clean"
  echo "lint: $((1 - fail)) passed, $fail failed"
  exit $fail ;;
valgrind)
  vg="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible --show-leak-kinds=definite,indirect,possible"
  passed=0; failed=0
  for b in "$build"/tests/test_* ; do
    [ -x "$b" ] || continue
    if TINKV_SO="$build/tinkv" $vg "$b" >"$tmp/vg.out" 2>&1; then passed=$((passed+1))
    else failed=$((failed+1)); echo "valgrind: $b failed"; tail -30 "$tmp/vg.out"; fi
  done
  d=$build/tests/durability
  for cmd in "$d/faults -m full" "$d/powerloss -n 30" "$d/corrupt -n 2" \
             "$d/crash -r 5 -x $build/tinkv" "$d/concurrent -n 100" \
             "$d/sharecrash -r 2"; do
    if TMPDIR=$fast $vg $cmd >"$tmp/vg.out" 2>&1; then passed=$((passed+1))
    else failed=$((failed+1)); echo "valgrind: $cmd failed"; tail -30 "$tmp/vg.out"; fi
  done
  echo "valgrind: $passed passed, $failed failed"
  [ $failed = 0 ] ;;
coverage)
  lcov --quiet --capture --rc lcov_branch_coverage=1 --directory "$build" \
       --output-file "$build/cov.info" 2>/dev/null
  lcov --quiet --rc lcov_branch_coverage=1 --extract "$build/cov.info" \
       "*/core/*" --output-file "$build/cov-core.info" 2>/dev/null
  lcov --quiet --rc lcov_branch_coverage=1 --extract "$build/cov.info" \
       "*/ext/*" --output-file "$build/cov-ext.info" 2>/dev/null
  for part in core ext; do
    echo "coverage of $part/:"
    lcov --rc lcov_branch_coverage=1 --summary "$build/cov-$part.info" 2>&1 \
      | grep -E "lines|branches"
  done ;;
*)
  echo "usage: tests/check.sh lint | valgrind BUILD | coverage BUILD" >&2
  exit 2 ;;
esac
