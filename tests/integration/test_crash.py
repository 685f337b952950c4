#!/usr/bin/env python3
"""The crash test: 20 uploads in parallel while berth is killed with SIGKILL
at random points and restarted. After each restart every upload asks for
its status, resumes from the reported offset and finally completes with the
right digest. Run with storage.filesystem.sync none, then always."""

import http.client
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import Berth, Suite, blob_url, content_range, digest, upload_path  # noqa: E402

suite = Suite("test_crash")
UPLOADS = 20
KILLS = 6
DEADLINE = 150  # seconds per round, a bound, not an expectation
MAX_416 = 3     # a client that always resumes from the status offset should never see one


class Upload(threading.Thread):
    def __init__(self, idx, srv, seed, progress):
        super().__init__(daemon=True)
        self.idx = idx
        self.srv = srv
        self.rng = random.Random(seed)
        self.repo = "crash/r%d" % (idx % 4)
        self.data = self.rng.randbytes(self.rng.randint(1 << 20, 2 << 20))
        self.digest = digest(self.data)
        self.progress = progress
        self.acked = 0        # highest offset the server acknowledged with 202
        self.sent_end = 0     # highest offset we ever sent bytes up to
        self.resumes = 0
        self.n416 = 0
        self.result = None
        self.done = False

    def fail(self, why):
        self.result = why
        self.done = True

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa
            self.fail("exception %r" % e)
        self.done = True

    def _run(self):
        deadline = time.monotonic() + DEADLINE
        loc = None
        offset = 0
        resync = False
        put_sent = False
        while time.monotonic() < deadline:
            c = self.srv.client(timeout=60)
            try:
                if loc is None:
                    r = c.post("/v2/%s/blobs/uploads/" % self.repo)
                    if r.status != 202:
                        return self.fail("POST %d" % r.status)
                    loc = r.h("location")
                    uuid = r.h("docker-upload-uuid")
                    if loc != upload_path(self.repo, uuid):
                        return self.fail("POST Location %r" % loc)
                    offset = 0
                if resync:
                    r = c.get(loc)
                    if r.status == 404 and put_sent:
                        # the PUT may have completed before the crash
                        h = c.head(blob_url(self.repo, self.digest))
                        if h.status == 200:
                            return self._verify(c)
                        return self.fail("session gone after a PUT but no blob (HEAD %d)" % h.status)
                    if r.status != 204:
                        return self.fail("status after restart: %d %r" % (r.status, r.body[:200]))
                    rng = r.h("range") or ""
                    if r.h("location") != loc:
                        return self.fail("status Location %r != %r" % (r.h("location"), loc))
                    try:
                        first, last = (int(x) for x in rng.split("-"))
                    except ValueError:
                        return self.fail("bad Range %r" % rng)
                    offset = 0 if last == 0 else last + 1
                    if first != 0:
                        return self.fail("bad Range %r" % rng)
                    if offset < self.acked:
                        return self.fail("acknowledged bytes lost: server says %d, 202 said %d" %
                                         (offset, self.acked))
                    if offset > self.sent_end:
                        return self.fail("server claims %d bytes, only %d were ever sent" % (offset, self.sent_end))
                    self.resumes += 1
                    resync = False
                if offset < len(self.data):
                    n = self.rng.randint(48 * 1024, 160 * 1024)
                    chunk = self.data[offset:offset + n]
                    self.sent_end = max(self.sent_end, offset + len(chunk))
                    r = c.patch(loc, chunk, {"Content-Range": content_range(offset, len(chunk))})
                    if r.status == 202:
                        want = "0-%d" % (offset + len(chunk) - 1)
                        if r.h("range") != want:
                            return self.fail("PATCH Range %r, want %r" % (r.h("range"), want))
                        with self.progress["lock"]:
                            self.progress["bytes"] += len(chunk)
                        offset += len(chunk)
                        self.acked = max(self.acked, offset)
                        time.sleep(self.rng.uniform(0.01, 0.06))
                    elif r.status == 416:
                        self.n416 += 1
                        if self.n416 > MAX_416:
                            return self.fail("PATCH at the status offset %d refused with 416 %d times: %r" %
                                             (offset, self.n416, r.body[:200]))
                        resync = True
                    else:
                        return self.fail("PATCH %d %r" % (r.status, r.body[:200]))
                else:
                    put_sent = True
                    r = c.put("%s?digest=%s" % (loc, self.digest))
                    if r.status == 201:
                        if r.h("docker-content-digest") != self.digest:
                            return self.fail("PUT digest header %r" % r.h("docker-content-digest"))
                        return self._verify(c)
                    if r.status == 404:
                        resync = True
                        continue
                    return self.fail("PUT %d %r (stored bytes differ from what was sent)" % (r.status, r.body[:200]))
            except (OSError, http.client.HTTPException):
                # berth was killed under us: wait a little, then ask the status
                resync = loc is not None
                time.sleep(0.1)
            finally:
                c.close()
        self.fail("did not finish within %ds (offset %d of %d)" % (DEADLINE, offset, len(self.data)))

    def _verify(self, c):
        r = c.get(blob_url(self.repo, self.digest))
        if r.status != 200 or digest(r.body) != self.digest:
            return self.fail("GET blob %d, %d bytes, %s" % (r.status, len(r.body), digest(r.body)))
        self.result = "ok"
        self.done = True


def crash_round(sync, seed):
    srv = Berth(suite, config={"storage": {"filesystem": {"sync": sync}}}).start()
    progress = {"lock": threading.Lock(), "bytes": 0}
    rng = random.Random(seed)
    ups = [Upload(i, srv, seed * 100 + i, progress) for i in range(UPLOADS)]
    total = sum(len(u.data) for u in ups)
    thresholds = sorted(rng.uniform(0.05, 0.85) * total for _ in range(KILLS))
    for u in ups:
        u.start()
    kills = 0
    deadline = time.monotonic() + DEADLINE
    for th in thresholds:
        while time.monotonic() < deadline and not all(u.done for u in ups):
            with progress["lock"]:
                if progress["bytes"] >= th:
                    break
            time.sleep(0.005)
        if all(u.done for u in ups) or time.monotonic() >= deadline:
            break
        time.sleep(rng.uniform(0, 0.05))
        srv.kill9()
        kills += 1
        if rng.random() < 0.5:
            time.sleep(rng.uniform(0.05, 0.3))
        srv.start()
    for u in ups:
        u.join(timeout=max(1, deadline - time.monotonic() + 30))
    print("# sync=%s: %d kills, %d resumes, %d bytes" % (sync, kills, sum(u.resumes for u in ups), total),
          flush=True)
    suite.eq("sync=%s: berth was killed %d times during the uploads" % (sync, KILLS), kills, KILLS)
    for u in ups:
        suite.eq("sync=%s: upload %d (%d bytes) completes with the right digest" % (sync, u.idx, len(u.data)),
                 u.result, "ok")
    suite.check("sync=%s: uploads resumed after the kills" % sync, sum(u.resumes for u in ups) > 0)

    # Completed blobs survive one more crash.
    srv.kill9()
    srv.start()
    c = srv.client()
    bad = [u.idx for u in ups if u.result == "ok" and digest(c.get(blob_url(u.repo, u.digest)).body) != u.digest]
    suite.eq("sync=%s: every blob intact after a final kill -9" % sync, bad, [])
    leftovers = os.listdir(os.path.join(srv.root, "uploads")) if os.path.isdir(os.path.join(srv.root, "uploads")) else []
    print("# sync=%s: %d session directories left (abandoned POSTs)" % (sync, len(leftovers)), flush=True)
    srv.stop(label="sync=%s berth" % sync)


@suite.test
def crash_sync_none():
    crash_round("none", 1)


@suite.test
def crash_sync_always():
    crash_round("always", 2)


if __name__ == "__main__":
    suite.main()
