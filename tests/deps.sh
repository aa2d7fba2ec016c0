#!/bin/sh
# Install the Debian packages tinkv needs, or say how to.
#   tests/deps.sh test    what `make`, `make demo` and `make test` need
#   tests/deps.sh bench   what `make bench` adds (benchmark peers only)
#   tests/deps.sh ci      the test packages plus the static checkers CI runs
#   tests/deps.sh demo    what `make demo` needs: a compiler, SQLite's headers
#                         and its shell (the extension and nothing else)
set -u
want="gcc make libsqlite3-dev sqlite3 libcmocka-dev libevent-dev libmicrohttpd-dev
      redis-tools redis-server nutcracker curl python3 clang libclang-rt-14-dev
      pkg-config"
if [ "${1:-test}" = demo ]; then
  want="gcc make libsqlite3-dev sqlite3"
fi
if [ "${1:-test}" = ci ]; then
  want="$want cppcheck clang-tidy"
fi
if [ "${1:-test}" = bench ]; then
  want="liblmdb-dev libleveldb-dev librocksdb-dev redis-server redis-tools"
fi
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq $missing >/dev/null \
    || { echo "apt-get install failed for:$missing" >&2; exit 1; }
else
  echo "missing Debian packages; run:" >&2
  echo "  sudo apt-get install -y$missing" >&2
  exit 1
fi
