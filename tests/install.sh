#!/bin/sh
# Install as a user or a packager would, then use what was installed.
#   tests/install.sh BUILD
# Checks: `make install DESTDIR=... PREFIX=/usr` puts every file in place;
# a C program builds with `pkg-config --cflags --libs tinkv` and runs; the
# sqlite3 shell loads the extension by name (`.load tinkv`); the .so exports
# only the public API and the entry point; the static build registers with
# sqlite3_auto_extension and links beside another extension; CPPFLAGS and
# LDFLAGS reach the compiler and the linker; `make uninstall` removes
# every file it installed.  Prints "install: N passed, M failed".
set -u
build=${1:-build}
root=$(pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "ok   $1"; }
bad()  { failed=$((failed + 1)); echo "FAIL $1"; [ -f "$tmp/log" ] && sed 's/^/     /' "$tmp/log" | tail -n 20; }
check() { name=$1; shift; if "$@" >"$tmp/log" 2>&1; then ok "$name"; else bad "$name"; fi; }

mk() { make --no-print-directory -s BUILD="$build" "$@"; }

check "make install DESTDIR PREFIX=/usr" mk install DESTDIR="$dest" PREFIX=/usr
files="usr/lib/libtinkv.a usr/lib/tinkv.so usr/include/tinkv.h
       usr/lib/pkgconfig/tinkv.pc usr/bin/tinkv-server"
[ -d tools ] && files="$files usr/bin/tinkvctl"
for f in $files; do
  check "installed $f" test -f "$dest/$f"
done

# A C program built with pkg-config against the installed files only.
# (pkg-config drops -I/usr/include as a system directory unless told.)
export PKG_CONFIG_LIBDIR="$dest/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest"
export PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
flags=$(pkg-config --cflags --libs tinkv 2>"$tmp/log")
check "pkg-config --cflags --libs tinkv" test -n "$flags"
check "cc use_api.c \$(pkg-config ...)" \
  sh -c "cc -o '$tmp/use_api' '$root/tests/install/use_api.c' $flags"
check "the program runs" "$tmp/use_api" "$tmp/store-c"
check "pkg-config --modversion" sh -c \
  "[ \"\$(pkg-config --modversion tinkv)\" = \"\$(sed -n 's/^#define TINKV_VERSION \"\\(.*\\)\"/\\1/p' core/tinkv.h)\" ]"
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_ALLOW_SYSTEM_CFLAGS \
  PKG_CONFIG_ALLOW_SYSTEM_LIBS

# The shell loads the extension by name from the installed library
# directory (LD_LIBRARY_PATH stands for the system's /usr/lib).
out=$(cd "$tmp" && LD_LIBRARY_PATH="$dest/usr/lib" sqlite3 :memory: \
  ".load tinkv" "CREATE VIRTUAL TABLE kv USING tinkv('$tmp/store-sql');" \
  "INSERT INTO kv VALUES('a', 1);" "SELECT key || '=' || value FROM kv;" 2>&1)
echo "$out" >"$tmp/log"
check ".load tinkv by name" test "$out" = "a=1"

# Exported symbols: exactly the functions tinkv.h declares, plus the entry.
nm -D --defined-only "$dest/usr/lib/tinkv.so" | awk '{print $3}' | sort >"$tmp/exported"
{ echo sqlite3_tinkv_init
  grep -o '\btkv_[a-z0-9_]*(' core/tinkv.h | tr -d '(' ; } | sort -u >"$tmp/public"
check "the .so exports only the public API" cmp "$tmp/exported" "$tmp/public"
if ! cmp -s "$tmp/exported" "$tmp/public"; then diff "$tmp/public" "$tmp/exported" | head; fi
check "no sqlite3_api symbol in the .so" sh -c \
  "! nm '$dest/usr/lib/tinkv.so' | grep -qw sqlite3_api"

# The static build (SQLITE_CORE) linked with another extension.
check "make static-ext" mk static-ext
check "static link beside another extension (SQLITE_CORE build)" \
  cc -o "$tmp/static_ext" tests/install/static_ext.c tests/install/other_ext.c \
     "$build/libtinkv-sqlite.a" -lsqlite3 -pthread
out=$("$tmp/static_ext" "$tmp/store-static" 2>&1)
echo "$out" >"$tmp/log"
check "sqlite3_auto_extension registers tinkv" test "$out" = "a|1|42
b|two|42"
check "static link of the loadable objects beside another extension" \
  cc -o "$tmp/static_ext2" tests/install/static_ext.c tests/install/other_ext.c \
     "$build"/ext/*.o "$build/libtinkv.a" -lsqlite3 -pthread
check "  and it runs" "$tmp/static_ext2" "$tmp/store-static2"

# CPPFLAGS and LDFLAGS reach the commands (dry run of a full rebuild).
mk -n -B CPPFLAGS=-DTINKV_CPPFLAGS_SEEN LDFLAGS=-Wl,-O1 all >"$tmp/dry" 2>&1
check "CPPFLAGS honoured" grep -q "TINKV_CPPFLAGS_SEEN.*-c core/store.c" "$tmp/dry"
check "LDFLAGS honoured" grep -q -- "-Wl,-O1.*-shared" "$tmp/dry"

# `make demo` asks only for the demo's packages (compiler, SQLite, shell).
mk -n demo >"$tmp/dry" 2>&1
check "make demo needs only the demo's packages" sh -c \
  "grep -q 'deps.sh demo' '$tmp/dry' && ! grep -q 'deps.sh test' '$tmp/dry'"

check "make uninstall" mk uninstall DESTDIR="$dest" PREFIX=/usr
left=$(find "$dest" -type f | sed "s|^$dest||")
echo "$left" >"$tmp/log"
check "nothing left after uninstall" test -z "$left"

echo "install: $passed passed, $failed failed"
[ "$failed" = 0 ]
