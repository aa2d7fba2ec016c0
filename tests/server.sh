#!/bin/sh
# Tests of tinkv-server, against the real redis-cli, redis-benchmark,
# nutcracker and curl, plus a raw RESP client (tests/server/test_resp.py).
#   tests/server.sh BUILD [asan|tsan]
# With a sanitizer mode (a server built with sanitizers) the benchmark and
# proxy runs are skipped: they exercise no server code the rest does not,
# and take long under a sanitizer.
# Every server listens on a free loopback port (--port 0) in a temporary
# directory.  Prints "server: N passed, M failed" last; exits non-zero on
# any failure.
set -u
build=${1:-build}
san=${2:-}
bin=$(cd "$build" 2>/dev/null && pwd)/tinkv-server
here=$(cd "$(dirname "$0")" && pwd)
py="python3 $here/server/test_resp.py"
tmp=$(mktemp -d)
pids=""
passed=0; failed=0
start_prefix=""

cleanup() {
  for p in $pids; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# section NAME: start a section; the seconds each took are listed at the
# end, slowest first.
sec_name=""; sec_t0=$(date +%s)
section() {
  now=$(date +%s)
  [ -n "$sec_name" ] && echo "$((now - sec_t0)) $sec_name" >>"$tmp/sections"
  sec_name=$1; sec_t0=$now
  [ -n "$1" ] && echo "== $1"
}
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
# check NAME WANT GOT
check() {
  if [ "$2" = "$3" ]; then pass; else fail "$1: got [$3], want [$2]"; fi
}
# has NAME NEEDLE HAYSTACK
has() {
  case "$3" in *"$2"*) pass ;; *) fail "$1: [$2] not in [$3]" ;; esac
}

# pysuite ARGS...: run a suite of test_resp.py and add up its counts.
pysuite() { suite 120 $py "$@"; }

# suite TIMEOUT COMMAND...: run a Python suite and add up its counts.
suite() {
  limit=$1; shift
  out=$(timeout "$limit" "$@" 2>&1)
  echo "$out" | grep -v '^[a-z]*: [0-9]* passed, [0-9]* failed$'
  line=$(echo "$out" | grep '^[a-z]*: [0-9]* passed, [0-9]* failed$' | tail -n 1)
  p=$(echo "$line" | sed -n 's/.*: \([0-9]*\) passed.*/\1/p')
  f=$(echo "$line" | sed -n 's/.*passed, \([0-9]*\) failed/\1/p')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  [ -n "$line" ] || fail "suite $1 printed no result"
  echo "${line:-$1: no result}"
}

# start NAME [OPTIONS...]: start a server (under $start_prefix, a command
# such as env with settings, when set), logging to $tmp/NAME.log; sets
# PID, PORT and HPORT.  Fails if it does not log its start-up line.
start() {
  name=$1; shift
  $start_prefix "$bin" --port 0 --http-port 0 "$@" >"$tmp/$name.log" 2>&1 &
  PID=$!
  pids="$pids $PID"
  i=0
  until grep -q ' RESP on ' "$tmp/$name.log"; do
    i=$((i + 1))
    if [ $i -gt 200 ] || ! kill -0 "$PID" 2>/dev/null; then
      fail "server $name did not start: $(cat "$tmp/$name.log")"
      return 1
    fi
    sleep 0.05
  done
  PORT=$(sed -n 's/.* RESP on [^ ]*:\([0-9]*\).*/\1/p' "$tmp/$name.log" | tail -n 1)
  HPORT=$(sed -n 's/.* HTTP on [^ ]*:\([0-9]*\).*/\1/p' "$tmp/$name.log" | tail -n 1)
}

# stop PID: SIGTERM, and its exit status in STATUS.
stop() {
  kill -TERM "$1"
  wait "$1"; STATUS=$?
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

if [ ! -x "$bin" ]; then
  echo "no $bin"; echo "server: 0 passed, 1 failed"; exit 1
fi

# ------------------------------------------------------------ options
section "options"
out=$("$bin" --help); check "--help status" 0 $?
has "--help text" "--sync MODE" "$out"
"$bin" --sync sometimes >/dev/null 2>&1; check "bad option status" 2 $?
"$bin" --port 99999 >/dev/null 2>&1; check "bad port status" 2 $?
mkdir "$tmp/cwd"
(cd "$tmp/cwd" && exec "$bin" --port 0 --http-port off) >"$tmp/cwd.log" 2>&1 &
cpid=$!; pids="$pids $cpid"
i=0; until grep -q ' RESP on ' "$tmp/cwd.log" || [ $i -gt 100 ]; do i=$((i+1)); sleep 0.05; done
has "start-up line" "store $tmp/cwd/tinkv-data opened" "$(cat "$tmp/cwd.log")"
has "start-up line says HTTP off" "HTTP on off" "$(cat "$tmp/cwd.log")"
stop $cpid; check "SIGTERM exit status" 0 "$STATUS"
has "shutdown logged" "store closed" "$(cat "$tmp/cwd.log")"

# ------------------------------------------------------- main server
section "commands without group commit"
start nogc --dir "$tmp/nogc" --group-commit no --http-port off || exit 1
pysuite commands "$PORT"
stop $PID

section "commands (raw RESP client)"
start main --dir "$tmp/main" || exit 1
MAIN=$PID
pysuite commands "$PORT"

section "redis-cli"
R="redis-cli -p $PORT"
check "ping" PONG "$($R ping)"
check "set" OK "$($R set greeting hello)"
check "get" hello "$($R get greeting)"
check "get missing" "" "$($R get nosuchkey)"
check "incr" 1 "$($R incr hits)"
check "incrby" 11 "$($R incrby hits 10)"
check "decr" 10 "$($R decr hits)"
check "mset" OK "$($R mset a 1 b 2 c 3)"
check "mget" "1 2  3" "$($R mget a b zz c | tr '\n' ' ' | sed 's/ $//')"
check "exists" 3 "$($R exists a b c d)"
check "del" 2 "$($R del a b d)"
check "setnx" 0 "$($R setnx c 9)"
check "getdel" 3 "$($R getdel c)"
check "append" 8 "$($R append greeting ", w")"
check "strlen" 8 "$($R strlen greeting)"
check "set nx get" hello,\ w "$($R set greeting x nx get)"
check "set ex" OK "$($R set k v ex 10)"
check "ttl" 10 "$($R ttl k)"
check "persist" 1 "$($R persist k)"
check "unknown command" "ERR unknown command 'frob', with args beginning with: 'x' " "$($R frob x)"
check "arity" "ERR wrong number of arguments for 'get' command" "$($R get)"
check "select 0" OK "$($R select 0)"
check "echo" "hi there" "$($R echo 'hi there')"
$R flushdb >/dev/null
for i in $(seq 1 30); do echo "SET user:$i v$i"; done | $R >/dev/null
check "dbsize" 30 "$($R dbsize)"
check "keys" 11 "$($R keys 'user:1*' | wc -l)"
check "--scan" 30 "$($R --scan | wc -l)"
check "--scan --pattern" 3 "$($R --scan --pattern 'user:2?' | sort | head -3 | wc -l)"
check "--scan all keys" "$($R keys '*' | sort)" "$($R --scan | sort)"
has "info" "db0:keys=30" "$($R info keyspace)"
check "config get" "appendonly yes" "$($R config get appendonly | tr '\n' ' ' | sed 's/ $//')"
check "client name" "OK me" "$(printf 'CLIENT SETNAME me\nCLIENT GETNAME\n' | $R | tr '\n' ' ' | sed 's/ $//')"
check "multi/exec" "OK QUEUED QUEUED OK 31" \
  "$(printf 'MULTI\nSET t 30\nINCR t\nEXEC\n' | $R | tr '\n' ' ' | sed 's/ $//')"
check "discard" "OK QUEUED OK 31" \
  "$(printf 'MULTI\nSET t 0\nDISCARD\nGET t\n' | $R | tr '\n' ' ' | sed 's/ $//')"
c=$($R compact); case "$c" in ''|*[!0-9]*) fail "compact: [$c]" ;; *) pass ;; esac
check "flushdb" "OK 0" "$(printf 'FLUSHDB\nDBSIZE\n' | $R | tr '\n' ' ' | sed 's/ $//')"
# RANDOMKEY is uniform over keys, however they are spread: three keys
# bunched at the bottom of the key space and one at the top each get about
# a quarter of 4000 draws (+-25%: about 9 standard deviations).  A seek
# to random bytes would give "a" and "zzzzzz" nearly all of them.
printf 'SET a 1\nSET b 1\nSET c 1\nSET zzzzzz 1\n' | $R >/dev/null
for i in $(seq 1 4000); do echo RANDOMKEY; done | $R | sort | uniq -c >"$tmp/rk"
for k in a b c zzzzzz; do
  n=$(awk -v k="$k" '$2 == k { print $1 }' "$tmp/rk")
  if [ "${n:-0}" -ge 750 ] && [ "${n:-0}" -le 1250 ]; then pass
  else fail "randomkey uniform: $k drawn ${n:-0} times of 4000: $(tr '\n' ' ' <"$tmp/rk")"; fi
done
$R flushdb >/dev/null
# Other data types are out of scope, and their commands say so.
has "lists out of scope" "strings only: lists are out of scope" "$($R lpush l a 2>&1)"
has "hashes out of scope" "strings only: hashes are out of scope" "$($R HSET h f v 2>&1)"
has "other unknown commands as Redis" "ERR unknown command 'nosuch', with args beginning with: 'x' " "$($R nosuch x 2>&1)"
# mass insertion, as the Redis documentation teaches it
python3 -c '
import sys
for i in range(5000):
    k, v = b"mass:%d" % i, b"value %d" % i
    sys.stdout.buffer.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
' > "$tmp/mass.resp"
has "--pipe" "errors: 0, replies: 5000" "$($R --pipe < "$tmp/mass.resp" 2>&1)"
check "--pipe data" "value 4999" "$($R get mass:4999)"

if [ -z "$san" ]; then
section "redis-benchmark"
out=$(redis-benchmark -p "$PORT" -t set,get,incr,mset -n 20000 -r 1000 -c 20 -P 16 -d 100 --csv 2>&1)
check "redis-benchmark tests" 4 "$(echo "$out" | grep -c '^"\(SET\|GET\|INCR\|MSET (10 keys)\)",')"
has "redis-benchmark no errors" '"SET"' "$out"
case "$out" in *rror*) fail "redis-benchmark: $out" ;; *) pass ;; esac
out=$(redis-benchmark -p "$PORT" -t set,get -n 5000 -c 50 -d 100 --csv 2>&1)
check "redis-benchmark without pipelining" 2 "$(echo "$out" | grep -c '^"\(SET\|GET\)",')"
fi

section "REST (curl)"
H="http://127.0.0.1:$HPORT"
# code METHOD PATH [curl args...]: the status code
code() { m=$1; p=$2; shift 2; curl -s -o "$tmp/body" -w '%{http_code}' -X "$m" "$@" "$H$p"; }
check "PUT new" 201 "$(code PUT /v1/kv/color --data-binary blue)"
check "PUT again" 204 "$(code PUT /v1/kv/color --data-binary green)"
check "GET" 200 "$(code GET /v1/kv/color)"
check "GET body" green "$(cat "$tmp/body")"
check "GET type" application/octet-stream \
  "$(curl -s -o /dev/null -w '%{content_type}' "$H/v1/kv/color")"
check "HEAD" 200 "$(curl -s -o /dev/null -w '%{http_code}' -I "$H/v1/kv/color")"
check "RESP sees REST" green "$($R get color)"
$R set from-resp yes >/dev/null
check "REST sees RESP" 200 "$(code GET /v1/kv/from-resp)"
check "GET missing" 404 "$(code GET /v1/kv/nothing)"
has "404 JSON" '"error":' "$(cat "$tmp/body")"
check "DELETE" 204 "$(code DELETE /v1/kv/color)"
check "DELETE again" 404 "$(code DELETE /v1/kv/color)"
check "encoded key" 201 "$(code PUT '/v1/kv/a%2Fb%20c%00d' --data-binary x)"
check "encoded key via RESP" 1 "$(printf 'a/b c\000d' | $R -x exists)"
head -c 100000 /dev/urandom > "$tmp/blob"
check "PUT binary" 201 "$(code PUT /v1/kv/blob --data-binary @"$tmp/blob" -H 'Content-Type: application/octet-stream')"
curl -s -o "$tmp/blob2" "$H/v1/kv/blob"
cmp -s "$tmp/blob" "$tmp/blob2"; check "binary round trip" 0 $?
check "empty value" 201 "$(code PUT /v1/kv/empty --data-binary '')"
check "empty value GET" 0 "$(curl -s "$H/v1/kv/empty" | wc -c)"
check "bad escape" 400 "$(code GET '/v1/kv/a%zz')"
check "empty key" 400 "$(code GET /v1/kv/)"
check "POST on a key" 405 "$(code POST /v1/kv/x)"
has "405 Allow" "Allow: GET, HEAD, PUT, DELETE" "$(curl -s -i -X POST "$H/v1/kv/x")"
check "PUT on stats" 405 "$(code PUT /v1/stats)"
check "GET compact" 405 "$(code GET /v1/compact)"
check "unknown path" 404 "$(code GET /v2/nothing)"
$R flushdb >/dev/null
for k in apple apricot banana blueberry cherry; do $R set "fruit:$k" 1 >/dev/null; done
$R set vegetable 1 >/dev/null
check "list" 200 "$(code GET '/v1/kv?prefix=fruit:&limit=2')"
check "list page 1" '{"keys":["fruit:apple","fruit:apricot"],"next":"fruit:apricot","count":2}' "$(cat "$tmp/body")"
check "list page 2" '{"keys":["fruit:banana","fruit:blueberry"],"next":"fruit:blueberry","count":2}' \
  "$(curl -s "$H/v1/kv?prefix=fruit:&limit=2&after=fruit:apricot")"
check "list last page" '{"keys":["fruit:cherry"],"count":1}' \
  "$(curl -s "$H/v1/kv?prefix=fruit:&limit=2&after=fruit:blueberry")"
has "list all" '"count":6}' "$(curl -s "$H/v1/kv")"
check "list bad limit" 400 "$(code GET '/v1/kv?limit=0')"
check "list bad limit text" 400 "$(code GET '/v1/kv?limit=ten')"
$R set "$(printf 'k\377\001')" v >/dev/null
check "non-UTF-8 key listed as base64" '{"keys":[{"base64":"a/8B"}],"count":1}' "$(curl -s "$H/v1/kv?prefix=k")"
check "stats" 200 "$(code GET /v1/stats)"
for f in keys live_bytes stale_bytes files disk_bytes compactions last_reclaimed \
         keydir_bytes compact_threshold last_compact_rc; do
  has "stats $f" "\"$f\":" "$(cat "$tmp/body")"
done
has "stats keys" '"keys":7' "$(cat "$tmp/body")"
check "compact" 200 "$(code POST /v1/compact)"
has "compact body" '"reclaimed":' "$(cat "$tmp/body")"

section "restart: persistence, lock"
$R set persisted "across restarts" >/dev/null
timeout 10 "$bin" --dir "$tmp/main" --port 0 --http-port off >"$tmp/second.log" 2>&1
check "second server on the same store refused" 1 $?
has "lock message" "in use by another process" "$(cat "$tmp/second.log")"
stop $MAIN; check "clean shutdown" 0 "$STATUS"
start main2 --dir "$tmp/main" || exit 1
check "data after restart" "across restarts" "$(redis-cli -p "$PORT" get persisted)"
check "keys after restart" 8 "$(redis-cli -p "$PORT" dbsize)"
stop $PID

section "SIGKILL mid-write"
for mode in full normal off; do
  start "kill-$mode" --dir "$tmp/kill-$mode" --sync "$mode" --http-port off || continue
  pysuite killwrite "$PORT" "$PID" "$tmp/acked-$mode"
  wait "$PID" 2>/dev/null
  start "kill-$mode-after" --dir "$tmp/kill-$mode" --http-port off || continue
  pysuite verify "$PORT" "$tmp/acked-$mode" "$mode"
  stop $PID
done

section "durable group commit: kill -9 under many pipelined clients, held reads, a failed fdatasync"
dpy="python3 $here/server/test_durable.py"
start killmany --dir "$tmp/killmany" --sync full --http-port off &&
  suite 120 $dpy killmany "$PORT" "$PID" "$tmp/acked-many"
wait "$PID" 2>/dev/null
start killmany-after --dir "$tmp/killmany" --http-port off &&
  suite 120 $dpy verifymany "$PORT" "$tmp/acked-many"
stop $PID
# every command with replies held for the sync thread
start durable-commands --dir "$tmp/durable-commands" --sync full --http-port off &&
  pysuite commands "$PORT"
stop $PID; check "durable commands server exit status" 0 "$STATUS"
# fdatasync slowed or failed on demand (tests/server/syncshim.c)
mkdir -p "$tmp/shim"
if cc -shared -fPIC -o "$tmp/syncshim.so" "$here/server/syncshim.c"; then
  asan_opts=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}verify_asan_link_order=0
  start_prefix="env LD_PRELOAD=$tmp/syncshim.so TKV_SHIM_DIR=$tmp/shim ASAN_OPTIONS=$asan_opts"
  start shim --dir "$tmp/shim-store" --sync full --http-port off
  started=$?
  start_prefix=""
  [ $started = 0 ] && {
    suite 60 $dpy heldread "$PORT" "$tmp/shim"
    suite 120 $dpy syncfail "$PORT" "$tmp/shim"
    has "failed fdatasync logged" "fdatasync of group commits" "$(cat "$tmp/shim.log")"
    has "store reopened after it" "store reopened" "$(cat "$tmp/shim.log")"
    stop $PID; check "shim server exit status" 0 "$STATUS"
  }
else
  fail "cannot build the fdatasync shim"
fi

section "bad input"
start bad --dir "$tmp/bad" --max-value 1m || exit 1
pysuite badinput "$PORT"
H="http://127.0.0.1:$HPORT"
head -c 2000000 /dev/zero > "$tmp/toobig"
check "PUT over --max-value" 413 "$(code PUT /v1/kv/big --data-binary @"$tmp/toobig")"
check "PUT over --max-value, chunked" 413 \
  "$(code PUT /v1/kv/big -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/toobig")"
check "PUT at --max-value" 201 \
  "$(head -c 1048576 /dev/zero | curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary @- "$H/v1/kv/big")"
# malformed HTTP: garbage, absurd Content-Length, a body cut short, a huge URL
python3 - "$HPORT" <<'EOP'
import socket, sys
for data in (b"GARBAGE\r\n\r\n", bytes(range(256)) * 3,
             b"PUT /v1/kv/x HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
             b"PUT /v1/kv/x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
             b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n"):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    try:
        s.sendall(data)
        if not data.endswith(b"abc"):
            s.recv(100)
    except OSError:
        pass
    s.close()
EOP
check "HTTP alive after malformed requests" 200 "$(code GET /v1/stats)"
check "no half-written PUT" 404 "$(code GET /v1/kv/x)"
check "server alive" PONG "$(redis-cli -p "$PORT" ping)"
stop $PID; check "clean shutdown after bad input" 0 "$STATUS"

section "limits"
start limits --dir "$tmp/limits" --max-clients 8 --timeout 2 --max-value 1m --http-port off || exit 1
pysuite limits "$PORT"
stop $PID

section "automatic compaction"
start compact --dir "$tmp/compact" --compact-min 1m --http-port off || exit 1
python3 -c '
import sys
for i in range(300):
    k, v = b"c:%d" % (i % 10), b"%d:" % i + b"x" * 10000
    sys.stdout.buffer.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
' | redis-cli -p "$PORT" --pipe >/dev/null 2>&1
i=0; until grep -q 'merged in the background' "$tmp/compact.log" || [ $i -gt 60 ]; do i=$((i+1)); sleep 0.1; done
has "the engine merges past --compact-min" "merged in the background" "$(cat "$tmp/compact.log")"
has "background merges logged with their duration" " bytes reclaimed in " \
  "$(grep 'merged in the background' "$tmp/compact.log" | head -n 1)"
check "INFO merges" 1 "$(redis-cli -p "$PORT" info tinkv | grep -c '^merges:[1-9]')"
check "data after compaction" "299:xxx" "$(redis-cli -p "$PORT" get c:9 | cut -c1-7)"
check "keys after compaction" 10 "$(redis-cli -p "$PORT" dbsize)"
stop $PID

section "backup, check and compaction on request, each logged with its duration"
mkdir -p "$tmp/backups"
start ops --dir "$tmp/ops" --backup-dir "$tmp/backups" || exit 1
H="http://127.0.0.1:$HPORT"
for i in $(seq 1 50); do echo "SET ops:$i v$i"; done | redis-cli -p "$PORT" >/dev/null
has "BACKUP" '"files":' "$(redis-cli -p "$PORT" backup b1)"
has "BACKUP INCREMENTAL" '"kept":' "$(redis-cli -p "$PORT" backup b1 incremental)"
has "BACKUP into an existing backup without INCREMENTAL" "ERR" "$(redis-cli -p "$PORT" backup b1 2>&1)"
has "BACKUP refuses a path" "one path component" "$(redis-cli -p "$PORT" backup ../b2 2>&1)"
check "CHECK" OK "$(redis-cli -p "$PORT" check)"
check "POST /v1/check" 200 "$(code POST /v1/check)"
has "POST /v1/check body" '"ok":true' "$(cat "$tmp/body")"
check "POST /v1/backup/b2" 200 "$(code POST /v1/backup/b2)"
has "POST /v1/backup body" '"usec":' "$(cat "$tmp/body")"
c=$(redis-cli -p "$PORT" compact); case "$c" in ''|*[!0-9]*) fail "compact: [$c]" ;; *) pass ;; esac
check "POST /v1/compact" 200 "$(code POST /v1/compact)"
has "stats count backups (not the refused one)" '"backups":3' "$(curl -s "$H/v1/stats")"
has "stats count checks" '"checks":2' "$(curl -s "$H/v1/stats")"
log=$(cat "$tmp/ops.log")
has "backup logged with its duration" "backup (BACKUP from client" "$log"
has "... its size and time" "bytes copied in " "$log"
has "REST backup logged" "backup (POST /v1/backup) to $tmp/backups/b2" "$log"
has "check logged with its duration" "check (CHECK from client" "$log"
has "REST check logged" "check (POST /v1/check): ok," "$log"
has "COMPACT logged with its duration" "compaction (COMPACT from client" "$log"
has "REST compaction logged" "compaction (POST /v1/compact): " "$log"
check "a compaction asked for is not logged as a background merge" 0 \
  "$(grep -c 'merged in the background' "$tmp/ops.log")"
case "$(grep -c ' ms$' "$tmp/ops.log")" in [0-5]) fail "durations in ms: $(grep -c ' ms$' "$tmp/ops.log")";; *) pass;; esac
stop $PID
start restored --dir "$tmp/backups/b1" --http-port off || exit 1
check "a backup serves as a store" 50 "$(redis-cli -p "$PORT" dbsize)"
check "... with the data" v7 "$(redis-cli -p "$PORT" get ops:7)"
stop $PID
start nobackups --dir "$tmp/ops" --http-port off || exit 1
has "no --backup-dir: BACKUP refused" "backups are off" "$(redis-cli -p "$PORT" backup b3 2>&1)"
stop $PID
"$bin" --dir "$tmp/ops" --backup-dir "$tmp/none" --port 0 >/dev/null 2>&1
check "--backup-dir must exist" 2 "$?"

section "sharding behind nutcracker (twemproxy)"
if [ -n "$san" ]; then
  echo "skipped under $san"
elif command -v nutcracker >/dev/null 2>&1; then
  start shard1 --dir "$tmp/shard1" --http-port off; S1=$PID; P1=$PORT
  start shard2 --dir "$tmp/shard2" --http-port off; S2=$PID; P2=$PORT
  PP=$(free_port)
  cat > "$tmp/nutcracker.yml" <<EOC
tinkv:
  listen: 127.0.0.1:$PP
  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: false
  timeout: 5000
  servers:
   - 127.0.0.1:$P1:1 shard1
   - 127.0.0.1:$P2:1 shard2
EOC
  nutcracker -c "$tmp/nutcracker.yml" -s "$(free_port)" -a 127.0.0.1 -o "$tmp/nutcracker.log" &
  NP=$!; pids="$pids $NP"
  i=0; until redis-cli -p "$PP" ping >/dev/null 2>&1 || [ $i -gt 100 ]; do i=$((i+1)); sleep 0.05; done
  for i in $(seq 1 200); do echo "SET shard:$i v$i"; done | redis-cli -p "$PP" >/dev/null
  check "get through the proxy" v77 "$(redis-cli -p "$PP" get shard:77)"
  n1=$(redis-cli -p "$P1" dbsize); n2=$(redis-cli -p "$P2" dbsize)
  check "keys spread over both shards" 200 "$((n1 + n2))"
  [ "$n1" -gt 40 ] && [ "$n2" -gt 40 ] && pass || fail "uneven shards: $n1 + $n2"
  check "mget through the proxy" "v1 v2 v3" "$(redis-cli -p "$PP" mget shard:1 shard:2 shard:3 | tr '\n' ' ' | sed 's/ $//')"
  check "del through the proxy" 3 "$(redis-cli -p "$PP" del shard:1 shard:2 shard:3)"
  out=$(redis-benchmark -p "$PP" -t set,get -n 20000 -r 10000 -c 20 -P 16 -d 100 --csv 2>&1)
  check "redis-benchmark through the proxy" 2 "$(echo "$out" | grep -c '^"\(SET\|GET\)",')"
  echo "$out" | grep '^"\(SET\|GET\)"'
  kill "$NP"; wait "$NP" 2>/dev/null
  stop $S1; stop $S2
else
  fail "nutcracker is not installed"
fi

section "flow control, SCAN, listeners and limits (beside redis-server)"
suite 500 python3 "$here/server/test_flow.py" "$bin" "$tmp/flow" "$san"

section "every reply against redis-server's (tests/server/test_diff.py)"
suite 300 python3 "$here/server/test_diff.py" "$bin" "$tmp/diff" 1 "$san"

# A sanitizer report in any server log is a failure of its own.
for l in "$tmp"/*.log "$tmp"/*/*.log; do
  [ -f "$l" ] || continue
  if grep -q 'Sanitizer\|runtime error' "$l"; then
    fail "sanitizer report in $(basename "$l"):"
    grep -A20 'Sanitizer\|runtime error' "$l" | head -40
  fi
done

section ""
echo "server sections, slowest first (seconds):"
sort -rn "$tmp/sections" 2>/dev/null | head -n 6 | sed 's/^/  /'
echo "server: $passed passed, $failed failed"
[ "$failed" = 0 ]
