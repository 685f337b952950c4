#!/usr/bin/env python3
"""A client that goes away while a worker stores its chunk never stalls the
event loop: with storage held slow (BERTH_FAULT_DELAY) and one loop thread,
GET /v2/ on another connection answers within 100 ms while the worker is
still in the storage call of the abandoned PATCH.

The client leaves over HTTP/2 (h2c, curl giving up with --max-time): h2o
then disposes of the request at once, which used to wait on a lock the
worker held for its whole storage call. Over HTTP/1.1, libh2o 2.2.5 does
not read the socket while a request is handled, so it notices the client
only when it answers; that case is checked too.

BERTH_STALL_FAULT names the storage method to slow down (default
writer_write; a build of the previous storage contract calls it
upload_write)."""

import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import Berth, Suite, start_upload  # noqa: E402

suite = Suite("test_stall")
FAULT = os.environ.get("BERTH_STALL_FAULT", "writer_write")
DELAY_MS = 4000
GIVE_UP_S = 1.0
BUDGET_S = 0.100
BODY = os.urandom(4 << 20)
REPO = "stall/test"


def slow_server():
    """One loop thread; every FAULT call sleeps DELAY_MS first."""
    os.environ["BERTH_FAULT_DELAY"] = "%s:%d" % (FAULT, DELAY_MS)
    try:
        srv = Berth(suite, config={"http": {"threads": 1}})
        srv.start()
    finally:
        del os.environ["BERTH_FAULT_DELAY"]
    return srv


def get_base_time(srv):
    """(status, seconds) of GET /v2/ on a fresh connection."""
    t0 = time.monotonic()
    try:
        r = srv.client(timeout=30).get("/v2/")
        return r.status, time.monotonic() - t0
    except OSError as e:
        return repr(e), time.monotonic() - t0


def wait_stored(srv, loc, started, timeout=30):
    """Polls the session until the abandoned chunk is in; returns the time it
    took from `started`, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = srv.client(timeout=30).get(loc)
        if r.status == 204 and r.h("range") == "0-%d" % (len(BODY) - 1):
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def check_loop(srv, loc, label, started):
    """The measurement, then proof that the worker was still in storage."""
    measured_at = time.monotonic() - started
    status, took = get_base_time(srv)
    suite.eq("%s: GET /v2/ on another connection answers" % label, status, 200)
    suite.check("%s: GET /v2/ answers within %d ms while the worker is in storage" % (label, BUDGET_S * 1000),
                took < BUDGET_S, "took %.0f ms" % (took * 1000))
    print("#   %s: GET /v2/ took %.1f ms, %.2f s after the PATCH began" % (label, took * 1000, measured_at),
          flush=True)
    stored_at = wait_stored(srv, loc, started)
    suite.check("%s: the abandoned chunk was still being stored when GET /v2/ was answered" % label,
                stored_at is not None and stored_at > measured_at,
                "stored at %s s, measured at %.2f s" % (stored_at, measured_at))


@suite.test
def h2_client_gone():
    srv = slow_server()
    suite.require("curl speaks HTTP/2", b"HTTP2" in subprocess.run(["curl", "-V"], stdout=subprocess.PIPE).stdout)
    status, took = get_base_time(srv)
    suite.check("baseline: GET /v2/ within %d ms" % (BUDGET_S * 1000), status == 200 and took < BUDGET_S,
                "%s in %.0f ms" % (status, took * 1000))
    r, loc, uuid = start_upload(srv.client(), REPO)
    suite.require_eq("POST a session", r.status, 202)
    body = os.path.join(srv.dir, "chunk")
    with open(body, "wb") as f:
        f.write(BODY)
    started = time.monotonic()
    p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", str(GIVE_UP_S), "-X", "PATCH",
                        "-H", "Content-Type: application/octet-stream",
                        "-H", "Content-Range: 0-%d" % (len(BODY) - 1), "--data-binary", "@" + body,
                        "-o", "/dev/null", srv.url(loc)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    suite.eq("curl gave up waiting for the answer (exit 28)", p.returncode, 28)
    time.sleep(0.2)  # the loop has seen the connection close
    check_loop(srv, loc, "h2c", started)
    srv.stop()


@suite.test
def h1_client_gone():
    srv = slow_server()
    r, loc, uuid = start_upload(srv.client(), REPO)
    suite.require_eq("POST a session", r.status, 202)
    head = ("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Range: 0-%d\r\n"
            "Content-Length: %d\r\n\r\n" % (loc, len(BODY) - 1, len(BODY))).encode()
    started = time.monotonic()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(head + BODY)
    time.sleep(GIVE_UP_S)
    s.close()
    time.sleep(0.2)
    check_loop(srv, loc, "HTTP/1.1", started)
    srv.stop()


if __name__ == "__main__":
    suite.main()
