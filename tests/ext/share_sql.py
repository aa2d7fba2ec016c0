#!/usr/bin/python3
"""Several processes on one tinkv table, through SQL (README, "Several
processes").

    tests/ext/share_sql.py BUILD/tinkv

Real processes (Python's sqlite3 module and the sqlite3 shell) share one
store, the way an application's workers, a cron job and a person in the
shell would:

  counter     writer processes increment one counter with
              UPDATE kv SET value = value + 1 and with BEGIN; SELECT;
              UPDATE; COMMIT (retrying SQLITE_BUSY): the total is exact
  reader      a reader running throughout never sees a transaction in part
              (each transaction writes the same number to two keys)
  busy        a writer waits up to its busy timeout (PRAGMA busy_timeout,
              Python's timeout=, the shell's .timeout) while another
              process writes, then fails with SQLITE_BUSY naming its pid;
              with no timeout it fails at once
  stale       BEGIN; SELECT; (another process commits); UPDATE is refused
              with SQLITE_BUSY (no lost update)
  readonly    sqlite3 -readonly, mode=ro URIs and PRAGMA query_only read,
              refuse INSERT/UPDATE/DELETE and tinkv_compact, never block a
              writer, and change no file of the store
  opens       many processes open (and the first ones create) one table at
              once: every one works, and one store results
  kill        kill -9 of a process inside a write transaction leaves
              nothing held, and its writes never appear
  compact     tinkv_compact in one process while another has the table
              open: it runs, and the other process reads every value right
              before and after it, without reopening
  snapshot    inside BEGIN...COMMIT a reader's view does not change while
              another process and another connection of its own process
              insert, update, delete and compact; after COMMIT it sees
              everything (and a write after a changed read is refused)

Prints "ok NAME" or "FAIL NAME: why" per test, then "share_sql: N passed,
M failed"; the exit status is 0 only if nothing failed.
"""
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

SO = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "build/tinkv"
PY = sys.executable
results = []


def connect(db, timeout=0.0, uri=False, readonly=False):
    if readonly:
        db, uri = "file:%s?mode=ro" % db, True
    c = sqlite3.connect(db, timeout=timeout, isolation_level=None, uri=uri)
    c.enable_load_extension(True)
    c.load_extension(SO)
    return c


def check(name, cond, why):
    results.append((name, bool(cond), why))
    print(("ok   %s" % name) if cond else ("FAIL %s: %s" % (name, why)),
          flush=True)


def store_files(d):
    """Name, size and mtime of every file of the store directory."""
    out = {}
    for n in sorted(os.listdir(d)):
        st = os.stat(os.path.join(d, n))
        out[n] = (st.st_size, st.st_mtime_ns)
    return out


def child(code, *args):
    """Start a Python child running `code` with SO, the args in argv."""
    return subprocess.Popen([PY, "-c", PRELUDE + code, SO] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


PRELUDE = r"""
import sqlite3, sys, time, os
SO = sys.argv[1]
def connect(db, timeout=10.0):
    c = sqlite3.connect(db, timeout=timeout, isolation_level=None)
    c.enable_load_extension(True)
    c.load_extension(SO)
    return c
"""

# One writer: n increments, alternately as one statement and as a
# read-modify-write transaction, retrying when refused with SQLITE_BUSY.
WRITER = r"""
db, n = sys.argv[2], int(sys.argv[3])
c = connect(db)
retries = 0
for i in range(n):
    while True:
        try:
            if i % 2 == 0:
                c.execute("UPDATE kv SET value = value + 1 WHERE key='c'")
            else:
                c.execute("BEGIN")
                v = c.execute("SELECT value FROM kv WHERE key='c'").fetchone()[0]
                c.execute("UPDATE kv SET value = ? WHERE key='c'", (v + 1,))
                c.execute("COMMIT")
            break
        except sqlite3.OperationalError as e:
            if not c.in_transaction and "busy" not in str(e) \
               and "locked" not in str(e) and "changed" not in str(e):
                raise
            if c.in_transaction:
                c.execute("ROLLBACK")
            retries += 1
    # a pair written in one transaction, for the reader
    c.execute("BEGIN")
    c.execute("REPLACE INTO kv VALUES('a', ?)", (os.getpid() * 100000 + i,))
    c.execute("REPLACE INTO kv VALUES('b', ?)", (os.getpid() * 100000 + i,))
    c.execute("COMMIT")
print(retries)
"""

# A reader: reads the pair until told to stop; prints torn reads.
READER = r"""
db, stop = sys.argv[2], sys.argv[3]
c = connect(db)
torn = reads = 0
while not os.path.exists(stop):
    rows = dict(c.execute("SELECT key, value FROM kv WHERE key IN ('a','b')"))
    reads += 1
    if rows.get('a') != rows.get('b'):
        torn += 1
print(torn, reads)
"""


def test_counter(d):
    # Writers on two database files (WAL) whose tables share the store, so
    # that SQLite's own locks on a file serialize nothing: the store must.
    a, b, _ = two_tables(d, wal=True)
    c = connect(a)
    c.execute("INSERT INTO kv VALUES('a', 0), ('b', 0)")
    stop = os.path.join(d, "stop")
    reader = child(READER, b, stop)
    nproc, n = 4, 150
    ws = [child(WRITER, (a, b)[i % 2], str(n)) for i in range(nproc)]
    outs = [w.communicate(timeout=300) for w in ws]
    open(stop, "w").close()
    rout = reader.communicate(timeout=60)
    bad = [o[1] for w, o in zip(ws, outs) if w.returncode != 0]
    total = c.execute("SELECT value FROM kv WHERE key='c'").fetchone()[0]
    check("counter", not bad and total == nproc * n,
          "total %s, expected %d; %s" % (total, nproc * n, bad[:1]))
    torn, reads = (rout[0].split() + ["?", "?"])[:2]
    check("reader", reader.returncode == 0 and torn == "0" and reads != "0",
          "torn reads %s of %s; %s" % (torn, reads, rout[1][-300:]))
    c.close()


# Holds the write lock of the store (a transaction open) until killed or
# until the file argv[3] appears; says "held" once it holds it.
HOLDER = r"""
db, release = sys.argv[2], sys.argv[3]
c = connect(db)
c.execute("BEGIN")
c.execute("UPDATE kv SET value = -1 WHERE key='c'")
c.execute("INSERT INTO kv VALUES('uncommitted', 1)")
print("held", flush=True)
while not os.path.exists(release):
    time.sleep(0.01)
c.execute("ROLLBACK")
"""


def two_tables(d, wal=False):
    """Two database files whose tables share one store: SQLite's own lock
    on a database file then does not serialize their writers, the
    store's does."""
    a, b = os.path.join(d, "a.db"), os.path.join(d, "b.db")
    st = os.path.join(d, "store")
    if wal:
        for f in (a, b):
            connect(f).execute("PRAGMA journal_mode=WAL").fetchall()
    ca = connect(a)
    ca.execute("CREATE VIRTUAL TABLE kv USING tinkv(path='%s')" % st)
    ca.execute("INSERT INTO kv VALUES('c', 0)")
    ca.close()
    cb = connect(b)
    cb.execute("CREATE VIRTUAL TABLE kv USING tinkv(path='%s')" % st)
    cb.close()
    return a, b, st


def test_busy(d):
    a, b, _ = two_tables(d)
    release = os.path.join(d, "release")
    h = child(HOLDER, a, release)
    ok = h.stdout.readline().strip() == "held"
    cases = []
    for label, timeout, pragma in (("none", 0.0, None),
                                   ("timeout=", 0.4, None),
                                   ("PRAGMA", 0.0, 600)):
        c = connect(b, timeout=timeout)
        if pragma:
            c.execute("PRAGMA busy_timeout=%d" % pragma)
        t0 = time.monotonic()
        try:
            c.execute("UPDATE kv SET value = value + 1 WHERE key='c'")
            cases.append((label, "no error"))
        except sqlite3.OperationalError as e:
            waited = time.monotonic() - t0
            want = pragma / 1000 if pragma else timeout
            code = getattr(e, "sqlite_errorcode", sqlite3.SQLITE_BUSY)
            if code != sqlite3.SQLITE_BUSY or "process %d" % h.pid not in str(e):
                cases.append((label, "error %s: %s" % (code, e)))
            elif waited < want * 0.9 or waited > want + 2.0:
                cases.append((label, "waited %.2fs for %.2fs" % (waited, want)))
        # reads are never refused, never wait, never see the uncommitted
        t0 = time.monotonic()
        rows = c.execute("SELECT key, value FROM kv ORDER BY key").fetchall()
        if rows != [("c", 0)] or time.monotonic() - t0 > 0.5:
            cases.append((label, "read %s" % rows))
        c.close()
    # the shell's .timeout: waits, and succeeds once the holder lets go
    sh = subprocess.Popen(["sqlite3", "-cmd", ".load " + SO, "-cmd",
                           ".timeout 5000", b,
                           "UPDATE kv SET value = value + 1 WHERE key='c'"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    time.sleep(0.5)
    waiting = sh.poll() is None
    open(release, "w").close()
    out = sh.communicate(timeout=30)[0]
    h.communicate(timeout=30)
    c = connect(a)
    v = c.execute("SELECT value FROM kv WHERE key='c'").fetchone()[0]
    check("busy", ok and not cases and waiting and sh.returncode == 0 and v == 1,
          "held=%s %s shell waiting=%s rc=%s %r value=%s" %
          (ok, cases, waiting, sh.returncode, out, v))


# Commits one increment when the file argv[3] appears, then says "done".
BUMPER = r"""
db, go = sys.argv[2], sys.argv[3]
c = connect(db)
while not os.path.exists(go):
    time.sleep(0.01)
c.execute("UPDATE kv SET value = value + 1 WHERE key='c'")
print("done", flush=True)
"""


def test_stale(d):
    a, b, _ = two_tables(d)
    go = os.path.join(d, "go")
    p = child(BUMPER, a, go)
    c = connect(b)
    c.execute("BEGIN")
    v = c.execute("SELECT value FROM kv WHERE key='c'").fetchone()[0]
    open(go, "w").close()
    p.stdout.readline()
    p.communicate(timeout=30)
    err = None
    try:
        c.execute("UPDATE kv SET value = ? WHERE key='c'", (v + 1,))
    except sqlite3.OperationalError as e:
        err = e
    if c.in_transaction:
        c.execute("ROLLBACK")
    # retried, it works and counts both
    c.execute("BEGIN")
    v2 = c.execute("SELECT value FROM kv WHERE key='c'").fetchone()[0]
    c.execute("UPDATE kv SET value = ? WHERE key='c'", (v2 + 1,))
    c.execute("COMMIT")
    final = c.execute("SELECT value FROM kv WHERE key='c'").fetchone()[0]
    code = getattr(err, "sqlite_errorcode", None) if err else None
    check("stale", err is not None and "changed" in str(err) and final == 2
          and code in (None, sqlite3.SQLITE_BUSY, 517),
          "error %r (code %s), final %s" % (err, code, final))


def test_readonly(d):
    db = os.path.join(d, "t.db")
    c = connect(db)
    # WAL: in rollback-journal mode SQLite's own lock on the database file
    # makes a reader's open transaction hold up a writer's commit
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("CREATE VIRTUAL TABLE kv USING tinkv")
    c.execute("INSERT INTO kv VALUES('c', 0)")
    st = db + "-kv.tinkv"
    problems = []
    for label in ("mode=ro", "query_only", "shell -readonly"):
        before = store_files(st)
        if label == "shell -readonly":
            r = subprocess.run(["sqlite3", "-readonly", "-cmd", ".load " + SO,
                                db, "SELECT value FROM kv"],
                               capture_output=True, text=True)
            if r.stdout.strip() != "0":
                problems.append((label, "read", r.stdout, r.stderr))
            for sql in ("INSERT INTO kv VALUES('x', 1)",
                        "SELECT tinkv_compact('kv')"):
                r = subprocess.run(["sqlite3", "-readonly", "-cmd",
                                    ".load " + SO, db, sql],
                                   capture_output=True, text=True)
                want = "readonly" if "INSERT" in sql else "read-only"
                if r.returncode == 0 or want not in r.stderr:
                    problems.append((label, sql, r.stderr))
        else:
            r = connect(db, readonly=(label == "mode=ro"))
            if label == "query_only":
                r.execute("PRAGMA query_only=1")
            if r.execute("SELECT value FROM kv").fetchall() != [(0,)]:
                problems.append((label, "read"))
            # an open read transaction does not block a writer
            r.execute("BEGIN")
            r.execute("SELECT * FROM kv").fetchall()
            c.execute("UPDATE kv SET value = value + 1")
            c.execute("UPDATE kv SET value = value - 1")
            r.execute("COMMIT")
            before = store_files(st)
            for sql in ("INSERT INTO kv VALUES('x', 1)",
                        "UPDATE kv SET value = 9", "DELETE FROM kv"):
                try:
                    r.execute(sql)
                    problems.append((label, sql, "not refused"))
                except sqlite3.OperationalError as e:
                    if "attempt to write a readonly database" not in str(e):
                        problems.append((label, sql, str(e)))
            try:
                r.execute("SELECT tinkv_compact('kv')")
                problems.append((label, "compact not refused"))
            except sqlite3.OperationalError as e:
                if "read-only" not in str(e):
                    problems.append((label, "compact", str(e)))
            if label == "query_only":
                # switched off again, the connection writes
                r.execute("PRAGMA query_only=0")
                r.execute("UPDATE kv SET value = value + 0")
                before = store_files(st)
            r.close()
        after = store_files(st)
        if after != before:
            problems.append((label, "store changed", before, after))
    check("readonly", not problems, str(problems)[:600])


# Opens the table (creating it if it is not there yet) and inserts a key.
OPENER = r"""
db, i, go = sys.argv[2], sys.argv[3], sys.argv[4]
while not os.path.exists(go):
    time.sleep(0.001)
c = connect(db, timeout=20.0)
c.execute("CREATE VIRTUAL TABLE IF NOT EXISTS kv USING tinkv")
c.execute("INSERT INTO kv VALUES(?, ?)", ("k" + i, int(i)))
print(c.execute("SELECT count(*) FROM kv").fetchone()[0] >= 1)
"""


def test_opens(d):
    db = os.path.join(d, "t.db")
    go = os.path.join(d, "go")
    n = 12
    ps = [child(OPENER, db, str(i), go) for i in range(n)]
    time.sleep(0.3)
    open(go, "w").close()
    outs = [p.communicate(timeout=120) for p in ps]
    bad = [o for p, o in zip(ps, outs) if p.returncode != 0
           or o[0].strip() != "True"]
    c = connect(db)
    keys = c.execute("SELECT count(*) FROM kv").fetchone()[0]
    stores = [x for x in os.listdir(d) if x.endswith(".tinkv")]
    check("opens", not bad and keys == n and stores == ["t.db-kv.tinkv"],
          "%d failed %s; %d keys; %s" % (len(bad), bad[:1], keys, stores))


def test_kill(d):
    a, b, _ = two_tables(d)
    problems = []
    for round_ in range(3):
        h = child(HOLDER, a, os.path.join(d, "never"))
        if h.stdout.readline().strip() != "held":
            problems.append("holder did not start")
        os.kill(h.pid, signal.SIGKILL)
        h.wait()
        c = connect(b)       # no busy timeout: nothing may be held
        try:
            c.execute("UPDATE kv SET value = value + 1 WHERE key='c'")
        except sqlite3.OperationalError as e:
            problems.append("round %d: %s" % (round_, e))
        rows = c.execute("SELECT key, value FROM kv ORDER BY key").fetchall()
        if rows != [("c", round_ + 1)]:
            problems.append("round %d: %s" % (round_, rows))
        c.close()
    check("kill", not problems, str(problems))


# Holds the table open; reads it, waits for `go`, reads it again.
OPENREADER = r"""
db, go = sys.argv[2], sys.argv[3]
c = connect(db)
q = "SELECT count(*), total(value) FROM kv"
print(c.execute(q).fetchone(), flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
print(c.execute(q).fetchone(), flush=True)
"""


def test_compact(d):
    a, b, _ = two_tables(d)
    c = connect(b)
    c.execute("BEGIN")
    for rnd in range(3):
        for i in range(500):
            c.execute("REPLACE INTO kv VALUES(?, ?)", ("k%03d" % i, rnd * i))
    c.execute("COMMIT")
    c.execute("DELETE FROM kv WHERE key LIKE 'k%0'")
    want = c.execute("SELECT count(*), total(value) FROM kv").fetchone()
    go = os.path.join(d, "go")
    r = child(OPENREADER, a, go)
    problems = []
    first = r.stdout.readline().strip()
    if first != str(want):
        problems.append("before: %s, want %s" % (first, want))
    try:
        c.execute("SELECT tinkv_compact('kv')").fetchall()
    except sqlite3.OperationalError as e:
        problems.append("compact: %s" % e)
    c.execute("INSERT INTO kv VALUES('new', 7)")
    want = c.execute("SELECT count(*), total(value) FROM kv").fetchone()
    open(go, "w").close()
    second = r.stdout.readline().strip()
    r.wait()
    if second != str(want):
        problems.append("after: %s, want %s (%s)" % (second, want,
                                                    r.stderr.read()))
    c.close()
    check("compact", not problems, str(problems))


# Runs each SQL statement of argv[3:] in autocommit mode, then exits.
SQLRUN = r"""
c = connect(sys.argv[2])
for q in sys.argv[3:]:
    c.execute(q).fetchall()
"""


def test_snapshot(d):
    a, b, _ = two_tables(d)
    w = connect(a)      # (b's own file lock would wait for the reader)
    w.execute("BEGIN")
    for i in range(2000):
        w.execute("INSERT INTO kv VALUES(?, ?)", ("k%04d" % i, i))
    w.execute("COMMIT")
    q = "SELECT count(*), total(value), max(key) FROM kv"
    r = connect(b)
    problems = []
    r.execute("BEGIN")
    first = r.execute(q).fetchone()
    one = r.execute("SELECT value FROM kv WHERE key='k0007'").fetchone()
    rowid = r.execute("SELECT rowid FROM kv WHERE key='k0009'").fetchone()[0]
    steps = [
        ("another process", lambda: child(
            SQLRUN, a, "UPDATE kv SET value = value + 1000000",
            "DELETE FROM kv WHERE key LIKE 'k%3'",
            "INSERT INTO kv VALUES('zz', 1)",
            "DELETE FROM kv WHERE key = 'k0009'").communicate(timeout=60)),
        ("this process", lambda: w.execute(
            "REPLACE INTO kv VALUES('k0007', -5)")),
        ("a compaction", lambda: child(
            SQLRUN, a, "SELECT tinkv_compact('kv')").communicate(
                timeout=60)),
    ]
    for what, step in steps:
        step()
        now = r.execute(q).fetchone()
        if now != first:
            problems.append("after %s: %s, want %s" % (what, now, first))
        if r.execute("SELECT value FROM kv WHERE key='k0007'").fetchone() \
           != one:
            problems.append("after %s: k0007 changed" % what)
        if r.execute("SELECT key FROM kv WHERE rowid=?", (rowid,)).fetchone() \
           != ("k0009",):
            problems.append("after %s: rowid of k0009 lost" % what)
    try:
        r.execute("UPDATE kv SET value = 0 WHERE key='k0001'")
        problems.append("a write after a changed read was taken")
    except sqlite3.OperationalError:
        pass
    if r.in_transaction:
        r.execute("ROLLBACK")
    now = r.execute(q).fetchone()
    want = w.execute(q).fetchone()
    if now != want or now == first:
        problems.append("after COMMIT: %s, want %s" % (now, want))
    check("snapshot", not problems, str(problems)[:800])


def main():
    for name, fn in (("counter", test_counter), ("busy", test_busy),
                     ("stale", test_stale), ("readonly", test_readonly),
                     ("opens", test_opens), ("kill", test_kill),
                     ("compact", test_compact), ("snapshot", test_snapshot)):
        d = tempfile.mkdtemp(prefix="tinkv-share-")
        try:
            fn(d)
        except Exception as e:  # a crash of the test is a failure
            check(name, False, "%s: %s" % (type(e).__name__, e))
        finally:
            shutil.rmtree(d, ignore_errors=True)
    failed = sum(1 for r in results if not r[1])
    print("share_sql: %d passed, %d failed" % (len(results) - failed, failed))
    sys.exit(1 if failed else 0)


main()
