#!/usr/bin/env python3
"""Differential test: the same command sequences (scripted, then random,
some pipelined, with WATCH/MULTI/EXEC from two clients, binary keys and
values, inline commands) against tinkv-server and Debian's redis-server;
every reply must be the same.

    test_diff.py SERVER_BINARY SCRATCH_DIR [SEED [SANITIZER]]

With a SANITIZER argument (a sanitizer build of the server, slow) only 4 of
the 20 random rounds run.

Skips (with a message, and counts as passed) when redis-server is absent.
Prints one line per difference and "diff: N passed, M failed" last.
"""
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp import Closed, Conn, Err, Tally, encode  # noqa: E402

T = Tally("FAIL %s: tinkv %r, redis %r")
check = T.check

procs = []

I64MAX, I64MIN = "9223372036854775807", "-9223372036854775808"

SCRIPT = [
    ["FLUSHALL"],
    # GETRANGE / SETRANGE
    ["SET", "s", "Hello World"], ["GETRANGE", "s", "0", "4"], ["GETRANGE", "s", "-5", "-1"],
    ["GETRANGE", "s", "-1", "-5"], ["GETRANGE", "s", "5", "2"], ["GETRANGE", "s", "0", "100"],
    ["GETRANGE", "s", "-100", "-90"], ["GETRANGE", "s", "-100", "2"], ["GETRANGE", "nokey", "0", "1"],
    ["GETRANGE", "s", "x", "1"], ["GETRANGE", "s", "0", "1.5"], ["GETRANGE", "s"],
    ["SETRANGE", "s", "6", "Redis"], ["GET", "s"], ["SETRANGE", "s", "20", "pad"], ["GET", "s"],
    ["SETRANGE", "new", "3", "x"], ["GET", "new"], ["SETRANGE", "empty", "5", ""], ["EXISTS", "empty"],
    ["SETRANGE", "s", "0", ""], ["SETRANGE", "s", "-1", "x"], ["SETRANGE", "s", "a", "x"],
    ["SETRANGE", "s", "99999999999", "x"],
    # GETSET
    ["GETSET", "gs", "1"], ["GETSET", "gs", "2"], ["GET", "gs"],
    # INCRBYFLOAT
    ["SET", "f", "10.50"], ["INCRBYFLOAT", "f", "0.1"], ["INCRBYFLOAT", "f", "-5"],
    ["INCRBYFLOAT", "f", "5.0e3"], ["INCRBYFLOAT", "f", "2.0e-2"], ["INCRBYFLOAT", "nf", "3"],
    ["INCRBYFLOAT", "nf", "1.5"], ["INCRBYFLOAT", "nf", "abc"], ["INCRBYFLOAT", "nf", " 1"],
    ["INCRBYFLOAT", "nf", "inf"], ["INCRBYFLOAT", "nf", "nan"], ["SET", "bad", "x1"],
    ["INCRBYFLOAT", "bad", "1"], ["SET", "i", "5"], ["INCRBYFLOAT", "i", "-5"], ["GET", "i"],
    ["INCRBYFLOAT", "i", "1e308"], ["INCRBYFLOAT", "i", "1e308"], ["INCRBYFLOAT", "i", "0.1"],
    ["SET", "i", "3.0"], ["INCRBYFLOAT", "i", "0"], ["INCRBYFLOAT", "i", ""],
    # LCS
    ["MSET", "a", "ohmytext", "b", "mynewtext"], ["LCS", "a", "b"], ["LCS", "a", "b", "LEN"],
    ["LCS", "a", "b", "IDX"], ["LCS", "a", "b", "IDX", "MINMATCHLEN", "4"],
    ["LCS", "a", "b", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"], ["LCS", "a", "b", "IDX", "LEN"],
    ["LCS", "a", "nokey"], ["LCS", "nokey", "nokey2", "IDX"], ["LCS", "a", "b", "BOGUS"],
    ["LCS", "a", "b", "MINMATCHLEN"], ["LCS", "a", "b", "MINMATCHLEN", "x"],
    ["MSET", "x", "ABCBDAB", "y", "BDCABA"], ["LCS", "x", "y", "IDX", "WITHMATCHLEN"],
    # bits
    ["SETBIT", "bits", "7", "1"], ["GETBIT", "bits", "7"], ["GETBIT", "bits", "0"], ["GETBIT", "bits", "100"],
    ["SETBIT", "bits", "7", "0"], ["SETBIT", "bits", "100", "1"], ["GET", "bits"], ["STRLEN", "bits"],
    ["SETBIT", "bits", "-1", "1"], ["SETBIT", "bits", "1", "2"], ["SETBIT", "bits", "x", "1"],
    ["SETBIT", "bits", "1", "-1"], ["SETBIT", "bits", "4294967296", "1"], ["GETBIT", "nokey", "3"],
    ["SET", "bc", "foobar"], ["BITCOUNT", "bc"], ["BITCOUNT", "bc", "0", "0"], ["BITCOUNT", "bc", "1", "1"],
    ["BITCOUNT", "bc", "1", "1", "BYTE"], ["BITCOUNT", "bc", "5", "30", "BIT"], ["BITCOUNT", "bc", "-2", "-1"],
    ["BITCOUNT", "bc", "-1", "-2"], ["BITCOUNT", "bc", "0"], ["BITCOUNT", "bc", "0", "1", "BOGUS"],
    ["BITCOUNT", "bc", "a", "b"], ["BITCOUNT", "nokey"], ["BITCOUNT", "nokey", "a", "b"],
    ["BITCOUNT", "bc", "-100", "100", "BIT"],
    ["SET", "bp", "\xff\xf0\x00"], ["BITPOS", "bp", "0"], ["BITPOS", "bp", "1"],
    ["SET", "bp2", "\x00\xff\xf0"], ["BITPOS", "bp2", "1", "0"], ["BITPOS", "bp2", "1", "2"],
    ["BITPOS", "bp2", "1", "2", "-1", "BYTE"], ["BITPOS", "bp2", "1", "7", "15", "BIT"],
    ["BITPOS", "bp2", "0", "8", "11", "BIT"], ["BITPOS", "bp2", "0", "1", "1"], ["BITPOS", "bp2", "0", "1"],
    ["SET", "ones", "\xff\xff"], ["BITPOS", "ones", "0"], ["BITPOS", "ones", "0", "0", "-1"],
    ["BITPOS", "nokey", "0"], ["BITPOS", "nokey", "1"], ["BITPOS", "bp", "2"], ["BITPOS", "bp", "x"],
    ["BITPOS", "bp", "1", "0", "1", "BOGUS"], ["BITPOS", "bp", "1", "5", "1"],
    ["SET", "e", ""], ["BITPOS", "e", "0"], ["BITPOS", "e", "1"], ["BITCOUNT", "e"],
    # RENAME, RENAMENX, COPY
    ["SET", "r1", "v1"], ["RENAME", "r1", "r2"], ["GET", "r1"], ["GET", "r2"], ["RENAME", "nokey", "r3"],
    ["RENAME", "r2", "r2"], ["SET", "r4", "v4"], ["RENAMENX", "r2", "r4"], ["RENAMENX", "r2", "r5"],
    ["RENAMENX", "r5", "r5"], ["RENAMENX", "nokey", "x"], ["GET", "r5"],
    ["COPY", "r5", "c1"], ["GET", "c1"], ["COPY", "r5", "c1"], ["COPY", "r5", "c1", "REPLACE"],
    ["COPY", "nokey", "c2"], ["COPY", "r5", "r5"], ["COPY", "r5", "c3", "DB", "0"],
    ["COPY", "r5", "c3", "DB", "x"], ["COPY", "r5", "c3", "BOGUS"],
    # UNLINK, TOUCH, TYPE, OBJECT, DBSIZE
    ["UNLINK", "c1", "c3", "nokey"], ["TOUCH", "r5", "r4", "nokey"], ["TYPE", "r5"], ["TYPE", "nokey"],
    ["SET", "o1", "12345"], ["OBJECT", "ENCODING", "o1"], ["SET", "o2", "short"],
    ["OBJECT", "ENCODING", "o2"], ["SET", "o3", "x" * 60], ["OBJECT", "ENCODING", "o3"],
    ["OBJECT", "ENCODING", "nokey"], ["OBJECT", "ENCODING"], ["OBJECT", "BOGUS", "x"],
    ["SET", "o4", "-0"], ["OBJECT", "ENCODING", "o4"], ["SET", "o5", "01"], ["OBJECT", "ENCODING", "o5"],
    # OBJECT ENCODING follows how the value was made, as in Redis
    ["SET", "oa", "123"], ["APPEND", "oa", "4"], ["OBJECT", "ENCODING", "oa"],
    ["APPEND", "oa2", "12"], ["OBJECT", "ENCODING", "oa2"], ["APPEND", "oa3", "hi"],
    ["OBJECT", "ENCODING", "oa3"], ["APPEND", "oa3", ""], ["OBJECT", "ENCODING", "oa3"],
    ["SETRANGE", "or", "0", "hi"], ["OBJECT", "ENCODING", "or"], ["SET", "or2", "hello"],
    ["SETRANGE", "or2", "0", ""], ["OBJECT", "ENCODING", "or2"], ["SETRANGE", "or2", "0", "J"],
    ["OBJECT", "ENCODING", "or2"], ["SETBIT", "ob", "1", "1"], ["OBJECT", "ENCODING", "ob"],
    ["SET", "ob2", "hello"], ["SETBIT", "ob2", "1", "1"], ["OBJECT", "ENCODING", "ob2"],
    ["SET", "of", "2"], ["INCRBYFLOAT", "of", "1"], ["OBJECT", "ENCODING", "of"],
    ["INCRBYFLOAT", "of", "0.5"], ["OBJECT", "ENCODING", "of"], ["INCR", "oa"],
    ["OBJECT", "ENCODING", "oa"], ["SET", "om", "hello"], ["APPEND", "om", "x"],
    ["RENAME", "om", "om2"], ["OBJECT", "ENCODING", "om2"], ["COPY", "om2", "om3"],
    ["OBJECT", "ENCODING", "om3"], ["GETSET", "om3", "v"], ["OBJECT", "ENCODING", "om3"],
    ["SET", "ol", "x" * 44], ["OBJECT", "ENCODING", "ol"], ["APPEND", "ol", "y"],
    ["OBJECT", "ENCODING", "ol"], ["SET", "oz", "9223372036854775807"], ["OBJECT", "ENCODING", "oz"],
    ["SET", "oz", "9223372036854775808"], ["OBJECT", "ENCODING", "oz"], ["MSET", "oq", "1", "ow", "x"],
    ["OBJECT", "ENCODING", "oq"], ["OBJECT", "ENCODING", "ow"], ["SET", "om2", "1"],
    ["OBJECT", "ENCODING", "om2"], ["DEL", "ob2"], ["SET", "ob2", "7"], ["OBJECT", "ENCODING", "ob2"],
    ["DBSIZE"],
    # errors in Redis's words
    ["CLIENT", "NOSUCH"], ["CONFIG", "GET"], ["CONFIG", "SET", "x"], ["COMMAND", "COUNT", "x"],
    ["GETSET", "k"], ["RENAME", "k"], ["WATCH"], ["UNWATCH", "x"],
    ["HELLO", "x"], ["HELLO", "2", "BOGUS"], ["HELLO", "2", "SETNAME", "a b"],
    ["MULTI"], ["SET", "rs", "1"], ["RESET"], ["EXEC"], ["GET", "rs"], ["CLIENT", "GETNAME"],
    # binary keys and values
    ["SET", b"bin\x00\r\n\xff", b"\x00\x01\x02\r\n"], ["GETRANGE", b"bin\x00\r\n\xff", "1", "3"],
    ["COPY", b"bin\x00\r\n\xff", b"b2\x00"], ["GET", b"b2\x00"], ["RENAME", b"b2\x00", b"b3\xff"],
    ["GET", b"b3\xff"], ["BITCOUNT", b"b3\xff"],
    ["FLUSHALL"], ["RANDOMKEY"], ["SET", "only", "1"], ["RANDOMKEY"],
]

INLINE = [
    b'SET "a b" "c\\x41\\n"\r\n', b'GET "a b"\r\n', b"SET 'x y' 'it\\'s'\r\n", b"GET 'x y'\r\n",
    b"PING\r\r\n", b"   ECHO   spaced   \r\n", b'ECHO "\\t\\r\\\\\\"\\z"\r\n', b"ECHO a\"b\"c\r\n",
    b"\r\n", b"ECHO ''\r\n", b'ECHO ""\r\n',
]
UNBALANCED = [b'ECHO "abc\r\n', b"ECHO 'abc\r\n", b'ECHO "a"b\r\n', b"ECHO 'a'b\r\n"]
# More of Redis's inline splitting (sdssplitargs: escapes in double quotes
# only, \' alone in single quotes, every isspace() byte a separator, a NUL
# byte hiding the rest of the line) and of its RESP reader (the byte after
# a header's CR and the two bytes after a bulk string skipped unread, the
# type byte checked once the CR is there).  Each is sent with a QUIT after
# it, so that a case that leaves a request incomplete shows what the QUIT
# becomes.
PROTOCOL = [
    b'ECHO "\\x4g"\r\n', b'ECHO "\\x41\\x4"\r\n', b'ECHO "\\b\\a\\v"\r\n', b"ECHO 'a\\nb'\r\n",
    b"ECHO 'a\\\\b'\r\n", b"ECHO a\tb\r\n", b"ECHO\ta\r\n", b"ECHO a\x0bb\r\n", b"ECHO \x0ba\r\n",
    b"ECHO a\x0cb\r\n", b"   \r\n", b"\t\r\n", b"PING\n", b"PING\r\nPING\n", b'ECHO "x\x00y"\r\n',
    b"ECHO a\x00b\r\n", b'ECHO "a" "b"\r\n', b"ECHO \"a\"\t\r\n", b"ECHO 'a'\t\r\n", b'ECHO """"\r\n',
    b"ECHO ''''\r\n", b'PING\r\nECHO "x\r\nPING\r\n', b'ECHO "\\""\r\n', b"ECHO '\\''\r\n",
    b"ECHO \"'\"\r\n", b"ECHO '\"'\r\n", b'SET k "\\xff\\x00"\r\nSTRLEN k\r\nGET k\r\n', b'ECHO a"\r\n',
    b"ECHO a'b\r\n", b'ECHO "\\\r\n', b'ECHO "abc"\r', b"PiNg hello\r\n", b"ECHO \xc3\xa9\r\n", b"\r\r\n",
    b"\n", b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n", b"*1\r\n$abc\r\n", b"*abc\r\n", b"*1\r\n+foo\r\n",
    b"*-1\r\nPING\r\n", b"*0\r\nPING\r\n", b"*1\r\n$-1\r\n", b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
    b"*1\r\n$4\r\nPING\n\n", b"*1\r\n$4\rPING\r\n", b"*1\n$4\r\nPING\r\n", b"*1\r\n$ 4\r\nPING\r\n",
    b"*1\r\n$+4\r\nPING\r\n", b"*+1\r\n$4\r\nPING\r\n", b"* 1\r\n$4\r\nPING\r\n", b"*01\r\n$04\r\nPING\r\n",
    b"*1\r\n$4\r\nPING\r\n*1\r\n", b"$4\r\nPING\r\n", b"+PING\r\n", b":1\r\n", b"-ERR\r\n",
    b"*1\r\n$4\x00\r\nPING\r\n", b"*1\r\n+foo",
]


# Expiry with times far enough in the future (4000000000 s is in 2096) or
# the past to be deterministic; relative times only where TTL rounds them
# to whole seconds.
FAR, FAR_MS = "4000000000", "4000000000123"
EXPIRY_SCRIPT = [
    ["FLUSHALL"],
    # SET's options
    ["SET", "e1", "v", "EX", "100"], ["TTL", "e1"], ["GET", "e1"], ["SET", "e1", "v"], ["TTL", "e1"],
    ["SET", "e2", "v", "EXAT", FAR], ["EXPIRETIME", "e2"], ["PEXPIRETIME", "e2"],
    ["SET", "e2", "w", "KEEPTTL"], ["EXPIRETIME", "e2"], ["GET", "e2"],
    ["SET", "e3", "v", "PXAT", FAR_MS], ["PEXPIRETIME", "e3"], ["EXPIRETIME", "e3"],
    ["SET", "e3", "v", "PX", "100000"], ["TTL", "e3"],
    ["SET", "e4", "v", "EX", "0"], ["SET", "e4", "v", "EX", "-1"], ["SET", "e4", "v", "PX", "abc"],
    ["SET", "e4", "v", "EX", I64MAX], ["SET", "e4", "v", "PX", I64MAX], ["SET", "e4", "v", "EXAT", I64MAX],
    ["SET", "e4", "v", "EX", "100", "PX", "100"], ["SET", "e4", "v", "KEEPTTL", "EX", "100"],
    ["SET", "e4", "v", "EX", "100", "KEEPTTL"], ["SET", "e4", "v", "EX"], ["SET", "e4", "v", "EX", "10", "EX", "20"],
    ["TTL", "e4"], ["SET", "e4", "v", "EX", "1.5"], ["SET", "e4", "v", "PERSIST"],
    ["SET", "e5", "v", "EXAT", "1"], ["GET", "e5"], ["EXISTS", "e5"], ["TTL", "e5"],
    ["SET", "e5", "v", "PXAT", "1", "GET"], ["GET", "e5"],
    ["SET", "e6", "v", "NX", "EX", "100"], ["SET", "e6", "x", "NX", "EX", "100"], ["TTL", "e6"],
    ["SET", "e6", "y", "XX", "PX", "200000", "GET"], ["TTL", "e6"], ["SET", "e7", "y", "XX", "EX", "5"],
    ["EXISTS", "e7"], ["SET", "e6", "z", "NX", "XX"], ["SET", "e6", "z", "GET", "KEEPTTL"], ["TTL", "e6"],
    # SETEX, PSETEX
    ["SETEX", "s1", "100", "v"], ["TTL", "s1"], ["GET", "s1"], ["SETEX", "s1", "0", "v"],
    ["SETEX", "s1", "-5", "v"], ["SETEX", "s1", "x", "v"], ["SETEX", "s1", I64MAX, "v"],
    ["PSETEX", "s2", "100000", "v"], ["TTL", "s2"], ["PSETEX", "s2", "0", "v"], ["SETEX", "s1"],
    # GETEX
    ["GETEX", "g"], ["GETEX", "g", "EX", "0"], ["SET", "g", "v"], ["GETEX", "g", "EX", "100"], ["TTL", "g"],
    ["GETEX", "g", "PERSIST"], ["TTL", "g"], ["GETEX", "g", "EXAT", FAR], ["EXPIRETIME", "g"],
    ["GETEX", "g", "PXAT", FAR_MS], ["PEXPIRETIME", "g"], ["GETEX", "g", "EX", "0"],
    ["GETEX", "g", "EX", "10", "PX", "10"], ["GETEX", "g", "PERSIST", "EX", "10"], ["GETEX", "g", "BOGUS"],
    ["GETEX", "g", "EX", "abc"], ["GETEX", "g", "EX"], ["GETEX", "g", "KEEPTTL"], ["GETEX", "g", "NX"],
    ["GETEX", "g", "EXAT", "1"], ["GET", "g"], ["EXISTS", "g"],
    # EXPIRE and friends, with NX/XX/GT/LT
    ["SET", "x", "v"], ["EXPIRE", "x", "100"], ["TTL", "x"], ["EXPIRE", "x", "100", "NX"],
    ["EXPIRE", "x", "200", "XX"], ["TTL", "x"], ["EXPIRE", "x", "50", "GT"], ["EXPIRE", "x", "300", "GT"],
    ["TTL", "x"], ["EXPIRE", "x", "400", "LT"], ["EXPIRE", "x", "10", "LT"], ["TTL", "x"],
    ["PERSIST", "x"], ["PERSIST", "x"], ["TTL", "x"], ["EXPIRE", "x", "10", "XX"], ["EXPIRE", "x", "10", "GT"],
    ["EXPIRE", "x", "10", "LT"], ["TTL", "x"], ["EXPIRE", "x", "10", "NX", "XX"], ["EXPIRE", "x", "10", "GT", "LT"],
    ["EXPIRE", "x", "10", "NX", "GT"], ["EXPIRE", "x", "20", "XX", "GT"], ["EXPIRE", "x", "10", "BOGUS"],
    ["EXPIRE", "x", "abc"], ["EXPIRE", "x", I64MAX], ["PEXPIRE", "x", I64MAX], ["EXPIRE", "x", I64MIN],
    ["EXPIREAT", "x", I64MAX], ["EXPIRE", "x"], ["EXPIRE", "nokey", "10"], ["EXPIRE", "nokey", "abc"],
    ["PEXPIRE", "x", "100000"], ["TTL", "x"], ["EXPIREAT", "x", FAR], ["EXPIRETIME", "x"],
    ["PEXPIREAT", "x", FAR_MS], ["PEXPIRETIME", "x"], ["EXPIRETIME", "x"], ["GET", "x"],
    ["EXPIRE", "x", "-1"], ["EXISTS", "x"], ["TTL", "x"], ["PTTL", "x"], ["EXPIRETIME", "x"],
    ["PEXPIRETIME", "x"], ["PERSIST", "x"], ["SET", "x", "v"], ["PTTL", "x"], ["EXPIRETIME", "x"],
    ["EXPIREAT", "x", "1"], ["GET", "x"], ["SET", "x", "v"], ["PEXPIREAT", "x", "-5"], ["GET", "x"],
    ["SET", "x", "v"], ["EXPIRE", "x", "0"], ["GET", "x"], ["PERSIST", "nokey"], ["TTL", "nokey"],
    # the time moves with RENAME and COPY; in-place changes keep it
    ["SET", "r", "v", "EXAT", FAR], ["RENAME", "r", "r2"], ["EXPIRETIME", "r2"], ["TTL", "r"],
    ["COPY", "r2", "r3"], ["EXPIRETIME", "r3"], ["SET", "r4", "v"], ["COPY", "r2", "r4", "REPLACE"],
    ["EXPIRETIME", "r4"], ["SET", "r5", "v"], ["RENAME", "r5", "r2"], ["EXPIRETIME", "r2"],
    ["SET", "n", "1", "EXAT", FAR], ["INCR", "n"], ["EXPIRETIME", "n"], ["INCRBY", "n", "5"],
    ["DECR", "n"], ["EXPIRETIME", "n"], ["APPEND", "n", "x"], ["EXPIRETIME", "n"],
    ["SETRANGE", "n", "0", "a"], ["EXPIRETIME", "n"], ["SETBIT", "n", "1", "1"], ["EXPIRETIME", "n"],
    ["SET", "f", "1", "EXAT", FAR], ["INCRBYFLOAT", "f", "1.5"], ["EXPIRETIME", "f"],
    ["GETSET", "f", "2"], ["EXPIRETIME", "f"], ["SET", "m", "1", "EXAT", FAR], ["MSET", "m", "2"],
    ["EXPIRETIME", "m"], ["SET", "m", "1", "EXAT", FAR], ["SETNX", "m", "3"], ["EXPIRETIME", "m"],
    ["GETDEL", "m"], ["TTL", "m"], ["SET", "t", "v", "EXAT", FAR], ["TYPE", "t"], ["DBSIZE"],
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_tinkv(binary, base):
    d = os.path.join(base, "tinkv")
    log = open(d + ".log", "ab")
    p = subprocess.Popen([binary, "--dir", d, "--port", "0", "--http-port", "off"],
                         stdout=log, stderr=log)
    procs.append(p)
    for _ in range(400):
        m = re.findall(rb"RESP on [^ ]+:(\d+)", open(d + ".log", "rb").read())
        if m:
            return p, int(m[-1])
        time.sleep(0.05)
    raise RuntimeError("tinkv-server did not start")


def start_redis(base):
    port = free_port()
    d = os.path.join(base, "redis")
    os.makedirs(d, exist_ok=True)
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", d],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    for _ in range(200):
        try:
            Conn(port).close()
            return p, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def norm(r):
    """Replies compared as data; error texts compared whole."""
    return r


def run_script(t, r, cmds, name):
    for cmd in cmds:
        check("%s %r" % (name, cmd), t.cmd(*cmd), r.cmd(*cmd))


def run_pipelined(t, r, cmds, name):
    check("%s (pipelined)" % name, t.pipeline(cmds), r.pipeline(cmds))


def raw_replies(port, data):
    c = Conn(port)
    c.send(data)
    out = []
    try:
        c.s.settimeout(2)
        while True:
            out.append(c.read())
    except (Closed, OSError, socket.timeout):
        pass
    c.close()
    return out


def watch_cases(tport, rport):
    """WATCH from one client, writes from another, in Redis's orders."""
    cases = [
        # (watcher steps before EXEC, other client's steps) -> EXEC reply
        ([["SET", "w", "1"], ["WATCH", "w"], ["MULTI"], ["INCR", "w"]], [["SET", "w", "5"]]),
        ([["SET", "w", "1"], ["WATCH", "w"], ["MULTI"], ["INCR", "w"]], []),
        ([["SET", "w", "1"], ["WATCH", "w"], ["MULTI"], ["INCR", "w"]], [["DEL", "w"]]),
        ([["DEL", "w"], ["WATCH", "w"], ["MULTI"], ["SET", "w", "x"]], [["SET", "w", "y"]]),
        ([["DEL", "w"], ["WATCH", "w"], ["MULTI"], ["SET", "w", "x"]], [["DEL", "w"]]),
        ([["SET", "w", "1"], ["WATCH", "w"], ["UNWATCH"], ["MULTI"], ["INCR", "w"]], [["SET", "w", "5"]]),
        ([["SET", "w", "1"], ["WATCH", "w", "v"], ["MULTI"], ["GET", "w"]], [["SET", "v", "0"]]),
        ([["SET", "w", "1"], ["WATCH", "w"], ["SET", "w", "2"], ["MULTI"], ["GET", "w"]], []),
        ([["SET", "w", "1"], ["WATCH", "w"], ["MULTI"], ["WATCH", "w"], ["GET", "w"]], []),
        ([["SET", "w", "1"], ["WATCH", "w"], ["MULTI"], ["GET", "w"]], [["SET", "w", "1"]]),
        ([["SET", "w", "1"], ["WATCH", "w"], ["MULTI"], ["GET", "w"]], [["FLUSHDB"]]),
        ([["SET", "w", "1"], ["WATCH", "w"], ["MULTI"], ["GET", "w"]], [["RENAME", "w", "w2"]]),
        ([["SET", "w", "1"], ["WATCH", "w"], ["MULTI"], ["GET", "w"]], [["INCR", "nope"]]),
        ([["SET", "w", "a"], ["WATCH", "w"], ["MULTI"], ["GET", "w"]], [["INCR", "w"]]),
        ([["SET", "w", "1"], ["WATCH", "w"], ["MULTI"], ["GET", "w"], ["NOSUCH"]], [["SET", "w", "2"]]),
        ([["SET", "w", "1"], ["WATCH", "w"], ["MULTI"], ["GET", "w"]], [["SETRANGE", "w", "0", "9"]]),
    ]
    for n, (steps, other) in enumerate(cases):
        res = []
        for port in (tport, rport):
            a, b = Conn(port), Conn(port)
            a.cmd("FLUSHDB")
            out = [a.cmd(*c) for c in steps]
            out += [b.cmd(*c) for c in other]
            out.append(a.cmd("EXEC"))
            out.append(a.cmd("EXEC"))             # nothing left
            out.append(a.cmd("GET", "w"))
            a.close()
            b.close()
            res.append(out)
        check("watch case %d %r / %r" % (n, steps, other), res[0], res[1])
    # a second EXEC after a WATCH, MULTI, DISCARD: the watch is gone
    res = []
    for port in (tport, rport):
        a, b = Conn(port), Conn(port)
        out = [a.cmd("SET", "w", "1"), a.cmd("WATCH", "w"), a.cmd("MULTI"), a.cmd("DISCARD"),
               b.cmd("SET", "w", "2"), a.cmd("MULTI"), a.cmd("GET", "w"), a.cmd("EXEC")]
        a.close()
        b.close()
        res.append(out)
    check("discard forgets watched keys", res[0], res[1])


def expiry_timing(tport, rport):
    """Keys whose time passes while the servers run (short sleeps):
    lazy expiry on access, WATCH of a key that expires, active expiry."""
    steps = [
        ("lazy", [["FLUSHALL"], ["SET", "a", "1", "PX", "150"], ["SET", "b", "2", "PX", "150"],
                  ["SET", "c", "3"], ["GET", "a"], ["PTTL", "c"]],
         [["GET", "a"], ["EXISTS", "b"], ["TTL", "a"], ["GET", "b"], ["KEYS", "*"], ["DBSIZE"],
          ["SET", "a", "x", "NX"], ["SET", "b", "y", "XX"], ["INCR", "b"], ["APPEND", "new", "z"],
          ["RENAME", "b", "b2"], ["COPY", "b", "b3"]]),
    ]
    for name, before, after in steps:
        res = []
        conns = [Conn(tport), Conn(rport)]
        outs = [[c.cmd(*x) for x in before] for c in conns]
        time.sleep(0.4)
        for i, c in enumerate(conns):
            outs[i] += [c.cmd(*x) for x in after]
            c.close()
        check("expiry timing %s" % name, outs[0], outs[1])
    # WATCH a key that then expires: EXEC fails, as in Redis 7.
    res = []
    for port in (tport, rport):
        a = Conn(port)
        out = [a.cmd("FLUSHALL"), a.cmd("SET", "w", "1", "PX", "150"), a.cmd("WATCH", "w"),
               a.cmd("MULTI"), a.cmd("SET", "w", "2")]
        time.sleep(0.4)
        out += [a.cmd("EXEC"), a.cmd("GET", "w")]
        # an already expired key that is watched: no change
        out += [a.cmd("SET", "w", "1", "PX", "100")]
        time.sleep(0.3)
        out += [a.cmd("WATCH", "w"), a.cmd("MULTI"), a.cmd("SET", "w", "3"), a.cmd("EXEC"),
                a.cmd("GET", "w")]
        a.close()
        res.append(out)
    check("watch of a key that expires", res[0], res[1])
    # Active expiry: keys nobody reads again go by themselves.
    t = Conn(tport)
    t.cmd("FLUSHALL")
    for i in range(300):
        t.cmd("SET", "act%d" % i, "v", "PX", "100")
    t.cmd("SET", "stay", "v")
    deadline = time.time() + 10
    keys = None
    while time.time() < deadline:
        time.sleep(0.2)
        info = t.cmd("INFO", "tinkv")
        keys = int(re.search(rb"\bkeys:(\d+)", info).group(1))
        if keys == 1:
            break
    check("active expiry deletes what nobody reads (engine keys)", keys, 1)
    stats = t.cmd("INFO", "stats")
    check("active expiry counted", int(re.search(rb"expired_keys:(\d+)", stats).group(1)) >= 300, True)
    t.close()


def random_cmds(rng, n):
    keys = ["k%d" % i for i in range(8)] + [b"\x00bin\xff", "k space"]
    vals = ["", "0", "1", "-1", "10", "3.5", "abc", "Hello", "\xff\x00", I64MAX, I64MIN, "x" * 50]
    fars = [FAR, "4000000005", "4000000010"]
    out = []
    for _ in range(n):
        k, k2 = rng.choice(keys), rng.choice(keys)
        v = rng.choice(vals)
        i, j = str(rng.randint(-12, 12)), str(rng.randint(-12, 12))
        out.append(rng.choice([
            ["SET", k, v], ["GET", k], ["DEL", k, k2], ["EXISTS", k, k2], ["APPEND", k, v],
            ["INCR", k], ["DECRBY", k, i], ["INCRBYFLOAT", k, rng.choice(["0.5", "-2", "1e2", "x"])],
            ["GETRANGE", k, i, j], ["SETRANGE", k, str(rng.randint(0, 12)), v], ["GETSET", k, v],
            ["STRLEN", k], ["SETNX", k, v], ["GETDEL", k], ["MSET", k, v, k2, v], ["MGET", k, k2],
            ["MSETNX", k, v, k2, v], ["RENAME", k, k2], ["RENAMENX", k, k2], ["COPY", k, k2],
            ["COPY", k, k2, "REPLACE"], ["UNLINK", k], ["TOUCH", k, k2], ["TYPE", k],
            ["SETBIT", k, str(rng.randint(0, 40)), str(rng.randint(0, 1))],
            ["GETBIT", k, str(rng.randint(0, 40))], ["BITCOUNT", k], ["BITCOUNT", k, i, j],
            ["BITCOUNT", k, i, j, rng.choice(["BIT", "BYTE"])], ["BITPOS", k, str(rng.randint(0, 1))],
            ["BITPOS", k, str(rng.randint(0, 1)), i], ["BITPOS", k, str(rng.randint(0, 1)), i, j],
            ["BITPOS", k, str(rng.randint(0, 1)), i, j, rng.choice(["BIT", "BYTE"])],
            ["LCS", k, k2], ["LCS", k, k2, "LEN"], ["LCS", k, k2, "IDX", "WITHMATCHLEN"],
            ["DBSIZE"], ["SET", k, v, "NX", "GET"], ["SET", k, v, "XX"],
            # absolute times only: a relative one would differ by the
            # milliseconds between the two servers' calls
            ["SET", k, v, "EXAT", rng.choice(fars)], ["SET", k, v, "PXAT", FAR_MS, "GET"],
            ["SET", k, v, "KEEPTTL"], ["EXPIREAT", k, rng.choice(fars)],
            ["EXPIREAT", k, rng.choice(fars), rng.choice(["NX", "XX", "GT", "LT"])],
            ["EXPIREAT", k, "1"], ["PERSIST", k], ["EXPIRETIME", k], ["PEXPIRETIME", k],
            ["GETEX", k, "PERSIST"], ["GETEX", k, "EXAT", rng.choice(fars)],
            ["MULTI"], ["EXEC"], ["DISCARD"], ["WATCH", k], ["UNWATCH"],
        ]))
    return out


def main():
    binary, base = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    os.makedirs(base, exist_ok=True)
    if not shutil.which("redis-server"):
        print("diff: SKIPPED: redis-server is not installed (tests/deps.sh installs it)")
        print("diff: 0 passed, 0 failed")
        return
    tp, tport = start_tinkv(binary, base)
    rp, rport = start_redis(base)
    t, r = Conn(tport), Conn(rport)
    run_script(t, r, SCRIPT, "script")
    run_pipelined(t, r, SCRIPT, "script")
    run_script(t, r, EXPIRY_SCRIPT, "expiry")
    run_pipelined(t, r, EXPIRY_SCRIPT, "expiry")
    expiry_timing(tport, rport)
    for data in INLINE:
        check("inline %r" % data, raw_replies(tport, data), raw_replies(rport, data))
    for data in UNBALANCED:
        check("inline %r" % data, raw_replies(tport, data), raw_replies(rport, data))
    for data in PROTOCOL:
        data += b"QUIT\r\n"
        check("protocol %r" % data, raw_replies(tport, data), raw_replies(rport, data))
    watch_cases(tport, rport)
    rng = random.Random(seed)
    rounds = 4 if len(sys.argv) > 4 and sys.argv[4] else 20
    for rnd in range(rounds):
        cmds = [["FLUSHALL"]] + random_cmds(rng, 200)
        tr = [t.cmd(*c) for c in cmds] if rnd % 2 else t.pipeline(cmds)
        rr = [r.cmd(*c) for c in cmds] if rnd % 2 else r.pipeline(cmds)
        for c, a, b in zip(cmds, tr, rr):
            check("random seed %d round %d %r" % (seed, rnd, c), a, b)
    t.close()
    r.close()
    for p in procs:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        T.crashed("diff", e)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    T.report("diff")
