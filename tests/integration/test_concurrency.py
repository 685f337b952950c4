#!/usr/bin/env python3
"""Concurrent sessions, and two writers racing on one session."""

import os
import random
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import (Berth, Suite, blob_url, content_range, digest, finish_upload, parse_raw_response,  # noqa: E402
                       patch_chunk, start_upload)

suite = Suite("test_concurrency")
srv = None
SESSIONS = 32
CHUNKS = 5


@suite.test
def start_server():
    global srv
    srv = Berth(suite, shared=True, threads=2, config={"storage": {"workers": 4}}).start()


@suite.test
def many_sessions():
    results = [None] * SESSIONS
    barrier = threading.Barrier(SESSIONS)

    def worker(i):
        rng = random.Random(1000 + i)
        c = srv.client(keepalive=bool(i % 2))
        repo = "conc/s%d" % (i % 5)
        try:
            chunks = [rng.randbytes(rng.randint(1, 256 * 1024)) for _ in range(CHUNKS)]
            data = b"".join(chunks)
            barrier.wait(timeout=60)
            r, loc, uuid = start_upload(c, repo)
            if r.status != 202:
                results[i] = "POST %d" % r.status
                return
            off = 0
            for j, ch in enumerate(chunks):
                r = patch_chunk(c, loc, ch, off if j % 2 == 0 else None)
                off += len(ch)
                if r.status != 202 or r.h("range") != "0-%d" % (off - 1) or r.h("docker-upload-uuid") != uuid:
                    results[i] = "PATCH %d: %d %s" % (j, r.status, r.h("range"))
                    return
            r = c.get(loc)
            if r.status != 204 or r.h("range") != "0-%d" % (off - 1):
                results[i] = "status %d %s" % (r.status, r.h("range"))
                return
            r = finish_upload(c, loc, digest(data))
            if r.status != 201 or r.h("docker-content-digest") != digest(data):
                results[i] = "PUT %d %s" % (r.status, r.body[:200])
                return
            r = c.get(blob_url(repo, digest(data)))
            if r.status != 200 or r.body != data:
                results[i] = "GET %d, %d bytes" % (r.status, len(r.body))
                return
            results[i] = "ok"
        except Exception as e:
            results[i] = "exception %r" % e
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    for i, res in enumerate(results):
        suite.eq("concurrent session %d" % i, res, "ok")


def _send_patch_but_last_byte(loc, data, start):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
    hdr = ("PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
           "Content-Range: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" %
           (loc, content_range(start, len(data)), len(data))).encode()
    s.sendall(hdr + data[:-1])
    return s


def _finish_and_read(s, last, out, idx):
    try:
        s.sendall(last)
        buf = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
        out[idx] = parse_raw_response(buf)
    except Exception as e:
        out[idx] = e
    finally:
        s.close()


@suite.test
def same_session_race():
    rng = random.Random(7)
    repo = "conc/race"
    for rnd in range(6):
        c = srv.client()
        r, loc, uuid = start_upload(c, repo)
        suite.require_eq("race %d: POST" % rnd, r.status, 202)
        head = rng.randbytes(1000)
        suite.require_eq("race %d: first chunk" % rnd, patch_chunk(c, loc, head, 0).status, 202)
        size = (1 << 20) if rnd % 2 == 0 else 4096
        bodies = [rng.randbytes(size), rng.randbytes(size)]
        # Both requests are fully sent but for their last byte, then the
        # last bytes go out together: the two handlers run at the same time.
        socks = [_send_patch_but_last_byte(loc, bodies[k], len(head)) for k in range(2)]
        out = [None, None]
        ts = [threading.Thread(target=_finish_and_read, args=(socks[k], bodies[k][-1:], out, k)) for k in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=300)
        statuses = sorted(o.status if hasattr(o, "status") else repr(o) for o in out)
        suite.eq("race %d: one 202 and one 416" % rnd, statuses, [202, 416])
        winner = [k for k in range(2) if hasattr(out[k], "status") and out[k].status == 202]
        loser = [k for k in range(2) if hasattr(out[k], "status") and out[k].status == 416]
        if loser:
            rr = out[loser[0]].h("range")
            suite.check("race %d: 416 carries a current Range" % rnd, rr in ("0-%d" % (len(head) - 1),
                                                                               "0-%d" % (len(head) + size - 1)),
                        repr(rr))
        r = c.get(loc)
        suite.eq("race %d: status after race" % rnd, (r.status, r.h("range")), (204, "0-%d" % (len(head) + size - 1)))
        if winner:
            data = head + bodies[winner[0]]
            r = finish_upload(c, loc, digest(data))
            suite.eq("race %d: stored bytes are the winner's" % rnd, r.status, 201)
            if r.status != 201:
                other = head + bodies[1 - winner[0]]
                r2 = finish_upload(c, loc, digest(other))
                if r2.status == 201:
                    suite.fail("race %d: the loser's bytes were stored" % rnd)
            else:
                suite.eq("race %d: blob bytes" % rnd, digest(c.get(blob_url(repo, digest(data))).body), digest(data))
        else:
            c.delete(loc)


@suite.test
def racing_finish_and_patch():
    """A PUT and a PATCH on one session at once: the session ends up either
    finished with the PUT's digest (the PATCH then fails with 404/416) or
    the PATCH landed first and the PUT fails with a 4xx."""
    rng = random.Random(9)
    repo = "conc/finish"
    for rnd in range(4):
        c = srv.client()
        r, loc, uuid = start_upload(c, repo)
        suite.require_eq("finish race %d: POST" % rnd, r.status, 202)
        head = rng.randbytes(200000)
        patch_chunk(c, loc, head, 0)
        more = rng.randbytes(200000)
        d = digest(head)
        s1 = _send_patch_but_last_byte(loc, more, len(head))
        s2 = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
        s2.sendall(("PUT %s?digest=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\n" %
                    (loc, digest(head + b"!"))).encode())
        out = [None, None]
        ts = [threading.Thread(target=_finish_and_read, args=(s1, more[-1:], out, 0)),
              threading.Thread(target=_finish_and_read, args=(s2, b"!", out, 1))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=300)
        st = tuple(o.status if hasattr(o, "status") else repr(o) for o in out)
        # PATCH won: 202 and the PUT (whose digest assumed no PATCH) fails
        # or is busy; PUT won: 201 and the PATCH is 404 (finished) or 416 (busy).
        ok = (st[0] == 202 and isinstance(st[1], int) and 400 <= st[1] < 500) or (st[1] == 201 and st[0] in (404, 416))
        suite.check("finish race %d: consistent outcome" % rnd, ok, repr(st))
        if st[1] == 201:
            r = c.get(blob_url(repo, digest(head + b"!")))
            suite.eq("finish race %d: blob bytes" % rnd, digest(r.body), digest(head + b"!"))
        elif st[0] == 202:
            r = c.get(loc)
            suite.eq("finish race %d: status" % rnd, (r.status, r.h("range")),
                     (204, "0-%d" % (len(head) + len(more) - 1)))
            r = finish_upload(c, loc, digest(head + more))
            suite.eq("finish race %d: completes" % rnd, r.status, 201)


@suite.test
def shutdown():
    srv.stop()


if __name__ == "__main__":
    suite.main()
