#!/usr/bin/env python3
"""Durable group commit of tinkv-server (--sync full): the sync thread
syncs one group of batches while the loop runs the next, and no reply
leaves before the sync that covers what it acknowledges or shows.

    test_durable.py SUITE PORT [ARGS...]

Suites:
  killmany PORT PID FILE   many clients pipeline SETs; SIGKILL the server
                           mid-stream; FILE records what each had
                           acknowledged
  verifymany PORT FILE     after a restart: every acknowledged SET is there
  heldread PORT SHIMDIR    with fdatasync slowed (the shim's "slow" file), a
                           GET of a key another client just wrote is
                           answered no earlier than that SET
  syncfail PORT SHIMDIR    one fdatasync fails (the shim's "fail" file): the
                           clients whose writes it covered get an error and
                           are closed; acknowledged writes stay readable;
                           the server reopens the store and serves again
The shim (tests/server/syncshim.c, LD_PRELOADed into the server) slows or
fails fdatasync when those files exist.
Prints one line per failure and "SUITE: N passed, M failed" at the end.
"""
import json
import os
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True          # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp import Closed, Conn, Err, Tally, encode  # noqa: E402

T = Tally()
check, ok = T.check, T.ok

CLIENTS = 24
DEPTH = 32      # SETs each client has in flight


def key(c, i):
    return "dm:%02d:%07d" % (c, i)


def val(c, i):
    return "v%d-%d" % (c, i)


def writer(port, c, acked, stop):
    """Pipeline SETs of client c, DEPTH at a time, counting the OKs in
    order until the server goes away."""
    try:
        conn = Conn(port)
    except OSError:
        return
    i = 0
    try:
        while not stop.is_set():
            conn.send(b"".join(encode("SET", key(c, i + j), val(c, i + j))
                               for j in range(DEPTH)))
            for j in range(DEPTH):
                if conn.read() != "OK":
                    return
                acked[c] = i + j + 1
            i += DEPTH
    except (Closed, OSError, ValueError):
        pass


def suite_killmany(port, pid, path):
    acked = [0] * CLIENTS
    stop = threading.Event()
    ts = [threading.Thread(target=writer, args=(port, c, acked, stop))
          for c in range(CLIENTS)]
    for t in ts:
        t.start()
    deadline = time.time() + 60
    while sum(acked) < 20000 and time.time() < deadline:
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)       # with every client mid-pipeline
    snap = list(acked)                 # nothing acknowledged after this
    stop.set()
    for t in ts:
        t.join(20)
    final = list(acked)
    with open(path, "w") as f:
        json.dump(final, f)
    ok("writes acknowledged before the kill", sum(snap) >= 20000,
       str(sum(snap)))
    ok("every client had writes acknowledged", min(final) > 0, str(final))


def suite_verifymany(port, path):
    acked = json.load(open(path))
    conn = Conn(port, timeout=60)
    lost, wrong = [], []
    for c, n in enumerate(acked):
        got = conn.pipeline([("GET", key(c, i)) for i in range(n)])
        for i, v in enumerate(got):
            if v is None:
                lost.append(key(c, i))
            elif v != val(c, i).encode():
                wrong.append(key(c, i))
    check("acknowledged SETs lost after kill -9 (%d acknowledged)"
          % sum(acked), lost[:5], [])
    check("acknowledged SETs with a wrong value", wrong[:5], [])


def touch(path):
    open(path, "w").close()


def suite_heldread(port, shim):
    a, b = Conn(port), Conn(port)
    check("set before", a.cmd("SET", "held", "old"), "OK")
    touch(os.path.join(shim, "slow"))      # syncs take 300 ms from now
    try:
        t0 = time.time()
        a.send(encode("SET", "held", "new"))
        time.sleep(0.1)                    # the SET ran; its sync is slow
        got = b.cmd("GET", "held")
        t_get = time.time() - t0
        r = a.read()
        t_set = time.time() - t0
    finally:
        try:
            os.unlink(os.path.join(shim, "slow"))
        except FileNotFoundError:
            pass
    check("SET acknowledged", r, "OK")
    if got == b"new":
        ok("GET that saw the unsynced SET waited for its sync",
           t_get >= 0.25 and t_get + 0.05 >= t_set,
           "GET after %.3f s, SET after %.3f s" % (t_get, t_set))
    else:
        check("GET saw the old value", got, b"old")
    check("GET after", b.cmd("GET", "held"), b"new")


def suite_syncfail(port, shim):
    c0 = Conn(port)
    check("set before", c0.cmd("SET", "sf:before", "1"), "OK")
    acked = [0] * 8
    errors = []
    closed = [False] * 8
    conns = [Conn(port) for _ in range(8)]
    touch(os.path.join(shim, "fail"))      # the next fdatasync fails

    def run(c):
        conn = conns[c]
        i = 0
        try:
            for _ in range(50):
                conn.send(b"".join(encode("SET", key(c, i + j), val(c, i + j))
                                   for j in range(DEPTH)))
                for j in range(DEPTH):
                    r = conn.read()
                    if isinstance(r, Err):
                        errors.append(str(r))
                        closed[c] = conn.is_closed(5)
                        return
                    if r != "OK":
                        return
                    acked[c] = i + j + 1
                i += DEPTH
        except (Closed, OSError):
            closed[c] = True

    ts = [threading.Thread(target=run, args=(c,)) for c in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    ok("the failed fdatasync was hit", not os.path.exists(
        os.path.join(shim, "fail")))
    ok("clients whose writes it covered got an error", len(errors) > 0,
       str(acked))
    ok("the error says the writes were not made durable",
       all("not made durable" in e or "rolled back" in e for e in errors),
       errors[:2])
    ok("a client that got the error is closed", all(
        closed[c] for c in range(8) if acked[c] < 50 * DEPTH), str(closed))
    # The store was reopened: serving again, acknowledged writes there.
    c1 = None
    for _ in range(100):
        try:
            c1 = Conn(port)
            if c1.cmd("PING") == "PONG":
                break
        except OSError:
            time.sleep(0.05)
    check("set after the reopen", c1.cmd("SET", "sf:after", "2"), "OK")
    check("write before the failure", c1.cmd("GET", "sf:before"), b"1")
    missing = [key(c, i) for c in range(8) for i in range(acked[c])
               if c1.cmd("GET", key(c, i)) != val(c, i).encode()]
    check("acknowledged writes readable after the failure", missing[:5], [])


def main():
    suite, port = sys.argv[1], int(sys.argv[2])
    try:
        if suite == "killmany":
            suite_killmany(port, int(sys.argv[3]), sys.argv[4])
        elif suite == "verifymany":
            suite_verifymany(port, sys.argv[3])
        elif suite == "heldread":
            suite_heldread(port, sys.argv[3])
        elif suite == "syncfail":
            suite_syncfail(port, sys.argv[3])
        else:
            raise SystemExit("unknown suite " + suite)
    except Exception as e:  # a crash of the test counts as a failure
        T.crashed(suite, e)
    T.report(suite)


if __name__ == "__main__":
    main()
