#!/bin/sh
# tinkv-server against redis-server, both driven by redis-benchmark.
#
#   sh tests/bench/server_bench.sh [BUILD]     (BUILD: where tinkv-server is;
#                                               default: build/)
# Starts tinkv-server (--sync normal: each write reaches the OS before its
# reply, fdatasync every second) and redis-server (appendonly yes,
# appendfsync everysec: the nearest durability) on free loopback ports, in
# scratch directories under $BENCH_DIR, runs the same redis-benchmark
# commands against each in turn, prints requests/s side by side with the
# ratio and the latency tails (p99.9, max), then memory per key, and stops
# both.  Then the same at full durability: tinkv-server --sync full (an
# fdatasync covers every reply) beside redis-server appendfsync always.
#
# Environment:
#   SERVER_BENCH_N=1000000      requests per run (default: $BENCH_N, else 1M)
#   SERVER_BENCH_DURABLE_N=100000  requests per run at full durability
#   SERVER_BENCH_KEYS=1000000   key space (redis-benchmark -r)
#   SERVER_BENCH_CLIENTS=50     connections (redis-benchmark -c)
#   SERVER_BENCH_VARIANTS=0     skip the extra tinkv runs (group commit off,
#                               sync=full)
#   SERVER_BENCH_DURABLE_ONLY=1 only the durable SET comparison, each
#                               pipeline depth SERVER_BENCH_RUNS times (3)
#                               alternating the servers, medians reported
#   BENCH_DIR=dir               scratch directory (not tmpfs)
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-${BUILD:-$root/build}}
bin=$(cd "$build" 2>/dev/null && pwd)/tinkv-server
N=${SERVER_BENCH_N:-${BENCH_N:-1000000}}
DN=${SERVER_BENCH_DURABLE_N:-100000}
KEYS=${SERVER_BENCH_KEYS:-1000000}
C=${SERVER_BENCH_CLIENTS:-50}
VARIANTS=${SERVER_BENCH_VARIANTS:-1}
DURABLE_ONLY=${SERVER_BENCH_DURABLE_ONLY:-0}
RUNS=${SERVER_BENCH_RUNS:-3}
scratch=${BENCH_DIR:-$root/build/bench/tmp}

for tool in redis-server redis-benchmark redis-cli; do
  command -v $tool >/dev/null 2>&1 || { echo "server bench: $tool missing (make deps)"; exit 1; }
done
[ -x "$bin" ] || { echo "server bench: no $bin (run make first)"; exit 1; }
mkdir -p "$scratch"
tmp=$(mktemp -d "$scratch/server.XXXXXX")
pids=""
cleanup() {
  for p in $pids; do kill -TERM "$p" 2>/dev/null; done
  for p in $pids; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_ping() {
  i=0
  until [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; do
    i=$((i + 1)); [ $i -gt 200 ] && { echo "server on port $1 did not start"; exit 1; }
    sleep 0.05
  done
}
# Anonymous resident memory (KiB): the servers' own data.  File-backed
# pages (tinkv maps its segments) are page cache the kernel can drop.
rss_kib() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }

# start_tinkv NAME OPTIONS...: sets TPID, TPORT
start_tinkv() {
  name=$1; shift
  TPORT=$(free_port)
  "$bin" --dir "$tmp/$name" --port "$TPORT" --http-port off "$@" \
    >"$tmp/$name.log" 2>&1 &
  TPID=$!; pids="$pids $TPID"
  wait_ping "$TPORT"
}
# start_redis NAME APPENDFSYNC: a redis-server with an append-only file
# synced as APPENDFSYNC (everysec, always); sets R (pid) and RP (port).
start_redis() {
  RP=$(free_port)
  mkdir -p "$tmp/$1"
  redis-server --port "$RP" --bind 127.0.0.1 --dir "$tmp/$1" --save '' \
    --appendonly yes --appendfsync "$2" --daemonize no >"$tmp/$1.log" 2>&1 &
  R=$!; pids="$pids $R"
  wait_ping "$RP"
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null; }

# rps PORT TEST PIPELINE [REQUESTS]: requests/s of one redis-benchmark run
rps() {
  redis-benchmark -p "$1" -t "$2" -n "${4:-$N}" -r "$KEYS" -c "$C" -P "$3" -d 100 --csv 2>/dev/null |
    awk -F'","' 'NR > 1 { gsub(/"/, "", $2); print $2; exit }'
}
# run PORT TEST PIPELINE [REQUESTS]: one redis-benchmark run; prints
# "requests/s p99.9_ms max_ms" from its full report (the percentile lines
# of its latency distribution; -P N counts each pipeline's requests
# together).
run() {
  redis-benchmark -p "$1" -t "$2" -n "${4:-$N}" -r "$KEYS" -c "$C" -P "$3" -d 100 2>/dev/null |
    tr '\r' '\n' | awk '
      /^Latency by percentile/ { inpct = 1; next }
      /^Cumulative distribution/ { inpct = 0 }
      inpct && /%/ { p = $1; sub(/%/, "", p); if (p + 0 >= 99.9 && p999 == "") p999 = $3; max = $3 }
      /throughput summary:/ { rps = $3 }
      END { printf "%s %s %s\n", rps == "" ? "failed" : rps, p999 == "" ? "-" : p999, max == "" ? "-" : max }'
}
# rps_cmd PORT PIPELINE COMMAND...: the same for a command of our own
# (random keys from the key space, a 100-byte value)
rps_cmd() {
  port=$1; pl=$2; shift 2
  redis-benchmark -p "$port" -n "$N" -r "$KEYS" -c "$C" -P "$pl" --csv "$@" 2>/dev/null |
    awk -F'","' 'NR > 1 { gsub(/"/, "", $2); print $2; exit }'
}
VAL100=$(printf '%0100d' 0)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
# table TINKV_PORT REDIS_PORT REQUESTS TESTS...: one row per test and
# pipeline depth (1, 16), tinkv-server and redis-server side by side.
table() {
  tp=$1 rp=$2 n=$3; shift 3
  echo "| test | pipeline | tinkv-server req/s | redis-server req/s | tinkv/redis | tinkv p99.9 / max ms | redis p99.9 / max ms |"
  echo "|------|---------:|-------------------:|-------------------:|------------:|------:|------:|"
  for t in "$@"; do
    for p in 1 16; do
      ra=$(run "$tp" "$t" $p "$n"); rb=$(run "$rp" "$t" $p "$n")
      a=${ra%% *}; b=${rb%% *}
      a9=$(echo "$ra" | cut -d' ' -f2); am=$(echo "$ra" | cut -d' ' -f3)
      b9=$(echo "$rb" | cut -d' ' -f2); bm=$(echo "$rb" | cut -d' ' -f3)
      echo "| $(echo "$t" | tr a-z A-Z) | $p | $a | $b | $(ratio "$a" "$b") | $a9 / $am | $b9 / $bm |"
    done
  done
}

# lat PORT PIPELINE REQUESTS: one SET run; prints "requests/s p50 p99
# p99.9 max" (ms, the first percentile line at or past each).
lat() {
  redis-benchmark -p "$1" -t set -n "$3" -r "$KEYS" -c "$C" -P "$2" -d 100 2>/dev/null |
    tr '\r' '\n' | awk '
      /^Latency by percentile/ { inpct = 1; next }
      /^Cumulative distribution/ { inpct = 0 }
      inpct && /%/ { p = $1; sub(/%/, "", p); p += 0
        if (p >= 50 && p50 == "") p50 = $3
        if (p >= 99 && p99 == "") p99 = $3
        if (p >= 99.9 && p999 == "") p999 = $3
        max = $3 }
      /throughput summary:/ { rps = $3 }
      END { printf "%s %s %s %s %s\n", rps == "" ? 0 : rps, p50, p99, p999, max }'
}
# median FILE COLUMN: the median of a column of numbers
median() {
  cut -d' ' -f"$2" "$1" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
# durable_only: tinkv-server --sync full against redis-server appendfsync
# always, SET at -P 1 and -P 16, RUNS runs each alternating the servers;
# the median of each column over the runs.
durable_only() {
  start_tinkv durable --sync full
  T=$TPID; TP=$TPORT
  start_redis redis-always always
  echo "## Durable SET: tinkv-server --sync full vs redis-server appendfsync always"
  echo
  echo "$DN requests per run, $C clients, 100-byte values, keys from $KEYS;"
  echo "median of $RUNS runs per row (each column on its own), the servers"
  echo "alternating run by run.  $(nproc) CPUs shared by both servers and"
  echo "redis-benchmark."
  echo
  echo "| pipeline | server | SET req/s | p50 ms | p99 ms | p99.9 ms | max ms |"
  echo "|---------:|--------|----------:|-------:|-------:|---------:|-------:|"
  for p in 1 16; do
    : >"$tmp/t.$p"; : >"$tmp/r.$p"
    i=0
    while [ $i -lt "$RUNS" ]; do
      lat "$TP" $p "$DN" >>"$tmp/t.$p"
      lat "$RP" $p "$DN" >>"$tmp/r.$p"
      i=$((i + 1))
    done
    for side in t r; do
      f="$tmp/$side.$p"
      name=tinkv-server; [ $side = r ] && name=redis-server
      echo "| $p | $name | $(median "$f" 1) | $(median "$f" 2) | $(median "$f" 3) | $(median "$f" 4) | $(median "$f" 5) |"
    done
    echo "| $p | ratio | $(ratio "$(median "$tmp/t.$p" 1)" "$(median "$tmp/r.$p" 1)") | | | | |"
    echo "runs (req/s p50 p99 p99.9 max), tinkv: $(tr '\n' ';' <"$tmp/t.$p") redis: $(tr '\n' ';' <"$tmp/r.$p")" >&2
  done
  stop $R
  stop $T
}
if [ "$DURABLE_ONLY" != 0 ]; then
  durable_only
  exit 0
fi

start_tinkv tinkv --sync normal
T=$TPID; TP=$TPORT
start_redis redis everysec
t_rss0=$(rss_kib $T); r_rss0=$(rss_kib $R)

echo "## tinkv-server vs redis-server (redis-benchmark)"
echo
echo "$N requests per run, $C clients, 100-byte values, keys drawn from"
echo "$KEYS; tinkv-server --sync normal (group commit on), redis-server"
echo "appendonly yes, appendfsync everysec.  $(nproc) CPUs shared by server"
echo "and redis-benchmark."
echo
# SET and MSET first: they fill the key space, so GET finds its keys.
table "$TP" "$RP" "$N" set mset get incr

echo
echo "## Memory per key"
echo
tk=$(redis-cli -p "$TP" dbsize); rk=$(redis-cli -p "$RP" dbsize)
kd=$(redis-cli -p "$TP" info memory | tr -d '\r' | sed -n 's/^keydir_bytes://p')
t_rss=$(rss_kib $T); r_rss=$(rss_kib $R)
echo "| server | keys | anonymous RSS growth | bytes/key | notes |"
echo "|--------|-----:|---------------------:|----------:|-------|"
echo "| tinkv-server | $tk | $(( (t_rss - t_rss0) / 1024 )) MiB | $(awk -v a="$t_rss" -v b="$t_rss0" -v k="$tk" 'BEGIN{printf "%.0f", (a-b)*1024/k}') | keydir $(awk -v a="$kd" -v k="$tk" 'BEGIN{printf "%.0f", a/k}') B/key; values stay on disk |"
echo "| redis-server | $rk | $(( (r_rss - r_rss0) / 1024 )) MiB | $(awk -v a="$r_rss" -v b="$r_rss0" -v k="$rk" 'BEGIN{printf "%.0f", (a-b)*1024/k}') | keys and values in memory |"

echo
echo "## SET with an expiry time"
echo
echo "SET key:__rand_int__ <100 bytes> EX 3600 (the time is 8 more bytes in"
echo "tinkv's record; Redis keeps it in its expires table); same servers."
echo
echo "| test | pipeline | tinkv-server req/s | redis-server req/s | tinkv/redis |"
echo "|------|---------:|-------------------:|-------------------:|------------:|"
for p in 1 16; do
  a=$(rps_cmd "$TP" $p SET key:__rand_int__ "$VAL100" EX 3600)
  b=$(rps_cmd "$RP" $p SET key:__rand_int__ "$VAL100" EX 3600)
  echo "| SET EX | $p | ${a:-failed} | ${b:-failed} | $(ratio "${a:-0}" "${b:-0}") |"
done
stop $R
stop $T

# Full durability: every reply after an fdatasync that covers its write.
start_tinkv durable --sync full
T=$TPID; TP=$TPORT
start_redis redis-always always
echo
echo "## Durable writes: tinkv-server --sync full vs redis-server appendfsync always"
echo
echo "$DN requests per run, $C clients, 100-byte values.  Both reply only"
echo "after an fdatasync covering the write (tinkv: group commit across all"
echo "connections; redis: one write+fsync per event-loop turn).  Target:"
echo "durable SET >= 1.5x redis-server."
echo
table "$TP" "$RP" "$DN" set mset incr
stop $R
stop $T

if [ "$VARIANTS" != 0 ]; then
  echo
  echo "## tinkv-server SET: group commit and sync modes"
  echo
  echo "| tinkv-server options | pipeline | SET req/s |"
  echo "|----------------------|---------:|----------:|"
  # an fdatasync per command: a few thousand a second, so fewer requests
  slow=$(( N < 20000 ? N : 20000 ))
  for opts in "--sync normal --group-commit yes" "--sync normal --group-commit no" \
              "--sync full --group-commit yes" "--sync full --group-commit no"; do
    start_tinkv variant $opts
    n=$N; [ "$opts" = "--sync full --group-commit no" ] && n=$slow
    for p in 1 16; do
      echo "| $opts | $p | $(rps "$TPORT" set $p $n) |"
    done
    stop $TPID
    rm -rf "$tmp/variant"
  done
fi
