#!/usr/bin/env python3
"""An application using tinkv through plain SQL from Python.

    python3 example.py app.db build/tinkv

The same steps as example.c, with Python's sqlite3 module; tests/sql.sh
runs it and compares the output with expected.txt.
"""
import sqlite3
import sys


def main(database, extension):
    conn = sqlite3.connect(database)
    if not hasattr(conn, "enable_load_extension"):
        sys.exit("this Python's sqlite3 module cannot load extensions "
                 "(use Debian's /usr/bin/python3)")
    conn.enable_load_extension(True)
    conn.load_extension(extension)
    conn.enable_load_extension(False)

    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS sessions USING tinkv")

    # Write three sessions in one transaction.
    with conn:
        conn.executemany(
            "INSERT OR REPLACE INTO sessions VALUES(?, ?)",
            [("session:%d" % (100 + i), user)
             for i, user in enumerate(["ada", "brian", "claude"])])
        conn.execute("INSERT OR REPLACE INTO sessions VALUES('hits', 0)")

    # A point lookup with a bound key.
    (owner,) = conn.execute("SELECT value FROM sessions WHERE key = ?",
                            ("session:101",)).fetchone()
    print("session:101 belongs to %s" % owner)

    with conn:
        conn.execute("UPDATE sessions SET value = value + 3 WHERE key = 'hits'")
        conn.execute("DELETE FROM sessions WHERE key = 'session:100'")
    for row in conn.execute("SELECT key, value FROM sessions WHERE key >= "
                            "'session:' AND key < 'session;' ORDER BY key"):
        print("|".join(str(c) for c in row))
    for row in conn.execute("SELECT 'hits', value, typeof(value) FROM sessions"
                            " WHERE key = 'hits'"):
        print("|".join(str(c) for c in row))
    for row in conn.execute("SELECT 'keys', json_extract("
                            "tinkv_stats('sessions'), '$.keys')"):
        print("|".join(str(c) for c in row))
    conn.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: example.py DATABASE EXTENSION")
    main(sys.argv[1], sys.argv[2])
