#!/bin/sh
# tinkvctl and the SQL functions tinkv_check / tinkv_backup, used as an
# operator would use them.
#   tests/tools.sh BUILD
# Checks: stat; check passes a sound store (exit 0) and flags a damaged one
# (exit 1, "FILE: offset N: ..." lines); dump | load round-trips every SQL
# value type and key type through the text stream; load refuses a stream
# cut short, naming the line; backup from SQL while the table is in use,
# restored with CREATE VIRTUAL TABLE ... USING tinkv('<backup>'), equals the
# original; incremental backup; tinkvctl backup and compact; salvage of a
# damaged store recovers every other key; the recorded key/value encoding
# goes through dump | load, salvage and incremental backup; no progress bar
# when stderr is not a terminal.  Prints "tools: N passed, M failed".
set -u
build=${1:-build}
root=$(pwd -P)
so="$root/$build/tinkv"
ctl="$root/$build/tinkvctl"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
ok()  { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; sed 's/^/     /' "$tmp/log" 2>/dev/null | tail -n 15; }
check() { name=$1; shift; if "$@" >"$tmp/log" 2>&1; then ok "$name"; else bad "$name"; fi; }
sql() { sqlite3 -batch -cmd ".load $so" "$@"; }

if [ ! -x "$ctl" ]; then
  echo "tools: $ctl is missing (run make first)"; echo "tools: 0 passed, 1 failed"; exit 1
fi

# A table with every value type under every key type.
cat >"$tmp/fill.sql" <<SQL
CREATE VIRTUAL TABLE kv USING tinkv('$tmp/kv', max_file_size=4096);
INSERT INTO kv VALUES (1, 42), (2, -9223372036854775808), (3, 2.5),
  (4, -0.0), (5, 'text'), (6, ''), (7, x''), (8, x'00ff10'), (9, NULL),
  ('héllo', 'wörld ✓'), ('line', 'a' || char(10) || 'b\\c'),
  (x'0001', 1e308), (2.25, zeroblob(3000)), ('big', randomblob(20000));
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<300)
  INSERT INTO kv SELECT 'k' || i, printf('%.*c', i, 'v') FROM c;
UPDATE kv SET value = value || '!' WHERE key GLOB 'k1*';
DELETE FROM kv WHERE key GLOB 'k2*';
SQL
check "fill a table" sql "$tmp/app.db" <"$tmp/fill.sql"
listing() {   # every row, typed, of the tinkv table on store $1
  sql :memory: "CREATE VIRTUAL TABLE t USING tinkv('$1');" \
    "SELECT typeof(key), quote(key), typeof(value), quote(value) FROM t ORDER BY key;"
}
listing "$tmp/kv" >"$tmp/orig.txt" 2>&1
nrows=$(sql "$tmp/app.db" "SELECT count(*) FROM kv;" 2>&1)
echo "$nrows" >"$tmp/log"
check "the table has every row" test "$nrows" -eq 203 -a -s "$tmp/orig.txt"

check "stat" sh -c "'$ctl' stat '$tmp/kv' | grep -q '^keys: *203$'"
check "stat lists segments with dead ratios" sh -c \
  "'$ctl' stat '$tmp/kv' | grep -Eq '^  [0-9]{10} .*%'"
check "check passes a sound store" "$ctl" check "$tmp/kv"
check "check prints ok" sh -c "'$ctl' check '$tmp/kv' | grep -q ': ok$'"
check "no progress bar off a terminal" sh -c \
  "'$ctl' check '$tmp/kv' 2>'$tmp/err' >/dev/null && test ! -s '$tmp/err'"
if command -v script >/dev/null 2>&1; then
  # script(1) runs the command on a pseudo-terminal.
  script -qec "'$ctl' check '$tmp/kv'" /dev/null >"$tmp/pty" 2>&1
  check "a progress bar on a terminal" sh -c \
    "grep -q '100%' '$tmp/pty' && grep -q ': ok' '$tmp/pty'"
  script -qec "'$ctl' -q check '$tmp/kv'" /dev/null >"$tmp/pty" 2>&1
  check "-q: no progress bar on a terminal" sh -c "! grep -q '%' '$tmp/pty'"
else
  echo "skip progress bar on a terminal: no script(1) to make one"
fi

# dump | load round trip, then the SQL view of the loaded store.
check "dump" sh -c "'$ctl' dump '$tmp/kv' >'$tmp/dump.txt'"
check "dump stream header and trailer" sh -c \
  "head -n 1 '$tmp/dump.txt' | grep -qx 'tinkv-dump 1' && tail -n 1 '$tmp/dump.txt' | grep -qx 'DATA=END records=203'"
check "load" sh -c "'$ctl' load '$tmp/loaded' <'$tmp/dump.txt'"
listing "$tmp/loaded" >"$tmp/loaded.txt" 2>&1
check "dump | load keeps every value type" cmp "$tmp/orig.txt" "$tmp/loaded.txt"
check "dump of the loaded store is the same stream" sh -c \
  "'$ctl' dump '$tmp/loaded' | cmp - '$tmp/dump.txt'"
head -n 100 "$tmp/dump.txt" >"$tmp/cut.txt"
"$ctl" load "$tmp/cutload" "$tmp/cut.txt" >"$tmp/out" 2>&1; rc=$?
check "load refuses a stream cut short, naming the line" sh -c \
  "[ $rc = 2 ] && grep -q 'line 100: no DATA=END' '$tmp/out'"
# Version 2 streams carry expiry times: load keeps them, dump writes them.
printf 'tinkv-dump 2\nformat=text\nHEADER=END\nexpire=4000000000000\n a\n 1\n b\n 2\nDATA=END records=2\n' \
  >"$tmp/exp.txt"
check "load of a stream with expiry times" sh -c "'$ctl' load '$tmp/expload' <'$tmp/exp.txt'"
check "dump keeps the expiry times" sh -c "'$ctl' dump '$tmp/expload' | cmp - '$tmp/exp.txt'"
printf 'tinkv-dump 2\nformat=text\nHEADER=END\nexpire=x\n a\n 1\nDATA=END records=1\n' >"$tmp/badexp.txt"
"$ctl" load "$tmp/badexpload" "$tmp/badexp.txt" >"$tmp/out" 2>&1; rc=$?
check "load refuses a bad expire= line" sh -c "[ $rc = 2 ] && grep -q 'line 4' '$tmp/out'"
printf 'not a dump\n' >"$tmp/junk.txt"
"$ctl" load "$tmp/junkload" "$tmp/junk.txt" >"$tmp/out" 2>&1; rc=$?
check "load refuses something else" sh -c "[ $rc = 2 ] && grep -q 'line 1' '$tmp/out'"

# SQL: check and backup while the table is in use (an open write
# transaction on it), restore, compare; then incremental.
out=$(sql "$tmp/app.db" "SELECT tinkv_check('kv');" 2>&1)
echo "$out" >"$tmp/log"
check "SELECT tinkv_check('kv') is ok" test "$out" = ok
out=$(sql "$tmp/app.db" "BEGIN; INSERT INTO kv VALUES('uncommitted', 1);" \
  "SELECT json_extract(tinkv_backup('kv', '$tmp/bk1'), '\$.files') > 0;" \
  "ROLLBACK;" 2>&1)
echo "$out" >"$tmp/log"
check "SELECT tinkv_backup('kv', dir) inside a write transaction" test "$out" = 1
listing "$tmp/bk1" >"$tmp/bk1.txt" 2>&1
check "the backup restores to the committed state" cmp "$tmp/orig.txt" "$tmp/bk1.txt"
check "tinkvctl check passes the backup" "$ctl" check "$tmp/bk1"
sql "$tmp/app.db" "INSERT INTO kv VALUES('later', 'x');" >/dev/null 2>&1
out=$(sql "$tmp/app.db" \
  "SELECT json_extract(tinkv_backup('kv', '$tmp/bk1', 'incremental'), '\$.kept') > 0;" 2>&1)
echo "$out" >"$tmp/log"
check "incremental backup keeps the files it has" test "$out" = 1
out=$(sql :memory: "CREATE VIRTUAL TABLE r USING tinkv('$tmp/bk1');" \
  "SELECT value FROM r WHERE key = 'later';" 2>&1)
echo "$out" >"$tmp/log"
check "the incremental backup has the new row" test "$out" = x
out=$(sql "$tmp/app.db" "SELECT tinkv_backup('kv', '$tmp/bk1');" 2>&1)
echo "$out" >"$tmp/log"
check "a full backup into a non-empty directory is refused" sh -c \
  "echo '$out' | grep -q 'not empty'"

# tinkv_stats: JSON that SQLite's JSON functions nest as an object, and
# counts the checks and backups run above with their durations.
out=$(sql "$tmp/app.db" "SELECT tinkv_check('kv');" \
  "SELECT json_type(json_object('s', tinkv_stats('kv')), '\$.s'), json_extract(tinkv_stats('kv'), '\$.checks'), json_extract(tinkv_stats('kv'), '\$.last_check_usec') >= 0, json_extract(tinkv_stats('kv'), '\$.last_compact_status');" 2>&1)
echo "$out" >"$tmp/log"
check "tinkv_stats nests as JSON and counts checks" test "$out" = "ok
object|1|1|ok"

# tinkvctl backup and compact on a closed store.
check "tinkvctl backup" "$ctl" backup "$tmp/kv" "$tmp/bk2"
check "tinkvctl backup -i" "$ctl" backup "$tmp/kv" "$tmp/bk2" -i
listing "$tmp/kv" >"$tmp/now.txt" 2>&1
listing "$tmp/bk2" >"$tmp/bk2.txt" 2>&1
check "tinkvctl backup restores equal" cmp "$tmp/now.txt" "$tmp/bk2.txt"
check "tinkvctl compact" sh -c "'$ctl' compact '$tmp/bk2' | grep -q 'bytes freed'"
listing "$tmp/bk2" >"$tmp/bk2c.txt" 2>&1
check "compaction keeps every row" cmp "$tmp/now.txt" "$tmp/bk2c.txt"

# SQL tinkv_stats() and the server's /v1/stats: the same fields, by name
# and in order (one writer, tkv_stats_json).
srv="$root/$build/tinkv-server"
if [ -x "$srv" ] && command -v curl >/dev/null 2>&1; then
  # The server serves raw stores only; SQL reads its store with encoding=raw.
  "$srv" --dir "$tmp/srvstore" --port 0 --http-port 0 --bind 127.0.0.1 \
    >"$tmp/srv.log" 2>&1 &
  spid=$!
  i=0
  until grep -q ' HTTP on ' "$tmp/srv.log" || [ $i -gt 200 ]; do
    i=$((i + 1)); sleep 0.05
  done
  hport=$(sed -n 's/.* HTTP on [^ ]*:\([0-9]*\).*/\1/p' "$tmp/srv.log" | tail -n 1)
  rest=$(curl -s "http://127.0.0.1:$hport/v1/stats")
  kill -TERM "$spid"; wait "$spid" 2>/dev/null
  restnames=$(sql :memory: "SELECT group_concat(key, ',') FROM json_each('$rest');" 2>&1)
  sqlnames=$(sql :memory: "CREATE VIRTUAL TABLE t USING tinkv('$tmp/srvstore', encoding=raw);" \
    "SELECT group_concat(key, ',') FROM json_each(tinkv_stats('t'));" 2>&1)
  printf 'rest: %s\nsql:  %s\n' "$restnames" "$sqlnames" >"$tmp/log"
  check "REST /v1/stats and SQL tinkv_stats() have the same fields" \
    sh -c "[ -n '$sqlnames' ] && [ '$restnames' = '$sqlnames' ]"
else
  echo "skip REST and SQL stats fields: no tinkv-server or curl"
fi

# Damage: one flipped byte in the middle of the first segment.
cp -r "$tmp/kv" "$tmp/dmg"
seg=$(ls "$tmp/dmg"/*.seg | head -n 1)
printf '\377' | dd of="$seg" bs=1 seek=100 conv=notrunc 2>/dev/null
"$ctl" check "$tmp/dmg" >"$tmp/out" 2>&1; rc=$?
check "check flags the damage (exit 1)" test $rc = 1
check "check names file and offset" grep -q "$(basename "$seg"): offset [0-9]*:" "$tmp/out"
"$ctl" salvage "$tmp/dmg" "$tmp/saved" >"$tmp/out" 2>&1; rc=$?
check "salvage reports what it could not save (exit 1)" sh -c \
  "[ $rc = 1 ] && grep -q 'not saved' '$tmp/out'"
check "the salvaged store passes check" "$ctl" check "$tmp/saved"
listing "$tmp/saved" >"$tmp/saved.txt" 2>&1
# Every row but the damaged record's key is as it was.
sort "$tmp/now.txt" >"$tmp/a"; sort "$tmp/saved.txt" >"$tmp/b"
missing=$(comm -23 "$tmp/a" "$tmp/b" | wc -l)
echo "rows lost: $missing" >"$tmp/log"
check "salvage keeps every undamaged row" test "$missing" -eq 1

# The store's recorded key/value encoding travels with its data: dump writes
# it, load records it (and refuses a store recording another), salvage and
# an incremental backup keep it.
sql :memory: "CREATE VIRTUAL TABLE r USING tinkv('$tmp/raw', encoding=raw);" \
  "INSERT INTO r VALUES (x'6b31', x'7631'), (x'6b32', x'00ff');" >"$tmp/log" 2>&1
check "dump of an encoding=raw store says so" sh -c \
  "'$ctl' dump '$tmp/raw' >'$tmp/raw.txt' && sed -n 3p '$tmp/raw.txt' | grep -qx 'encoding=raw'"
check "load of it" sh -c "'$ctl' load '$tmp/rawload' <'$tmp/raw.txt'"
check "the loaded store is raw too (same dump)" sh -c "'$ctl' dump '$tmp/rawload' | cmp - '$tmp/raw.txt'"
out=$(sql :memory: "CREATE VIRTUAL TABLE t USING tinkv('$tmp/rawload', encoding=raw);" \
  "SELECT hex(key) || '=' || hex(value) FROM t ORDER BY key;" 2>&1)
echo "$out" >"$tmp/log"
check "an encoding=raw table reads the loaded store" test "$out" = "6B31=7631
6B32=00FF"
sql :memory: "CREATE VIRTUAL TABLE t USING tinkv('$tmp/rawload');" >"$tmp/log" 2>&1; rc=$?
check "a typed table refuses the loaded raw store" test $rc != 0
"$ctl" load "$tmp/loaded" "$tmp/raw.txt" >"$tmp/out" 2>&1; rc=$?
cp "$tmp/out" "$tmp/log"
check "load refuses a raw stream into an SQL store, naming both" sh -c \
  "[ $rc = 2 ] && grep -q 'encoding=raw, the store records encoding=sql' '$tmp/out'"
"$ctl" salvage "$tmp/raw" "$tmp/rawsaved" >"$tmp/log" 2>&1
check "salvage keeps the encoding" sh -c "'$ctl' dump '$tmp/rawsaved' | cmp - '$tmp/raw.txt'"
printf 'tinkv-dump 1\nformat=text\nHEADER=END\nDATA=END records=0\n' >"$tmp/none.txt"
check "a store with no recorded encoding" sh -c "'$ctl' load '$tmp/late' <'$tmp/none.txt'"
check "backed up" "$ctl" backup "$tmp/late" "$tmp/bk3"
check "then records one (load of a raw stream)" sh -c "'$ctl' load '$tmp/late' <'$tmp/raw.txt'"
check "incremental backup" "$ctl" backup "$tmp/late" "$tmp/bk3" -i
check "the incremental backup has the new encoding record" sh -c \
  "'$ctl' dump '$tmp/bk3' | cmp - '$tmp/raw.txt'"

check "usage errors exit 2" sh -c "'$ctl' frobnicate; [ \$? = 2 ]"
check "version" sh -c "'$ctl' version | grep -q '^tinkvctl '"

echo "tools: $passed passed, $failed failed"
[ "$failed" = 0 ]
