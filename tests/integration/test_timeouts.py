#!/usr/bin/env python3
"""http.timeout against clients that stall half way through a request body,
on HTTP/1.1 and HTTP/2 (h2c), whichever h2o berth was built on.

A client that stops sending for http.timeout loses its connection; one that
keeps sending, however slowly, does not, and its chunk is stored. libh2o
2.2.5 gave HTTP/2 that through its idle timeout, re-armed by every frame;
current h2o suspends that timeout while a stream waits for its whole body,
and berth's watchdog (http/bodywatch.h) stands in for it.

HTTP/2 frames are written by hand (prior knowledge, literal HPACK headers),
so that the test needs nothing but Python; the server's answers are not
decoded: sessions are checked over HTTP/1.1."""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import Berth, Suite, content_range, start_upload  # noqa: E402

suite = Suite("test_timeouts")
TIMEOUT_S = 2
SHUTDOWN_S = 1
# What a stalled connection may take to go: the timeout, the watchdog's
# one-second sweep, then GOAWAY and http.shutdowntimeout, with slack.
CUT_WITHIN_S = TIMEOUT_S + 1 + 1 + SHUTDOWN_S + 3
SENT = 10000
TOTAL = 100000

srv = None


def server():
    global srv
    if srv is None:
        srv = Berth(suite, config={"http": {"threads": 1, "timeout": "%ds" % TIMEOUT_S,
                                            "shutdowntimeout": "%ds" % SHUTDOWN_S}}, shared=True).start()
    return srv


# -- HTTP/2 by hand

def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, stream) + payload


def hpack_literal(name, value):
    """Literal header field without indexing, new name, no Huffman."""
    def string(s):
        b = s.encode()
        assert len(b) < 127
        return bytes([len(b)]) + b
    return b"\x00" + string(name) + string(value)


def h2_open(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=1)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))
    return s


def h2_patch_headers(s, stream, loc, first, total):
    block = b"".join(hpack_literal(n, v) for n, v in [
        (":method", "PATCH"), (":scheme", "http"), (":authority", "127.0.0.1"), (":path", loc),
        ("content-type", "application/octet-stream"), ("content-length", str(total)),
        ("content-range", "%d-%d" % (first, first + total - 1))])
    s.sendall(frame(1, 0x4, stream, block))


def h2_pump(s, until):
    """Reads frames until `until` (monotonic); ACKs SETTINGS and PINGs.
    Returns "goaway", "closed", "headers" (an answer on stream 1) or None."""
    buf = b""
    while time.monotonic() < until:
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return "closed"
        if not data:
            return "closed"
        buf += data
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            ftype, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff
            payload, buf = buf[9:9 + n], buf[9 + n:]
            if ftype == 4 and not flags & 1:
                s.sendall(frame(4, 1, 0))
            elif ftype == 6 and not flags & 1:
                s.sendall(frame(6, 1, 0, payload))
            elif ftype == 7:
                return "goaway"
            elif ftype == 1 and stream == 1:
                return "headers"
    return None


def wait_closed(s, until):
    while time.monotonic() < until:
        try:
            if not s.recv(65536):
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def session(label):
    r, loc, uuid = start_upload(server().client(), "timeouts/%s" % label)
    suite.require_eq("%s: POST a session" % label, r.status, 202)
    return loc


def stored_range(loc):
    r = server().client().get(loc)
    return r.status, r.h("range")


@suite.test
def h2_stalled_body_is_cut():
    loc = session("h2-stall")
    s = h2_open(server().port)
    h2_patch_headers(s, 1, loc, 0, TOTAL)
    s.sendall(frame(0, 0, 1, os.urandom(SENT)))
    t0 = time.monotonic()
    got = h2_pump(s, t0 + CUT_WITHIN_S)
    took = time.monotonic() - t0
    suite.eq("h2c: a body stalled for http.timeout gets GOAWAY or a close", got in ("goaway", "closed"), True)
    suite.check("h2c: not before http.timeout (%d s)" % TIMEOUT_S, took >= TIMEOUT_S - 0.2, "%.1f s" % took)
    suite.check("h2c: the connection closes within %d s" % CUT_WITHIN_S,
                got == "closed" or wait_closed(s, t0 + CUT_WITHIN_S), "%.1f s" % (time.monotonic() - t0))
    s.close()
    suite.eq("h2c: the session is unchanged", stored_range(loc), (204, "0-0"))
    suite.eq("h2c: berth still serves", server().client().get("/v2/").status, 200)


@suite.test
def h2_slow_body_is_not_cut():
    """A body trickling in for twice http.timeout, a piece every half
    timeout, arrives whole."""
    loc = session("h2-slow")
    s = h2_open(server().port)
    pieces = 4 * TIMEOUT_S
    body = os.urandom(pieces * 1000)
    h2_patch_headers(s, 1, loc, 0, len(body))
    got = None
    for i in range(pieces):
        last = i == pieces - 1
        s.sendall(frame(0, 1 if last else 0, 1, body[i * 1000:(i + 1) * 1000]))
        got = h2_pump(s, time.monotonic() + (TIMEOUT_S / 2 if not last else 10))
        if got is not None:
            break
    suite.eq("h2c: a slow body is answered, not cut", got, "headers")
    s.close()
    suite.eq("h2c: the slow chunk is stored", stored_range(loc), (204, "0-%d" % (len(body) - 1)))


@suite.test
def h1_stalled_body_is_cut():
    loc = session("h1-stall")
    s = socket.create_connection(("127.0.0.1", server().port), timeout=1)
    s.sendall(("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Range: %s\r\n"
               "Content-Length: %d\r\n\r\n" % (loc, content_range(0, TOTAL), TOTAL)).encode() + os.urandom(SENT))
    t0 = time.monotonic()
    closed = wait_closed(s, t0 + CUT_WITHIN_S)
    took = time.monotonic() - t0
    suite.check("HTTP/1.1: a body stalled for http.timeout loses its connection", closed, "%.1f s" % took)
    suite.check("HTTP/1.1: not before http.timeout (%d s)" % TIMEOUT_S, took >= TIMEOUT_S - 0.2, "%.1f s" % took)
    s.close()
    suite.eq("HTTP/1.1: the session is unchanged", stored_range(loc), (204, "0-0"))


@suite.test
def shutdown():
    if srv is not None:
        srv.stop(label="berth (timeouts)")


if __name__ == "__main__":
    suite.main()
