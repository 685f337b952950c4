#!/usr/bin/env python3
"""uploads.ttl / uploads.purgeinterval: idle sessions are purged, active
ones and finished blobs are not."""

import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import (Berth, Suite, blob_url, content_range, digest, expect_error, expect_session,  # noqa: E402
                       patch_chunk, start_upload, upload_blob)

suite = Suite("test_ttl")
WAIT = 20.0  # upper bound of the polling loops, not an expectation


@suite.test
def idle_session_purged_active_kept():
    srv = Berth(suite, config={"uploads": {"ttl": "2s", "purgeinterval": "1s"}}).start()
    rng = random.Random(5)
    c = srv.client()

    blob = rng.randbytes(5000)
    suite.require_eq("a finished blob", upload_blob(c, "ttl/blob", blob, chunk=1000).status, 201)

    r, idle_loc, idle_uuid = start_upload(c, "ttl/idle")
    suite.require_eq("POST idle", r.status, 202)
    suite.require_eq("idle chunk", patch_chunk(c, idle_loc, rng.randbytes(1000), 0).status, 202)
    r, empty_loc, empty_uuid = start_upload(c, "ttl/empty")
    suite.require_eq("POST empty idle", r.status, 202)
    r, act_loc, act_uuid = start_upload(c, "ttl/active")
    suite.require_eq("POST active", r.status, 202)

    # The active session gets a small chunk every 0.3 s while we wait.
    active = {"data": b"", "errors": [], "stop": False, "busy": 0}

    def keep_busy():
        cc = srv.client(timeout=30)
        while not active["stop"]:
            piece = rng.randbytes(100)
            try:
                r = cc.patch(act_loc, piece, {"Content-Range": content_range(len(active["data"]), len(piece))})
            except OSError as e:
                active["errors"].append(repr(e))
                break
            if r.status == 416 and r.h("range") == "0-%d" % max(len(active["data"]) - 1, 0):
                # the purger may hold the session for an instant while it
                # looks at it: the client retries, as any client would
                active["busy"] += 1
                if active["busy"] > 5:
                    active["errors"].append("PATCH refused with 416 %d times" % active["busy"])
                    break
                time.sleep(0.05)
                continue
            if r.status != 202:
                active["errors"].append("PATCH %d %r" % (r.status, r.body[:200]))
                break
            active["data"] += piece
            time.sleep(0.3)

    t = threading.Thread(target=keep_busy)
    t.start()
    try:
        gone = False
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            r = c.get(idle_loc)
            if r.status == 404 and not srv.session_stored(idle_uuid):
                gone = True
                break
            time.sleep(0.25)
        suite.check("idle session purged (status 404, directory gone) within %ds" % WAIT, gone,
                    "status %d, dir exists %s" % (r.status, srv.session_stored(idle_uuid)))
        expect_error(suite, "status of the purged session", c.get(idle_loc), 404, "BLOB_UPLOAD_UNKNOWN")
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and (c.get(empty_loc).status != 404 or
                                               srv.session_stored(empty_uuid)):
            time.sleep(0.25)
        suite.check("idle empty session purged too", c.get(empty_loc).status == 404 and
                    not srv.session_stored(empty_uuid))
        # keep the active one busy a little longer than one more ttl
        for _ in range(10):
            time.sleep(0.3)
    finally:
        active["stop"] = True
        t.join(timeout=60)
    suite.eq("active session was never lost", active["errors"], [])
    if active["busy"]:
        print("# the active session's PATCH met a busy session %d time(s)" % active["busy"], flush=True)
    n = len(active["data"])
    r = c.get(act_loc)
    expect_session(suite, "active session still there", r, 204, "ttl/active", act_uuid, n - 1)
    suite.check("active session directory still there", srv.session_stored(act_uuid))
    r = c.put("%s?digest=%s" % (act_loc, digest(active["data"])))
    suite.eq("active session completes", r.status, 201)
    r = c.get(blob_url("ttl/active", digest(active["data"])))
    suite.eq("active session bytes", r.body, active["data"])
    r = c.get(blob_url("ttl/blob", digest(blob)))
    suite.eq("finished blobs are not purged", (r.status, r.body == blob), (200, True))
    srv.stop()


@suite.test
def purge_after_restart():
    """A session left idle while berth was down is purged after restart."""
    srv = Berth(suite, config={"uploads": {"ttl": "2s", "purgeinterval": "1s"}}).start()
    c = srv.client()
    r, loc, uuid = start_upload(c, "ttl/restart")
    suite.require_eq("POST", r.status, 202)
    suite.require_eq("chunk", patch_chunk(c, loc, b"x" * 1000, 0).status, 202)
    srv.stop()
    time.sleep(2.5)
    srv.start()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if srv.client().get(loc).status == 404 and not srv.session_stored(uuid):
            break
        time.sleep(0.25)
    suite.check("session idle across a restart is purged", srv.client().get(loc).status == 404 and
                not srv.session_stored(uuid))
    srv.stop(label="berth (after restart)")


@suite.test
def long_ttl_keeps_sessions():
    srv = Berth(suite, config={"uploads": {"ttl": "1h", "purgeinterval": "1s"}}).start()
    c = srv.client()
    r, loc, uuid = start_upload(c, "ttl/long")
    suite.require_eq("POST", r.status, 202)
    patch_chunk(c, loc, b"y" * 500, 0)
    time.sleep(3)  # three purge passes
    expect_session(suite, "session kept under a long ttl", c.get(loc), 204, "ttl/long", uuid, 499)
    srv.stop()


if __name__ == "__main__":
    suite.main()
