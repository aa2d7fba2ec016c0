"""A small RESP2 client for the server tests: raw bytes in, parsed replies
out, so tests can pipeline, send malformed input and watch the socket; and
the pass/fail tally every suite reports."""
import socket
import sys


class Tally:
    """Counts checks; prints a line per failure and, at the end, the
    "SUITE: N passed, M failed" line tests/server.sh adds up."""

    def __init__(self, fmt="FAIL %s: got %r, want %r"):
        self.passed = 0
        self.failed = 0
        self.fmt = fmt

    def check(self, name, got, want):
        if got == want:
            self.passed += 1
        else:
            self.failed += 1
            print(self.fmt % (name, got, want))

    def ok(self, name, cond, detail=""):
        self.check(name + (" " + str(detail) if detail and not cond else ""),
                   bool(cond), True)

    def crashed(self, suite, e):
        """A test that raised counts as one failure."""
        import traceback
        self.failed += 1
        print("FAIL %s: %s: %s" % (suite, type(e).__name__, e))
        traceback.print_exc(limit=-2, file=sys.stdout)

    def report(self, suite):
        print("%s: %d passed, %d failed" % (suite, self.passed, self.failed))
        sys.exit(1 if self.failed else 0)


class Err(str):
    """An error reply (-ERR ...), told apart from a status reply."""


class Closed(Exception):
    """The server closed the connection."""


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = str(a)
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port, timeout=10.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise Closed()
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self):
        """One reply: str (status), Err, int, bytes or None, list or None."""
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return Err(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError("bad reply line %r" % line)

    def cmd(self, *args):
        self.send(encode(*args))
        return self.read()

    def pipeline(self, cmds):
        self.send(b"".join(encode(*c) for c in cmds))
        return [self.read() for _ in cmds]

    def is_closed(self, wait=5.0):
        """True if the server closes the connection (after any replies)."""
        self.s.settimeout(wait)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
