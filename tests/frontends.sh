#!/bin/sh
# One store, every front end: a store written by tinkv-server read with the
# sqlite3 shell through encoding=raw, and the other way round, as a user
# would do it (the server stopped in between).
#   tests/frontends.sh BUILD
# Checks: every key and value the server wrote (binary ones too) reads back
# byte for byte as BLOBs; rows written from SQL are served by the server;
# key lookups, ranges, IN and ORDER BY on a raw table answer as on a
# native table of BLOB keys; a typed SQL table refuses a server's store and
# the server refuses a typed table's store, each with an error saying what
# to use, and neither changes the store; the recorded encoding travels with
# a backup.  Prints "frontends: N passed, M failed".
set -u
build=${1:-build}
root=$(pwd -P)
so="$root/$build/tinkv"
bin="$root/$build/tinkv-server"
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
passed=0; failed=0
ok()  { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; sed 's/^/     /' "$tmp/log" 2>/dev/null | tail -n 15; }
check() { name=$1; shift; if "$@" >"$tmp/log" 2>&1; then ok "$name"; else bad "$name"; fi; }
# same NAME WANT GOT
same() {
  if [ "$2" = "$3" ]; then ok "$1"; else
    printf 'want: %s\ngot:  %s\n' "$2" "$3" >"$tmp/log"; bad "$1"; fi
}
sql() { sqlite3 -batch -cmd ".load $so" "$@"; }

if ! command -v redis-cli >/dev/null 2>&1 || [ ! -x "$bin" ]; then
  echo "frontends: skipped (needs redis-cli and $bin)"
  echo "frontends: 0 passed, 0 failed"; exit 0
fi

# serve DIR: start the server on a free port (PORT); 1 if it exits instead.
serve() {
  rm -f "$tmp/server.log"     # the last server's log must not be read as this one's
  "$bin" --dir "$1" --port 0 --http-port off >"$tmp/server.log" 2>&1 &
  pid=$!
  i=0
  until grep -q ' RESP on ' "$tmp/server.log" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 200 ] || ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null; pid=""; return 1
    fi
    sleep 0.05
  done
  PORT=$(sed -n 's/.* RESP on [^ ]*:\([0-9]*\).*/\1/p' "$tmp/server.log" | tail -n 1)
}
# halt: stop the server cleanly (SIGTERM) and wait for it.
halt() { kill -TERM "$pid"; wait "$pid"; pid=""; }
rcli() { redis-cli -p "$PORT" "$@"; }

# 1. The server writes, then stops.
serve "$tmp/srv" || { cat "$tmp/server.log"; echo "frontends: 0 passed, 1 failed"; exit 1; }
rcli SET user:1 alice >/dev/null
rcli SET user:2 bob >/dev/null
rcli SET counter 10 >/dev/null
rcli INCR counter >/dev/null
rcli SET empty "" >/dev/null
printf 'a\000b\377\r\n' | rcli -x SET bin:val >/dev/null
# A key with a NUL and a 0xFF byte, which no shell argument can carry.
python3 -c "
import socket
s = socket.create_connection(('127.0.0.1', $PORT))
s.sendall(b'*3\r\n\$3\r\nSET\r\n\$3\r\nk\x00\xff\r\n\$2\r\n\x01\x02\r\n')
assert s.recv(16) == b'+OK\r\n'
" >"$tmp/log" 2>&1 || bad "binary key written over RESP"
rcli SET 'zz top' last >/dev/null
halt

# 2. sqlite3 reads every key and value as BLOBs, byte for byte.
got=$(sql :memory: "CREATE VIRTUAL TABLE kv USING tinkv('$tmp/srv', encoding=raw);" \
  "SELECT typeof(key), hex(key), typeof(value), hex(value) FROM kv ORDER BY key;" 2>&1)
want="blob|62696E3A76616C|blob|610062FF0D0A
blob|636F756E746572|blob|3131
blob|656D707479|blob|
blob|6B00FF|blob|0102
blob|757365723A31|blob|616C696365
blob|757365723A32|blob|626F62
blob|7A7A20746F70|blob|6C617374"
same "server's keys and values read back as BLOBs" "$want" "$got"

got=$(sql :memory: "CREATE VIRTUAL TABLE kv USING tinkv('$tmp/srv', encoding=raw);" \
  "SELECT CAST(value AS TEXT) FROM kv WHERE key = CAST('user:2' AS BLOB);" \
  "SELECT count(*) FROM kv WHERE key = 'user:2';" \
  "SELECT CAST(value AS TEXT) FROM kv WHERE key = x'757365723A31';" 2>&1)
same "point lookups by BLOB; TEXT equals no BLOB key" "bob
0
alice" "$got"

# 3. Lookups, ranges, IN and ORDER BY answer as a native table of BLOBs.
cat >"$tmp/q.sql" <<'SQL'
SELECT hex(key) FROM T WHERE key >= CAST('user:' AS BLOB) AND key < CAST('user;' AS BLOB);
SELECT hex(key) FROM T WHERE key > CAST('c' AS BLOB) ORDER BY key;
SELECT hex(key) FROM T WHERE key <= CAST('empty' AS BLOB);
SELECT hex(key) FROM T WHERE key < x'6B00FF';
SELECT hex(key) FROM T WHERE key = x'6B00FF';
SELECT hex(key) FROM T WHERE key > 'zzz' ORDER BY key;
SELECT hex(key) FROM T WHERE key < 'zzz';
SELECT hex(key) FROM T WHERE key > 5;
SELECT hex(key) FROM T WHERE key < 5;
SELECT hex(key) FROM T WHERE key IN (x'6B', CAST('counter' AS BLOB), 'counter', 7);
SELECT hex(key) FROM T WHERE key BETWEEN x'' AND x'FF';
SELECT hex(key) FROM T WHERE key GLOB 'user*';
SELECT count(*), hex(min(key)), hex(max(key)) FROM T;
SELECT hex(key) FROM T ORDER BY key DESC LIMIT 2;
SQL
sed 's/\bT\b/kv/g' "$tmp/q.sql" >"$tmp/q_kv.sql"
sed 's/\bT\b/nat/g' "$tmp/q.sql" >"$tmp/q_nat.sql"
got=$(sql :memory: "CREATE VIRTUAL TABLE kv USING tinkv('$tmp/srv', encoding=raw);" \
  ".read $tmp/q_kv.sql" 2>&1)
want=$(sql :memory: "CREATE VIRTUAL TABLE kv USING tinkv('$tmp/srv', encoding=raw);" \
  "CREATE TABLE nat(key PRIMARY KEY, value);" \
  "INSERT INTO nat SELECT key, value FROM kv;" ".read $tmp/q_nat.sql" 2>&1)
same "queries on a raw table equal a native table's" "$want" "$got"
check "... and some queries return rows" test "$(echo "$got" | wc -l)" -gt 15

# 4. SQL writes into the server's store; the server serves them.
cat >"$tmp/w.sql" <<SQL
CREATE VIRTUAL TABLE kv USING tinkv('$tmp/srv', encoding=raw);
INSERT INTO kv VALUES (CAST('from:sql' AS BLOB), 'hello');
INSERT INTO kv VALUES (x'6E756D', 41);
INSERT INTO kv VALUES (x'666C74', 2.5);
INSERT INTO kv VALUES (x'626C6F62', x'00FF');
UPDATE kv SET value = 'ALICE' WHERE key = CAST('user:1' AS BLOB);
DELETE FROM kv WHERE key = CAST('user:2' AS BLOB);
SQL
check "raw table accepts BLOB keys and any non-NULL value" sql :memory: <"$tmp/w.sql"
err=$(sql :memory: "CREATE VIRTUAL TABLE kv USING tinkv('$tmp/srv', encoding=raw);" \
  "INSERT INTO kv VALUES ('textkey', 'v');" 2>&1)
case "$err" in *"are BLOBs"*CAST*) ok "a TEXT key is refused, saying to CAST";;
  *) echo "$err" >"$tmp/log"; bad "a TEXT key is refused, saying to CAST";; esac
err=$(sql :memory: "CREATE VIRTUAL TABLE kv USING tinkv('$tmp/srv', encoding=raw);" \
  "INSERT INTO kv VALUES (x'01', NULL);" 2>&1)
case "$err" in *"NOT NULL constraint failed"*) ok "a NULL value is refused";;
  *) echo "$err" >"$tmp/log"; bad "a NULL value is refused";; esac

serve "$tmp/srv" || { cat "$tmp/server.log" >"$tmp/log"; bad "server restarts on its store"; }
if [ -n "$pid" ]; then
  same "server reads SQL's TEXT value" "hello" "$(rcli GET from:sql)"
  same "server counts on SQL's INTEGER value" "42" "$(rcli INCR num)"
  same "server reads SQL's REAL value as its text" "2.5" "$(rcli GET flt)"
  same "server reads SQL's BLOB value" "00ff0a" "$(rcli --raw GET blob | od -An -tx1 | tr -d ' \n')"
  same "server sees SQL's UPDATE" "ALICE" "$(rcli GET user:1)"
  same "server sees SQL's DELETE" "0" "$(rcli EXISTS user:2)"
  halt
fi

# 5. A typed table refuses the server's store and changes nothing.
ls -l "$tmp/srv" >"$tmp/before"
err=$(sql :memory: "CREATE VIRTUAL TABLE t USING tinkv('$tmp/srv');" 2>&1)
case "$err" in *"holds raw keys and values"*"encoding=raw"*) ok "typed table refuses a server's store";;
  *) echo "$err" >"$tmp/log"; bad "typed table refuses a server's store";; esac
ls -l "$tmp/srv" >"$tmp/after"
check "... and leaves it as it was" cmp "$tmp/before" "$tmp/after"

# 6. The server refuses a typed table's store; the table still reads it.
sql "$tmp/app.db" "CREATE VIRTUAL TABLE t USING tinkv('$tmp/typed');" \
  "INSERT INTO t VALUES (1, 'one'), ('two', 2.0), (x'03', NULL);" >"$tmp/log" 2>&1
if serve "$tmp/typed"; then
  halt; echo "server started on a typed store" >"$tmp/log"; bad "server refuses a typed table's store"
else
  cp "$tmp/server.log" "$tmp/log"
  if grep -q "typed keys and values of SQL tables" "$tmp/server.log"; then
    ok "server refuses a typed table's store"
  else bad "server refuses a typed table's store"; fi
fi
got=$(sql "$tmp/app.db" "SELECT quote(key), quote(value) FROM t ORDER BY key;" 2>&1)
same "... and the typed table still reads it" "1|'one'
'two'|2.0
X'03'|NULL" "$got"
err=$(sql :memory: "CREATE VIRTUAL TABLE r USING tinkv('$tmp/typed', encoding=raw);" 2>&1)
case "$err" in *"typed keys and values of SQL tables"*"without encoding=raw"*) ok "raw table refuses a typed store";;
  *) echo "$err" >"$tmp/log"; bad "raw table refuses a typed store";; esac

# 7. The recorded encoding travels with a backup.
sql :memory: "CREATE VIRTUAL TABLE kv USING tinkv('$tmp/srv', encoding=raw);" \
  "SELECT tinkv_backup('kv', '$tmp/bk') IS NOT NULL;" >"$tmp/log" 2>&1
err=$(sql :memory: "CREATE VIRTUAL TABLE t USING tinkv('$tmp/bk');" 2>&1)
case "$err" in *"holds raw keys and values"*) ok "a backup of a raw store is raw";;
  *) echo "$err" >"$tmp/log"; bad "a backup of a raw store is raw";; esac
got=$(sql :memory: "CREATE VIRTUAL TABLE r USING tinkv('$tmp/bk', encoding=raw);" \
  "SELECT count(*) FROM r;" 2>&1)
same "... and restores with encoding=raw" "10" "$got"

# 8. The option itself.
err=$(sql :memory: "CREATE VIRTUAL TABLE t USING tinkv('$tmp/x', encoding=utf8);" 2>&1)
case "$err" in *"encoding must be 'sql'"*) ok "a bad encoding value is an error";;
  *) echo "$err" >"$tmp/log"; bad "a bad encoding value is an error";; esac
got=$(sql "$tmp/app2.db" "CREATE VIRTUAL TABLE r USING tinkv('$tmp/new', encoding=raw);" \
  "INSERT INTO r VALUES (x'6B', 'v');" 2>&1; sql "$tmp/app2.db" "SELECT hex(key), typeof(value) FROM r;" 2>&1)
same "encoding=raw is kept in the schema (reopened raw)" "6B|blob" "$got"
if serve "$tmp/new"; then
  same "server serves a store a raw table created" "v" "$(rcli GET k)"; halt
else cp "$tmp/server.log" "$tmp/log"; bad "server serves a store a raw table created"; fi

echo "frontends: $passed passed, $failed failed"
[ "$failed" = 0 ]
