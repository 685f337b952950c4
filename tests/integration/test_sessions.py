#!/usr/bin/env python3
"""Part-numbered upload sessions (/uploads/sessions) against the real binary:
status ranges with gaps, parallel out-of-order parts, kill -9 and resume,
completion into an OCI blob, and every error answer.

Also the helpers test_auth.py imports: AuthBerth (a Berth with an htpasswd
file made by `htpasswd -B`) and SessionClient."""

import base64
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import Berth, Failure, Suite, blob_url, digest, upload_blob  # noqa: E402

USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def make_htpasswd(path, users, cost=5):
    """An htpasswd file of bcrypt entries, made by Apache's htpasswd -B."""
    if shutil.which("htpasswd") is None:
        raise Failure("htpasswd (apache2-utils) is not installed")
    first = True
    for user, pw in users.items():
        args = ["htpasswd", "-B", "-C", str(cost), "-b"] + (["-c"] if first else []) + [path, user, pw]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        first = False


class AuthBerth(Berth):
    """A Berth with auth.htpasswd configured (users=None: no auth section)."""

    def __init__(self, suite=None, users=USERS, realm="berth-test", cost=5, config=None, **kw):
        super().__init__(suite, config=config, **kw)
        self.users = users
        self.realm = realm
        if users is not None:
            self.htpasswd = self.tmp.join("htpasswd")
            make_htpasswd(self.htpasswd, users, cost)
            self.config.setdefault("auth", {})["htpasswd"] = {"realm": realm, "path": self.htpasswd}
            self.write_config()

    def wait_ready(self, timeout=30.0):
        # /v2/ answers 401 when auth is configured: that is ready too.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure("berth exited with %s before answering; stderr:\n%s" %
                              (self.proc.returncode, self.stderr_tail()))
            try:
                if self.client(timeout=5).get("/v2/").status in (200, 401):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise Failure("berth did not answer within %ds; stderr:\n%s" % (timeout, self.stderr_tail()))

    def sessions(self, user="alice", password=None, keepalive=True):
        pw = password if password is not None else (self.users or {}).get(user, "")
        return SessionClient(self.client(keepalive=keepalive), basic(user, pw))


class SessionClient:
    """The sessions API with one user's credentials."""

    def __init__(self, client, auth):
        self.c = client
        self.auth = auth

    def _h(self, extra=None):
        h = {"Authorization": self.auth} if self.auth else {}
        h.update(extra or {})
        return h

    def create(self, total_parts, part_size, **extra):
        body = dict(total_parts=total_parts, part_size=part_size, **extra)
        return self.c.post("/uploads/sessions", json.dumps(body).encode(), self._h({"Content-Type": "application/json"}))

    def create_raw(self, body):
        return self.c.post("/uploads/sessions", body, self._h({"Content-Type": "application/json"}))

    def put(self, sid, n, data, headers=None):
        return self.c.put("/uploads/sessions/%s/parts/%s" % (sid, n), data, self._h(headers))

    def status(self, sid):
        return self.c.get("/uploads/sessions/%s" % sid, self._h())

    def complete(self, sid):
        return self.c.post("/uploads/sessions/%s/complete" % sid, b"", self._h())

    def abort(self, sid):
        return self.c.delete("/uploads/sessions/%s" % sid, self._h())

    def get(self, path):
        return self.c.get(path, self._h())

    def close(self):
        self.c.close()


def ranges(nums):
    """The compact form of a set of part numbers, naively."""
    out, nums = [], sorted(set(nums))
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else "%d-%d" % (nums[i], nums[j]))
        i = j + 1
    return out


def content_digest(data):
    return "sha-256=:%s:" % base64.b64encode(hashlib.sha256(data).digest()).decode()


def parts_of(data, part_size):
    return [data[i:i + part_size] for i in range(0, len(data), part_size)]


def error_code(r):
    j = r.json()
    try:
        return j["errors"][0]["code"]
    except Exception:
        return None


# --------------------------------------------------------------------------

suite = Suite("test_sessions")
srv = None


@suite.test
def start_server():
    global srv
    srv = AuthBerth(suite, shared=True, threads=2, config={"http": {"maxchunksize": "8MiB"}}).start()


@suite.test
def basic_flow_and_blob():
    s = srv.sessions()
    data = os.urandom(3 * 1000 + 123)
    parts = parts_of(data, 1000)
    r = s.create(len(parts), 1000, repository="sess/basic", total_size=len(data))
    suite.require_eq("create: 201", r.status, 201)
    j = r.json()
    sid = j["session_id"]
    suite.eq("create: Location", r.h("location"), "/uploads/sessions/" + sid)
    suite.eq("create: status INIT", j["status"], "INIT")
    suite.eq("create: content-type json", (r.h("content-type") or "").split(";")[0], "application/json")
    suite.eq("create: missing_parts", j["missing_parts"], ["1-4"])
    suite.eq("create: received_parts", j["received_parts"], [])
    for k in ("created_at", "expires_at", "part_size", "received_bytes", "total_parts", "completed_parts"):
        suite.check("create: has %s" % k, k in j, str(j))

    r = s.put(sid, 2, parts[1])
    suite.eq("part 2: 201", r.status, 201)
    suite.eq("status after part 2: IN_PROGRESS", s.status(sid).json()["status"], "IN_PROGRESS")
    r = s.put(sid, 2, parts[1])
    suite.eq("part 2 again, identical: 200", r.status, 200)
    for n in (4, 1, 3):
        suite.eq("part %d: 201" % n, s.put(sid, n, parts[n - 1], {"Content-Digest": content_digest(parts[n - 1])}).status,
                 201)
    j = s.status(sid).json()
    suite.eq("status: received 1-4", j["received_parts"], ["1-4"])
    suite.eq("status: missing none", j["missing_parts"], [])
    suite.eq("status: received_bytes", j["received_bytes"], len(data))
    r = s.complete(sid)
    suite.require_eq("complete: 200", r.status, 200)
    j = r.json()
    suite.eq("complete: COMPLETE", j["status"], "COMPLETE")
    suite.eq("complete: digest", j["digest"], digest(data))
    suite.eq("complete: size", j["size"], len(data))
    suite.eq("complete: location", j.get("location"), blob_url("sess/basic", digest(data)))
    r = s.get(blob_url("sess/basic", digest(data)))
    suite.eq("blob GET under /v2/", (r.status, r.body == data), (200, True))
    r = s.c.head(blob_url("sess/basic", digest(data)), s._h())
    suite.eq("blob HEAD under /v2/", (r.status, r.h("content-length")), (200, str(len(data))))
    j = s.status(sid).json()
    suite.eq("status after complete", (j["status"], j["digest"], j["size"]), ("COMPLETE", digest(data), len(data)))
    r = s.complete(sid)
    suite.eq("complete again: same answer", (r.status, r.json().get("digest")), (200, digest(data)))
    r = s.put(sid, 1, parts[0])
    suite.eq("part after complete: 409", (r.status, error_code(r)), (409, "SESSION_CLOSED"))
    r = s.abort(sid)
    suite.eq("abort a COMPLETE session: 409", r.status, 409)


@suite.test
def status_follows_every_change():
    s = srv.sessions()
    sid = s.create(5, 3).json()["session_id"]
    want = []
    for n in (3, 1, 5, 2):
        before = s.status(sid).json()
        suite.eq("status before part %d" % n, before["received_parts"], ranges(want))
        suite.eq("status again (unchanged)", s.status(sid).json(), before)
        s.put(sid, n, b"abc" if n < 5 else b"z")
        want.append(n)
        suite.eq("status after part %d" % n, s.status(sid).json()["received_parts"], ranges(want))
    s.abort(sid)
    suite.eq("status after abort", s.status(sid).json()["status"], "ABORTED")


@suite.test
def gaps_1200_parts():
    s = srv.sessions()
    N, PS = 1200, 16
    rng = random.Random(1200)
    data = rng.randbytes(N * PS - 5)
    parts = parts_of(data, PS)
    missing = set([1, 2, 7, 100, 1199, 1200]) | set(range(300, 351)) | set(range(500, 1000, 7)) | {
        n for n in range(1, N + 1) if n % 97 == 0}
    present = [n for n in range(1, N + 1) if n not in missing]
    rng.shuffle(present)
    sid = s.create(N, PS).json()["session_id"]
    errors = []

    def worker(chunk):
        c = srv.sessions()
        for n in chunk:
            r = c.put(sid, n, parts[n - 1])
            if r.status != 201:
                errors.append((n, r.status, r.body[:100]))
        c.close()

    ts = [threading.Thread(target=worker, args=(present[i::6],)) for i in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    suite.eq("all %d parts stored" % len(present), errors, [])
    j = s.status(sid).json()
    suite.eq("received_parts exactly", j["received_parts"], ranges(present))
    suite.eq("missing_parts exactly", j["missing_parts"], ranges(missing))
    suite.eq("completed_parts", j["completed_parts"], len(present))
    suite.eq("received_bytes", j["received_bytes"], sum(len(parts[n - 1]) for n in present))
    r = s.complete(sid)
    suite.eq("complete with gaps: 409", (r.status, error_code(r)), (409, "SESSION_INCOMPLETE"))
    suite.eq("409 lists the missing ranges", (r.json() or {}).get("errors", [{}])[0].get("detail", {}).get(
        "missing_parts"), ranges(missing))
    suite.eq("still IN_PROGRESS", s.status(sid).json()["status"], "IN_PROGRESS")
    for n in sorted(missing):
        if s.put(sid, n, parts[n - 1]).status != 201:
            suite.fail("fill part %d" % n)
            break
    r = s.complete(sid)
    suite.eq("complete after filling the gaps", (r.status, (r.json() or {}).get("digest")), (200, digest(data)))


@suite.test
def parallel_out_of_order():
    N, PS = 64, 64 * 1024
    data = os.urandom(N * PS)
    parts = parts_of(data, PS)
    s = srv.sessions()
    sid = s.create(N, PS, repository="sess/par", digest=digest(data)).json()["session_id"]
    order = list(range(1, N + 1))
    random.Random(8).shuffle(order)
    bad = []

    def worker(k):
        c = srv.sessions()
        for n in order[k::8]:
            r = c.put(sid, n, parts[n - 1])
            if r.status != 201:
                bad.append((n, r.status))
        c.close()

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    suite.eq("8 clients: every part 201", bad, [])
    r = s.complete(sid)
    suite.eq("complete: digest", (r.status, (r.json() or {}).get("digest")), (200, digest(data)))
    r = s.get(blob_url("sess/par", digest(data)))
    suite.eq("blob readable", (r.status, r.body == data), (200, True))


@suite.test
def same_part_concurrently_never_mixes():
    PS = 2 * 1024 * 1024
    s = srv.sessions()
    sid = s.create(2, PS).json()["session_id"]
    versions = [bytes([i]) * PS for i in range(1, 7)]
    codes = []

    def worker(v):
        codes.append(srv.sessions().put(sid, 1, v).status)

    ts = [threading.Thread(target=worker, args=(v,)) for v in versions]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    suite.eq("6 writes of part 1: all 2xx", sorted(set(c // 100 for c in codes)), [2])
    tail = b"z" * 10
    suite.eq("last part", s.put(sid, 2, tail).status, 201)
    r = s.complete(sid)
    d = (r.json() or {}).get("digest")
    suite.check("part 1 is exactly one of the versions", d in [digest(v + tail) for v in versions], str(d))


@suite.test
def resend_different_bytes_last_wins():
    s = srv.sessions()
    sid = s.create(2, 4).json()["session_id"]
    suite.eq("part 1 v1", s.put(sid, 1, b"AAAA").status, 201)
    suite.eq("part 2", s.put(sid, 2, b"BB").status, 201)
    suite.eq("part 1 v2 (different): 201", s.put(sid, 1, b"CCCC").status, 201)
    j = s.status(sid).json()
    suite.eq("status after rewrite", (j["received_parts"], j["received_bytes"]), (["1-2"], 6))
    suite.eq("last part rewritten shorter: 201", s.put(sid, 2, b"D").status, 201)
    suite.eq("received_bytes follows", s.status(sid).json()["received_bytes"], 5)
    r = s.complete(sid)
    suite.eq("digest of the last versions", (r.json() or {}).get("digest"), digest(b"CCCCD"))


@suite.test
def errors_leave_the_session_unchanged():
    s = srv.sessions()
    sid = s.create(3, 8, total_size=20).json()["session_id"]
    suite.eq("part 1", s.put(sid, 1, b"12345678").status, 201)
    before = s.status(sid).json()
    cases = [
        ("part 0", 0, b"x" * 8, 400, "PART_INVALID"),
        ("part 4 of 3", 4, b"x" * 8, 400, "PART_INVALID"),
        ("part 'abc'", "abc", b"x" * 8, 400, "PART_INVALID"),
        ("part '01'", "01", b"x" * 8, 400, "PART_INVALID"),
        ("part '-1'", "-1", b"x" * 8, 400, "PART_INVALID"),
        ("part 99999999999", "99999999999", b"x" * 8, 400, "PART_INVALID"),
        ("middle part too short", 2, b"x" * 7, 400, "PART_INVALID"),
        ("middle part too long", 2, b"x" * 9, 400, "PART_INVALID"),
        ("last part wrong for total_size", 3, b"x" * 5, 400, "PART_INVALID"),
        ("empty middle part", 2, b"", 400, "PART_INVALID"),
    ]
    for name, n, body, st, code in cases:
        r = s.put(sid, n, body)
        suite.eq("%s: %d %s" % (name, st, code), (r.status, error_code(r)), (st, code))
    r = s.put(sid, 2, b"y" * 8, {"Content-Digest": content_digest(b"other")})
    suite.eq("Content-Digest mismatch: 400", (r.status, error_code(r)), (400, "DIGEST_INVALID"))
    r = s.put(sid, 2, b"y" * 8, {"Content-Digest": "sha-256=:notbase64!:"})
    suite.eq("malformed Content-Digest: 400", (r.status, error_code(r)), (400, "DIGEST_INVALID"))
    r = s.put(sid, 2, b"y" * 8, {"Content-Digest": "sha-256=:%s:" % base64.b64encode(b"short").decode()})
    suite.eq("Content-Digest of the wrong length: 400", r.status, 400)
    after = s.status(sid).json()
    suite.eq("session unchanged after the errors", after, before)
    r = s.put(sid, 2, b"y" * 8, {"Content-Digest": "sha-512=:AAAA:, " + content_digest(b"y" * 8)})
    suite.eq("Content-Digest with sha-256 among others: 201", r.status, 201)

    for name, path, method in [("unknown id", "/uploads/sessions/00000000-0000-4000-8000-000000000000", "GET"),
                               ("malformed id", "/uploads/sessions/nope", "GET"),
                               ("unknown id, part", "/uploads/sessions/00000000-0000-4000-8000-000000000000/parts/1",
                                "PUT"),
                               ("unknown id, complete",
                                "/uploads/sessions/00000000-0000-4000-8000-000000000000/complete", "POST"),
                               ("unknown id, delete", "/uploads/sessions/00000000-0000-4000-8000-000000000000",
                                "DELETE")]:
        r = s.c.request(method, path, b"x" if method in ("PUT", "POST") else None, s._h())
        suite.eq("%s: 404 SESSION_UNKNOWN" % name, (r.status, error_code(r)), (404, "SESSION_UNKNOWN"))
    r = s.get("/uploads/sessions/%s/whatever" % sid)
    suite.eq("unknown sub-resource: 404 json", (r.status, error_code(r)), (404, "NOT_FOUND"))
    r = s.c.request("PATCH", "/uploads/sessions/%s" % sid, b"", s._h())
    suite.eq("PATCH a session: 405", (r.status, r.h("allow")), (405, "GET, DELETE"))
    r = s.c.request("GET", "/uploads/sessions", None, s._h())
    suite.eq("GET the collection: 405", r.status, 405)
    r = s.c.request("GET", "/uploads/sessions/%s/parts/1" % sid, None, s._h())
    suite.eq("GET a part: 405", r.status, 405)

    bodies = [
        ("not JSON", b"{nope"),
        ("not an object", b"[1,2]"),
        ("no total_parts", b'{"part_size": 4}'),
        ("no part_size", b'{"total_parts": 4}'),
        ("total_parts 0", b'{"total_parts": 0, "part_size": 4}'),
        ("total_parts 10001", b'{"total_parts": 10001, "part_size": 4}'),
        ("total_parts a string", b'{"total_parts": "4", "part_size": 4}'),
        ("part_size negative", b'{"total_parts": 4, "part_size": -4}'),
        ("part_size a float", b'{"total_parts": 4, "part_size": 4.5}'),
        ("part_size over the request limit", b'{"total_parts": 2, "part_size": 16777216}'),
        ("total_size too small", b'{"total_parts": 4, "part_size": 4, "total_size": 12}'),
        ("total_size too large", b'{"total_parts": 4, "part_size": 4, "total_size": 17}'),
        ("bad repository", b'{"total_parts": 4, "part_size": 4, "repository": "UPPER/case"}'),
        ("bad digest", b'{"total_parts": 4, "part_size": 4, "digest": "sha256:xyz"}'),
        ("duplicate keys", b'{"total_parts": 4, "total_parts": 5, "part_size": 4}'),
    ]
    for name, body in bodies:
        r = s.create_raw(body)
        suite.check("create with %s: 400 + JSON error" % name, r.status == 400 and error_code(r) is not None,
                    "%d %s" % (r.status, r.body[:200]))
    suite.eq("server still serves", s.get("/v2/").status, 200)


@suite.test
def other_users_see_nothing():
    a, b = srv.sessions("alice"), srv.sessions("bob")
    sid = a.create(2, 4).json()["session_id"]
    suite.eq("alice: part 1", a.put(sid, 1, b"abcd").status, 201)
    for name, r in [("status", b.status(sid)), ("part", b.put(sid, 2, b"xy")), ("complete", b.complete(sid)),
                    ("abort", b.abort(sid))]:
        suite.eq("bob %s of alice's session: 404" % name, (r.status, error_code(r)), (404, "SESSION_UNKNOWN"))
    j = a.status(sid).json()
    suite.eq("alice's session untouched by bob", (j["status"], j["received_parts"]), ("IN_PROGRESS", ["1"]))


@suite.test
def digest_mismatch_fails_the_session():
    s = srv.sessions()
    sid = s.create(2, 4, digest=digest(b"something else"), repository="sess/fail").json()["session_id"]
    s.put(sid, 2, b"ef")
    s.put(sid, 1, b"abcd")
    r = s.complete(sid)
    suite.eq("complete with the wrong digest: 400 DIGEST_INVALID", (r.status, error_code(r)), (400, "DIGEST_INVALID"))
    j = s.status(sid).json()
    suite.eq("status FAILED, parts freed", (j["status"], j["received_parts"], j["digest"]),
             ("FAILED", [], digest(b"abcdef")))
    suite.eq("no blob in the repository", s.get(blob_url("sess/fail", digest(b"abcdef"))).status, 404)
    r = s.put(sid, 1, b"abcd")
    suite.eq("part to a FAILED session: 409", r.status, 409)
    suite.check("FAILED session's data freed", not os.path.exists(os.path.join(srv.upload_dir(sid), "data")))


@suite.test
def abort_frees_the_parts():
    s = srv.sessions()
    sid = s.create(3, 4).json()["session_id"]
    s.put(sid, 1, b"abcd")
    suite.check("data file while open", os.path.exists(os.path.join(srv.upload_dir(sid), "data")))
    r = s.abort(sid)
    suite.eq("abort: 204", r.status, 204)
    j = s.status(sid).json()
    suite.eq("status ABORTED, nothing received", (j["status"], j["received_parts"], j["received_bytes"]),
             ("ABORTED", [], 0))
    suite.check("data freed", not os.path.exists(os.path.join(srv.upload_dir(sid), "data")))
    suite.eq("abort again: 204", s.abort(sid).status, 204)
    suite.eq("part after abort: 409", s.put(sid, 2, b"efgh").status, 409)
    suite.eq("complete after abort: 409", s.complete(sid).status, 409)


@suite.test
def last_part_without_total_size():
    s = srv.sessions()
    data = os.urandom(10 * 1024 + 77)
    parts = parts_of(data, 1024)
    sid = s.create(len(parts), 1024).json()["session_id"]
    r = s.put(sid, len(parts), b"x" * 1025)
    suite.eq("last part over part_size: 400", r.status, 400)
    for n in reversed(range(1, len(parts) + 1)):
        s.put(sid, n, parts[n - 1])
    r = s.complete(sid)
    suite.eq("complete", ((r.json() or {}).get("digest"), (r.json() or {}).get("size")), (digest(data), len(data)))
    # A session without a repository leaves a blob no repository sees.
    suite.eq("no repository: blob not visible under /v2/", s.get(blob_url("sess/none", digest(data))).status, 404)


@suite.test
def kill9_and_resume():
    N, PS = 48, 256 * 1024
    data = os.urandom(N * PS - 1000)
    parts = parts_of(data, PS)
    s = srv.sessions()
    sid = s.create(N, PS, repository="sess/crash", digest=digest(data)).json()["session_id"]
    # Half the parts, acknowledged before the crash.
    first = list(range(1, N + 1, 2))
    for n in first:
        if s.put(sid, n, parts[n - 1]).status != 201:
            suite.fail("part %d before the crash" % n)
    # More parts in flight from 8 clients while berth is killed.
    acked = set(first)
    lock = threading.Lock()
    stop = threading.Event()

    def worker(k):
        c = srv.sessions()
        for n in range(2 + 2 * k, N + 1, 16):
            if stop.is_set():
                return
            try:
                r = c.put(sid, n, parts[n - 1])
                if r.status == 201:
                    with lock:
                        acked.add(n)
            except Exception:
                return

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    time.sleep(0.3)
    srv.kill9()
    stop.set()
    for t in ts:
        t.join()
    srv.start()
    s = srv.sessions()
    j = s.status(sid).json()
    got = set()
    for rg in j["received_parts"]:
        a, _, b = rg.partition("-")
        got |= set(range(int(a), int(b or a) + 1))
    suite.check("after kill -9: every acknowledged part is reported", acked <= got, str(sorted(acked - got)))
    suite.eq("after kill -9: status IN_PROGRESS", j["status"], "IN_PROGRESS")
    # A restart without a crash keeps the status exactly.
    srv.stop(label="berth (before clean restart)")
    srv.start()
    s = srv.sessions()
    suite.eq("after a clean restart: status unchanged", s.status(sid).json()["received_parts"], j["received_parts"])
    sent = 0
    for rg in j["missing_parts"]:
        a, _, b = rg.partition("-")
        for n in range(int(a), int(b or a) + 1):
            sent += 1
            if s.put(sid, n, parts[n - 1]).status != 201:
                suite.fail("resume part %d" % n)
    suite.eq("resumed only the missing parts", sent, N - len(got))
    r = s.complete(sid)
    suite.eq("complete after the crash: digest right", (r.status, (r.json() or {}).get("digest")), (200, digest(data)))
    r = s.get(blob_url("sess/crash", digest(data)))
    suite.eq("blob readable under /v2/", (r.status, r.body == data), (200, True))


@suite.test
def oci_flow_still_works_with_auth():
    s = srv.sessions()
    data = os.urandom(100000)

    class Authed:
        def __init__(self, c, h):
            self.c, self.h = c, h

        def post(self, p, body=None, headers=None):
            return self.c.post(p, body, dict(headers or {}, **self.h))

        def patch(self, p, body, headers=None):
            return self.c.patch(p, body, dict(headers or {}, **self.h))

        def put(self, p, body=None, headers=None):
            return self.c.put(p, body, dict(headers or {}, **self.h))

    r = upload_blob(Authed(srv.client(), {"Authorization": s.auth}), "sess/oci", data, chunk=30000)
    suite.eq("OCI upload with credentials: 201", r.status, 201)


@suite.test
def stop_server():
    srv.stop()
    srv.check_sanitizer()


if __name__ == "__main__":
    suite.main()
