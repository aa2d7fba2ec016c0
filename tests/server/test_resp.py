#!/usr/bin/env python3
"""tinkv-server over RESP, driven by a raw socket client (tests/server/resp.py).

    test_resp.py SUITE PORT [ARGS...]

Suites: commands, badinput (a server with --max-value 1m), limits (a server
with --max-clients 8 --timeout 2 --max-value 1m), killwrite PORT PID FILE
(writes, SIGKILLs the server mid-write, records what was acknowledged),
verify PORT FILE MODE (checks those writes after a restart).
Prints one line per failure and "SUITE: N passed, M failed" at the end.
"""
import os
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True          # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp import Closed, Conn, Err, Tally, encode  # noqa: E402

T = Tally()
check, ok = T.check, T.ok





# ------------------------------------------------------------- commands

def suite_commands(port):
    c = Conn(port)
    check("flushdb", c.cmd("FLUSHDB"), "OK")
    check("ping", c.cmd("PING"), "PONG")
    check("ping msg", c.cmd("PING", "hi"), b"hi")
    check("ping arity", c.cmd("PING", "a", "b"),
          Err("ERR wrong number of arguments for 'ping' command"))
    check("echo", c.cmd("ECHO", "x\r\ny"), b"x\r\ny")
    check("lowercase name", c.cmd("ping"), "PONG")

    # GET / SET and options
    check("get missing", c.cmd("GET", "nokey"), None)
    check("set", c.cmd("SET", "k", "v1"), "OK")
    check("get", c.cmd("GET", "k"), b"v1")
    binary = bytes(range(256)) * 4 + b"\r\n\0"
    check("set binary", c.cmd("SET", b"bin\0key\r\n", binary), "OK")
    check("get binary", c.cmd("GET", b"bin\0key\r\n"), binary)
    check("empty value", c.cmd("SET", "empty", ""), "OK")
    check("get empty", c.cmd("GET", "empty"), b"")
    big = os.urandom(300000)
    check("set 300k", c.cmd("SET", "big", big), "OK")
    check("get 300k", c.cmd("GET", "big"), big)
    check("set nx existing", c.cmd("SET", "k", "v2", "NX"), None)
    check("set nx new", c.cmd("SET", "k2", "a", "nx"), "OK")
    check("set xx missing", c.cmd("SET", "k3", "a", "XX"), None)
    check("get k3", c.cmd("GET", "k3"), None)
    check("set xx existing", c.cmd("SET", "k2", "b", "XX"), "OK")
    check("set get", c.cmd("SET", "k2", "c", "GET"), b"b")
    check("set get missing", c.cmd("SET", "k4", "d", "GET"), None)
    check("set nx get existing", c.cmd("SET", "k4", "e", "NX", "GET"), b"d")
    check("nx get kept", c.cmd("GET", "k4"), b"d")
    check("set xx get missing", c.cmd("SET", "k5", "e", "XX", "GET"), None)
    check("set nx xx", c.cmd("SET", "k", "v", "NX", "XX"), Err("ERR syntax error"))
    check("set junk", c.cmd("SET", "k", "v", "FOO"), Err("ERR syntax error"))
    check("ex without arg", c.cmd("SET", "k", "v", "EX"), Err("ERR syntax error"))
    check("value kept", c.cmd("GET", "k"), b"v1")
    check("set ex", c.cmd("SET", "k", "v2", "EX", "100"), "OK")
    check("ttl of set ex", c.cmd("TTL", "k"), 100)
    check("setex", c.cmd("SETEX", "k", "10", "v1"), "OK")
    check("ttl of setex", c.cmd("TTL", "k"), 10)
    check("set clears ttl", [c.cmd("SET", "k", "v1"), c.cmd("TTL", "k")], ["OK", -1])
    check("set arity", c.cmd("SET", "k"),
          Err("ERR wrong number of arguments for 'set' command"))

    check("setnx new", c.cmd("SETNX", "n1", "x"), 1)
    check("setnx old", c.cmd("SETNX", "n1", "y"), 0)
    check("getdel", c.cmd("GETDEL", "n1"), b"x")
    check("getdel gone", c.cmd("GETDEL", "n1"), None)
    r = c.cmd("SET", b"k" * ((1 << 20) + 1), "v")
    ok("key over the engine's limit", isinstance(r, Err), repr(r)[:80])
    check("strlen", c.cmd("STRLEN", "big"), 300000)
    check("strlen missing", c.cmd("STRLEN", "nope"), 0)
    check("append new", c.cmd("APPEND", "ap", "abc"), 3)
    check("append", c.cmd("APPEND", "ap", "de"), 5)
    check("append value", c.cmd("GET", "ap"), b"abcde")

    # counters
    check("incr new", c.cmd("INCR", "cnt"), 1)
    check("incr", c.cmd("INCR", "cnt"), 2)
    check("incrby", c.cmd("INCRBY", "cnt", "40"), 42)
    check("decr", c.cmd("DECR", "cnt"), 41)
    check("decrby", c.cmd("DECRBY", "cnt", "50"), -9)
    check("incr stored text", c.cmd("GET", "cnt"), b"-9")
    check("incr not int", c.cmd("INCR", "k"),
          Err("ERR value is not an integer or out of range"))
    check("incrby bad arg", c.cmd("INCRBY", "cnt", "1x"),
          Err("ERR value is not an integer or out of range"))
    c.cmd("SET", "sp", " 1")
    check("incr space", c.cmd("INCR", "sp"),
          Err("ERR value is not an integer or out of range"))
    c.cmd("SET", "max", "9223372036854775807")
    check("incr overflow", c.cmd("INCR", "max"),
          Err("ERR increment or decrement would overflow"))
    c.cmd("SET", "min", "-9223372036854775808")
    check("decr overflow", c.cmd("DECR", "min"),
          Err("ERR increment or decrement would overflow"))
    check("decrby min", c.cmd("DECRBY", "cnt", "-9223372036854775808"),
          Err("ERR decrement would overflow"))

    # several keys
    check("mset", c.cmd("MSET", "m1", "a", "m2", "b", "m3", "c"), "OK")
    check("mset odd", c.cmd("MSET", "m1", "a", "m2"),
          Err("ERR wrong number of arguments for 'mset' command"))
    check("mget", c.cmd("MGET", "m1", "nope", "m3"), [b"a", None, b"c"])
    check("msetnx blocked", c.cmd("MSETNX", "m1", "z", "m9", "z"), 0)
    check("msetnx none set", c.cmd("EXISTS", "m9"), 0)
    check("msetnx", c.cmd("MSETNX", "m8", "z", "m9", "z"), 1)
    check("exists several", c.cmd("EXISTS", "m1", "m2", "nope", "m1"), 3)
    check("del several", c.cmd("DEL", "m1", "m2", "nope", "m1"), 2)
    check("exists after del", c.cmd("EXISTS", "m1", "m2"), 0)
    check("type", c.cmd("TYPE", "m3"), "string")
    check("type none", c.cmd("TYPE", "m1"), "none")
    check("ttl", c.cmd("TTL", "m3"), -1)
    check("ttl missing", c.cmd("TTL", "m1"), -2)

    # key space
    check("flushdb again", c.cmd("FLUSHDB"), "OK")
    check("dbsize 0", c.cmd("DBSIZE"), 0)
    keys = ["user:%03d" % i for i in range(250)] + ["item:%d" % i for i in range(50)]
    c.pipeline([("SET", k, "v") for k in keys])
    check("dbsize", c.cmd("DBSIZE"), 300)
    check("keys prefix", sorted(c.cmd("KEYS", "user:*")), sorted(k.encode() for k in keys[:250]))
    check("keys glob", c.cmd("KEYS", "user:00[0-2]"), [b"user:000", b"user:001", b"user:002"])
    check("keys ?", len(c.cmd("KEYS", "item:?")), 10)
    check("keys none", c.cmd("KEYS", "zzz*"), [])
    check("keys all", len(c.cmd("KEYS", "*")), 300)
    seen, cur, calls = [], b"0", 0
    while True:
        cur, batch = c.cmd("SCAN", cur, "COUNT", "7")
        seen += batch
        calls += 1
        if cur == b"0":
            break
    check("scan all", sorted(seen), sorted(k.encode() for k in keys))
    ok("scan pages", calls >= 300 // 7, str(calls))
    seen, cur = [], b"0"
    while True:
        cur, batch = c.cmd("SCAN", cur, "MATCH", "item:*", "COUNT", "10")
        seen += batch
        if cur == b"0":
            break
    check("scan match", sorted(seen), sorted(k.encode() for k in keys[250:]))
    # the next key of a cursor deleted between calls: the scan goes on
    cur, first = c.cmd("SCAN", "0", "MATCH", "user:*", "COUNT", "5")
    nxt = "user:%03d" % (int(first[-1][5:]) + 1)
    c.cmd("DEL", nxt)
    seen = list(first)
    while cur != b"0":
        cur, batch = c.cmd("SCAN", cur, "MATCH", "user:*", "COUNT", "50")
        seen += batch
    check("scan after delete", len(seen), 249)
    check("scan bad cursor", c.cmd("SCAN", "abc"), Err("ERR invalid cursor"))
    r = c.cmd("SCAN", "999999999")   # any number is a cursor, as in Redis
    ok("scan unknown cursor answered", isinstance(r, list) and len(r) == 2, repr(r))
    check("scan count 0", c.cmd("SCAN", "0", "COUNT", "0"), Err("ERR syntax error"))
    check("scan type hash", c.cmd("SCAN", "0", "TYPE", "hash", "COUNT", "1000"), [b"0", []])
    check("flushdb", c.cmd("FLUSHDB"), "OK")
    check("flushdb empties", c.cmd("DBSIZE"), 0)
    check("flushall", c.cmd("FLUSHALL", "SYNC"), "OK")

    # server commands
    info = c.cmd("INFO")
    ok("info keyspace", b"db0:keys=0" in info, repr(info[:80]))
    ok("info tinkv", b"# Tinkv" in info and b"live_bytes:" in info)
    ok("info section", c.cmd("INFO", "keyspace").startswith(b"# Keyspace"))
    check("select 0", c.cmd("SELECT", "0"), "OK")
    check("select 1", c.cmd("SELECT", "1"), Err("ERR DB index is out of range"))
    check("select x", c.cmd("SELECT", "x"), Err("ERR value is not an integer or out of range"))
    check("config get", c.cmd("CONFIG", "GET", "appendonly"), [b"appendonly", b"yes"])
    check("config get save", c.cmd("CONFIG", "GET", "save"), [b"save", b""])
    ok("config get glob", len(c.cmd("CONFIG", "GET", "*")) >= 20)
    r = c.cmd("CONFIG", "SET", "maxclients", "5")
    ok("config set refused", isinstance(r, Err))
    ok("command count", c.cmd("COMMAND", "COUNT") >= 30)
    info = c.cmd("COMMAND", "INFO", "get", "nosuch")
    check("command info", (info[0][0], info[0][1], info[1]), (b"get", 2, None))
    ok("command", len(c.cmd("COMMAND")) == c.cmd("COMMAND", "COUNT"))
    ok("command docs", isinstance(c.cmd("COMMAND", "DOCS"), Err))
    check("client getname none", c.cmd("CLIENT", "GETNAME"), None)
    check("client setname", c.cmd("CLIENT", "SETNAME", "tester"), "OK")
    check("client getname", c.cmd("CLIENT", "GETNAME"), b"tester")
    ok("client setname space", isinstance(c.cmd("CLIENT", "SETNAME", "a b"), Err))
    ok("client list", b"name=tester" in c.cmd("CLIENT", "LIST"))
    ok("client id", isinstance(c.cmd("CLIENT", "ID"), int))
    check("unknown", c.cmd("FOO", "a", "b"),
          Err("ERR unknown command 'FOO', with args beginning with: 'a' 'b' "))
    check("unknown no args", c.cmd("NOSUCH"),
          Err("ERR unknown command 'NOSUCH', with args beginning with: "))
    check("other data type", c.cmd("HGET"),
          Err("ERR unknown command 'HGET', with args beginning with: "
              "(tinkv-server stores strings only: hashes are out of scope)"))

    # MULTI / EXEC / DISCARD
    check("multi", c.cmd("MULTI"), "OK")
    check("queued set", c.cmd("SET", "t", "1"), "QUEUED")
    check("queued incr", c.cmd("INCR", "t"), "QUEUED")
    check("queued bad incr", c.cmd("INCR", "notint"), "QUEUED")
    check("nested multi", c.cmd("MULTI"), Err("ERR MULTI calls can not be nested"))
    c2 = Conn(port)
    c2.cmd("SET", "notint", "x")
    check("not visible before exec", c2.cmd("GET", "t"), None)
    check("exec", c.cmd("EXEC"),
          ["OK", 2, Err("ERR value is not an integer or out of range")])
    check("visible after exec", c2.cmd("GET", "t"), b"2")
    check("exec without multi", c.cmd("EXEC"), Err("ERR EXEC without MULTI"))
    check("discard without multi", c.cmd("DISCARD"), Err("ERR DISCARD without MULTI"))
    c.cmd("MULTI")
    c.cmd("SET", "t", "discarded")
    check("discard", c.cmd("DISCARD"), "OK")
    check("discarded", c.cmd("GET", "t"), b"2")
    c.cmd("MULTI")
    check("unknown in multi", c.cmd("NOPE"),
          Err("ERR unknown command 'NOPE', with args beginning with: "))
    c.cmd("SET", "t", "3")
    check("execabort", c.cmd("EXEC"),
          Err("EXECABORT Transaction discarded because of previous errors."))
    check("execabort kept", c.cmd("GET", "t"), b"2")
    c.cmd("MULTI")
    check("compact in multi", c.cmd("COMPACT"),
          Err("ERR Command not allowed inside a transaction"))
    c.cmd("DISCARD")
    c.cmd("MULTI")
    c.cmd("MSET", "e1", "1", "e2", "2")
    c.cmd("GET", "e1")
    c.cmd("DEL", "e2")
    check("exec several", c.cmd("EXEC"), ["OK", b"1", 1])
    check("empty exec", c.pipeline([("MULTI",), ("EXEC",)]), ["OK", []])

    # COMPACT
    for i in range(50):
        c.cmd("SET", "garbage", "x" * 1000)
    r = c.cmd("COMPACT")
    ok("compact", isinstance(r, int) and r >= 0, repr(r))
    check("data after compact", c.cmd("GET", "t"), b"2")

    # pipelining: many commands in one write, replies in order
    n = 20000
    cmds = []
    for i in range(n):
        cmds.append(("SET", "p%d" % i, "v%d" % i) if i % 2 == 0 else ("GET", "p%d" % (i - 1)))
    replies = c.pipeline(cmds)
    bad = [i for i, r in enumerate(replies)
           if r != ("OK" if i % 2 == 0 else ("v%d" % (i - 1)).encode())]
    check("pipeline of %d" % n, bad[:3], [])
    # The keys of pipelined requests are prefetched before they run; that
    # is only a hint: writes and reads of the same key in one pipeline,
    # binary and empty keys, inline requests, commands without a key and a
    # pipeline cut in the middle of a request all answer as run one by one.
    c.pipeline([("DEL", "pf%d" % i) for i in range(40)])
    blob = bytes(range(256))
    cmds = []
    want = []
    for i in range(40):
        k = "pf%d" % i
        cmds += [("GET", k), ("SET", k, "a%d" % i), ("GET", k), ("APPEND", k, "b"),
                 ("GET", k), ("DEL", k), ("GET", k), ("INCR", k), ("MGET", k, "nope", k),
                 ("PING",), ("SET", blob + k.encode(), k), ("GET", blob + k.encode()),
                 ("SET", "", k), ("GET", "")]
        want += [None, "OK", ("a%d" % i).encode(), len("a%d" % i) + 1,
                 ("a%db" % i).encode(), 1, None, 1, [b"1", None, b"1"],
                 "PONG", "OK", k.encode(), "OK", k.encode()]
    got = c.pipeline(cmds)
    bad = [(i, cmds[i], got[i], want[i]) for i in range(len(cmds)) if got[i] != want[i]]
    check("prefetched pipeline", bad[:3], [])
    wire = b"".join(encode(*x) for x in [("SET", "pfx", "1"), ("GET", "pfx")])
    wire += b"GET pfx\r\n" + encode("GET", "pfx")
    wire += b"".join(encode("INCR", "pfx") for _ in range(20))
    cut = wire + encode("GET", "pfx")
    c.send(cut[:len(cut) - 5])
    time.sleep(0.05)
    c.send(cut[len(cut) - 5:])
    got = [c.read() for _ in range(25)]
    check("prefetched pipeline, inline and cut", got,
          ["OK", b"1", b"1", b"1"] + list(range(2, 22)) + [b"21"])
    # pipelined replies of several clients interleave correctly
    conns = [Conn(port) for _ in range(8)]
    for j, cc in enumerate(conns):
        cc.send(b"".join(encode("INCR", "shared") for _ in range(500)))
    for cc in conns:
        [cc.read() for _ in range(500)]
    check("8 clients x 500 INCR", c.cmd("GET", "shared"), b"4000")
    for cc in conns:
        cc.close()

    # inline commands, as typed into telnet
    c.send(b"PING\r\nSET inl  val\r\nGET inl\n\r\n")
    check("inline", [c.read(), c.read(), c.read()], ["PONG", "OK", b"val"])
    # a request split into many tiny writes
    req = encode("SET", "split", "x" * 1000)
    for i in range(0, len(req), 7):
        c.send(req[i:i + 7])
    check("byte-by-byte request", c.read(), "OK")

    check("quit", c.cmd("QUIT"), "OK")
    ok("quit closes", c.is_closed())
    c2.close()


# ------------------------------------------------------------ bad input

def expect_proto_error(port, name, data, want_prefix):
    c = Conn(port)
    c.send(data)
    try:
        r = c.read()
    except Closed:
        r = None
    ok(name + " error", isinstance(r, Err) and r.startswith(want_prefix), repr(r))
    ok(name + " closes", c.is_closed())
    c.close()


def suite_badinput(port):
    other = Conn(port)
    other.cmd("SET", "safe", "data")
    expect_proto_error(port, "bad count", b"*abc\r\n",
                       "ERR Protocol error: invalid multibulk length")
    expect_proto_error(port, "absurd array", b"*99999999999\r\n",
                       "ERR Protocol error: invalid multibulk length")
    expect_proto_error(port, "array over 1M", b"*1048577\r\n",
                       "ERR Protocol error: invalid multibulk length")
    expect_proto_error(port, "not a bulk", b"*1\r\n+PING\r\n",
                       "ERR Protocol error: expected '$', got '+'")
    expect_proto_error(port, "negative bulk", b"*1\r\n$-5\r\n",
                       "ERR Protocol error: invalid bulk length")
    expect_proto_error(port, "absurd bulk", b"*2\r\n$3\r\nGET\r\n$99999999999999\r\n",
                       "ERR Protocol error: invalid bulk length")
    expect_proto_error(port, "bulk over --max-value",
                       b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n",
                       "ERR Protocol error: invalid bulk length")
    # as Redis: the two bytes after a bulk string are skipped unread
    c = Conn(port)
    c.send(b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\n\n")
    check("two bytes after a bulk skipped unread", [c.read(), c.read()], ["PONG", "PONG"])
    c.close()
    expect_proto_error(port, "long header", b"*" + b"1" * 70000,
                       "ERR Protocol error: too big multibulk count string")
    expect_proto_error(port, "long inline", b"A" * 70000,
                       "ERR Protocol error: too big inline request")
    # replies to the requests before the bad one are still sent
    c = Conn(port)
    c.send(encode("PING") + encode("ECHO", "x") + b"*1\r\n$x\r\n")
    check("replies before the error", [c.read(), c.read()], ["PONG", b"x"])
    ok("then error", isinstance(c.read(), Err))
    ok("then closed", c.is_closed())

    # half-sent requests do not block anyone
    half = Conn(port)
    half.send(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$10\r\n01234")
    check("others served meanwhile", other.cmd("GET", "safe"), b"data")
    half.send(b"56789\r\n")
    check("half completed", half.read(), "OK")
    half.send(b"*2\r\n$3\r\nGET\r\n$4\r\nha")
    half.close()                      # disconnect mid-command
    gone = Conn(port)                 # disconnect with replies pending
    gone.send(b"".join(encode("GET", "half") for _ in range(5000)))
    gone.close()
    big = Conn(port)                  # disconnect in the middle of a value
    big.send(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$900000\r\n" + b"x" * 400000)
    big.close()
    check("half key written once", other.cmd("GET", "half"), b"0123456789")
    check("no partial value", other.cmd("EXISTS", "big"), 0)
    # garbage bytes
    g = Conn(port)
    g.send(bytes(range(256)) * 10)
    g.is_closed(2)
    g.close()
    check("server alive", other.cmd("PING"), "PONG")
    check("data intact", other.cmd("GET", "safe"), b"data")
    # value at the limit is fine; over it, APPEND is refused
    v = b"y" * (1 << 20)
    check("value at --max-value", other.cmd("SET", "lim", v), "OK")
    check("append over limit", other.cmd("APPEND", "lim", "z"),
          Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)"))
    other.close()


# ---------------------------------------------------------------- limits

def rss(c):
    info = c.cmd("INFO", "memory").decode()
    for line in info.split("\r\n"):
        if line.startswith("used_memory_rss:"):
            return int(line.split(":")[1])
    return -1


def suite_limits(port):
    # more clients than --max-clients 8
    conns = [Conn(port) for _ in range(8)]
    for cc in conns:
        cc.cmd("PING")
    extra = Conn(port)
    try:
        r = extra.read()
    except Closed:
        r = None
    check("max clients", r, Err("ERR max number of clients reached"))
    ok("max clients closes", extra.is_closed())
    for cc in conns[1:]:
        cc.close()
    time.sleep(0.2)
    c = conns[0]
    c2 = Conn(port)
    check("room again", c2.cmd("PING"), "PONG")

    # a client that pipelines GETs of 512 KiB and never reads: the server
    # stops reading it instead of buffering gigabytes
    c.cmd("SET", "fat", b"f" * (512 << 10))
    before = rss(c2)
    slow = Conn(port)
    slow.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.s.setblocking(False)
    req = encode("GET", "fat") * 256
    sent = 0
    deadline = time.time() + 3
    while time.time() < deadline and sent < 4000 * len(encode("GET", "fat")):
        try:
            sent += slow.s.send(req)
        except BlockingIOError:
            time.sleep(0.01)
    grown = rss(c2) - before
    ok("slow reader bounded", grown < (64 << 20), "grew %d bytes" % grown)
    check("others unaffected", c2.cmd("PING"), "PONG")
    slow.close()
    time.sleep(0.1)
    check("after slow reader", c2.cmd("GET", "fat")[:1], b"f")

    # --timeout 2: an idle (or half-sent) client is closed
    idle = Conn(port)
    idle.send(b"*1\r\n$4\r\nPI")
    ok("idle client closed", idle.is_closed(6))
    c.close()
    c2.close()


# ------------------------------------------------------ kill mid-write

def suite_killwrite(port, pid, path):
    """Pipeline SETs in batches; once 20000 are acknowledged, SIGKILL the
    server with a batch in flight.  Record the acknowledged count."""
    c = Conn(port)
    acked = 0
    batch = 200
    i = 0
    killed = False
    while not killed:
        c.send(b"".join(encode("SET", "kw:%07d" % (i + j), "val%d" % (i + j))
                        for j in range(batch)))
        if acked >= 20000:
            os.kill(pid, signal.SIGKILL)
            killed = True
        try:
            for j in range(batch):
                r = c.read()
                if r != "OK":
                    break
                acked = i + j + 1
        except (Closed, ConnectionResetError, socket.timeout):
            break
        i += batch
    with open(path, "w") as f:
        f.write("%d\n" % acked)
    ok("writes acknowledged before kill", acked >= 20000, str(acked))


def suite_verify(port, path, mode):
    """Every acknowledged write is there (sync full/normal); at sync=off,
    what survived is a prefix of the writes, intact."""
    acked = int(open(path).read())
    c = Conn(port)
    n = acked + 2000
    got = c.pipeline([("GET", "kw:%07d" % i) for i in range(n)])
    present = [i for i, v in enumerate(got) if v is not None]
    wrong = [i for i in present if got[i] != b"val%d" % i]
    check("%s: values intact" % mode, wrong[:3], [])
    last = present[-1] + 1 if present else 0
    check("%s: survivors are a prefix" % mode, len(present), last)
    if mode in ("full", "normal"):
        ok("%s: all %d acknowledged writes survive" % (mode, acked),
           last >= acked, "only %d" % last)
    else:
        print("sync=off: %d of %d acknowledged writes survived the kill" % (last, acked))
        ok("off: store reopens", True)


def main():
    suite, port = sys.argv[1], int(sys.argv[2])
    try:
        if suite == "commands":
            suite_commands(port)
        elif suite == "badinput":
            suite_badinput(port)
        elif suite == "limits":
            suite_limits(port)
        elif suite == "killwrite":
            suite_killwrite(port, int(sys.argv[3]), sys.argv[4])
        elif suite == "verify":
            suite_verify(port, sys.argv[3], sys.argv[4])
        else:
            raise SystemExit("unknown suite " + suite)
    except Exception as e:  # a crash of the test counts as a failure
        T.crashed(suite, e)
    T.report(suite)


if __name__ == "__main__":
    main()
