#!/bin/sh
# SQL tests of the extension through the real sqlite3 shell.
#   tests/sql.sh BUILD
#
# Each sql/tests/NAME.sql runs in a fresh directory (the working directory,
# so relative store paths land there) as `sqlite3 -cmd '.load BUILD/tinkv'
# test.db < NAME.sql`; its output (stdout and stderr, with the directory
# shown as TMP) must equal sql/tests/NAME.expected.  TINKV_SQL_UPDATE=1
# rewrites the .expected files instead.
#
# Also run: sql/demo.sql as `make demo` runs it (it must succeed), the
# application examples of tests/examples (C and Python), whose output must
# equal tests/examples/expected.txt, and tests/ext/share_sql.py (several
# processes on one table).
# The last line is "sql: N passed, M failed"; the exit status is 0 only if
# nothing failed.
set -u
build=${1:-build}
root=$(pwd -P)
so="$root/$build/tinkv"
passed=0
failed=0
tmpout=$(mktemp)

pass(){ passed=$((passed + 1)); echo "ok   $1"; }
fail(){ failed=$((failed + 1)); echo "FAIL $1"; }
newdir(){ d=$(mktemp -d) && cd "$d" && pwd -P && cd "$root"; }

if [ ! -f "$so.so" ]; then
  echo "sql: $so.so is missing (run make first)"
  echo "sql: 0 passed, 1 failed"
  exit 1
fi

for t in sql/tests/*.sql; do
  name=$(basename "$t" .sql)
  dir=$(newdir)
  (cd "$dir" && sqlite3 -cmd ".load $so" test.db < "$root/$t" > out 2>&1)
  sed "s|$dir|TMP|g" "$dir/out" > "$dir/out.norm"
  if [ "${TINKV_SQL_UPDATE:-}" = 1 ]; then
    cp "$dir/out.norm" "sql/tests/$name.expected"
  fi
  if cmp -s "$dir/out.norm" "sql/tests/$name.expected"; then
    pass "sql/tests/$name"
  else
    fail "sql/tests/$name"
    diff "sql/tests/$name.expected" "$dir/out.norm" | head -40
  fi
  rm -rf "$dir"
done

# The demo, in a directory of its own with the extension beside it.
dir=$(newdir)
ln -s "$so.so" "$dir/tinkv.so"
if (cd "$dir" && sqlite3 -bail demo.db < "$root/sql/demo.sql" > out 2>&1) \
   && [ -d "$dir/demo.db-kv.tinkv" ]; then
  pass "sql/demo.sql"
else
  fail "sql/demo.sql"
  cat "$dir/out"
fi
rm -rf "$dir"

# The application examples: a C program and a Python script.
dir=$(newdir)
if ${CC:-cc} -std=c11 -Wall -Wextra -Werror -o "$dir/example" \
     tests/examples/example.c -lsqlite3 \
   && "$dir/example" "$dir/c.db" "$so" > "$dir/out" 2>&1 \
   && cmp -s "$dir/out" tests/examples/expected.txt; then
  pass "tests/examples/example.c"
else
  fail "tests/examples/example.c"
  cat "$dir/out"
fi
# Debian's python3 is built with extension loading; a python3 found first
# on PATH (pyenv, a venv) may not be.
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
if "$python" tests/examples/example.py "$dir/py.db" "$so" > "$dir/out" 2>&1 \
   && cmp -s "$dir/out" tests/examples/expected.txt; then
  pass "tests/examples/example.py"
else
  fail "tests/examples/example.py"
  cat "$dir/out"
fi
rm -rf "$dir"

# Several processes on one table (counter, readers, busy timeout, stale
# reads, read-only connections, opens at once, kill -9).
if "$python" tests/ext/share_sql.py "$so" > "$tmpout" 2>&1; then
  pass "tests/ext/share_sql.py ($(tail -1 "$tmpout"))"
else
  fail "tests/ext/share_sql.py"
  cat "$tmpout"
fi
rm -f "$tmpout"

echo "sql: $passed passed, $failed failed"
[ "$failed" = 0 ]
