#!/bin/sh
# Run every fenced code block of README.md as a reader would paste it.
#   tests/readme.sh BUILD
# Each block runs in a fresh directory holding links to the checkout's
# build directory (as build/) and core/ (for #include "tinkv.h"):
#   sql     through the sqlite3 shell (-bail); a block without its own
#           .load gets the extension loaded first, as the text around
#           such blocks assumes;
#   sh      with sh -e;
#   c       compiled and run; a block without main() is the body of one
#           (its #include lines go on top); "<!-- readme-test: c-sqlite -->"
#           before it links SQLite too;
#   python  with python3.
# A block preceded by "<!-- readme-test: skip (REASON) -->" is skipped and
# the reason printed; so are configuration blocks (yaml).  Any other
# language fails: a block must be runnable or say why it is not.
# Prints "readme: N passed, M failed".
set -u
build=${1:-build}
root=$(pwd -P)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0; skipped=0

# Split README.md into $tmp/block-N.LANG files, with $tmp/block-N.skip and
# $tmp/block-N.csql for the markers, and $tmp/block-N.line.
awk -v dir="$tmp" '
  /^<!-- readme-test: skip/ { skip = $0; next }
  /^<!-- readme-test: c-sqlite -->/ { csql = 1; next }
  /^```/ {
    if( inb ){ inb = 0; skip = ""; csql = 0; next }
    inb = 1; n++; lang = substr($0, 4); if( lang == "" ) lang = "text";
    f = dir "/block-" n "." lang
    printf "" > f
    print NR > (dir "/block-" n ".line")
    if( skip != "" ) print skip > (dir "/block-" n ".skip")
    if( csql ) print "" > (dir "/block-" n ".csql")
    next
  }
  inb { print > f }
  { if( $0 != "" && !/^<!--/ ){ skip = ""; csql = 0 } }
' README.md

for f in $(ls "$tmp"/block-*.* | grep -v '\.\(skip\|csql\|line\)$' | sort -t- -k2 -n); do
  b=${f%.*}; lang=${f##*.}; line=$(cat "$b.line")
  name="README.md:$line ($lang)"
  if [ -f "$b.skip" ]; then
    skipped=$((skipped + 1))
    echo "skip $name: $(sed 's/.*skip (\(.*\)) -->.*/\1/' "$b.skip")"
    continue
  fi
  d=$(mktemp -d "$tmp/run-XXXX")
  ln -s "$root/$build" "$d/build"
  ln -s "$root/core" "$d/core"
  case $lang in
    sql)
      if grep -q '^\.load' "$f"; then
        (cd "$d" && sqlite3 -bail app.db <"$f") >"$d/out" 2>&1
      else
        (cd "$d" && sqlite3 -bail -cmd ".load $root/$build/tinkv" app.db <"$f") >"$d/out" 2>&1
      fi ;;
    sh)
      (cd "$d" && sh -e "$f") >"$d/out" 2>&1 ;;
    c)
      libs="$root/$build/libtinkv.a -pthread"
      [ -f "$b.csql" ] && libs="$libs -lsqlite3"
      if grep -q 'main(' "$f"; then
        cp "$f" "$d/prog.c"
      else
        { echo '#include <stdio.h>'; echo '#include <stdint.h>';
          echo '#include <string.h>'; echo '#include <sqlite3.h>';
          grep '^#include' "$f"
          echo 'int main(void){'; grep -v '^#include' "$f"; echo 'return 0; }'; } >"$d/prog.c"
      fi
      (cd "$d" && cc -std=c11 -D_GNU_SOURCE -Wall -Werror -Wno-unused-variable \
         -Icore -o prog prog.c $libs && ./prog) >"$d/out" 2>&1 ;;
    python)
      # Debian's python3, as the README says (some others cannot load
      # extensions).
      py=python3; [ -x /usr/bin/python3 ] && py=/usr/bin/python3
      (cd "$d" && "$py" "$f") >"$d/out" 2>&1 ;;
    yaml|text)
      skipped=$((skipped + 1)); echo "skip $name: configuration, not a command"
      continue ;;
    *)
      echo "unknown block language" >"$d/out"; false ;;
  esac
  if [ $? = 0 ] && ! grep -qi '^\(error\|parse error\)' "$d/out"; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/     /' "$d/out" | tail -n 15
  fi
done
echo "readme: $passed passed, $failed failed ($skipped skipped, reasons above)"
[ "$failed" = 0 ]
