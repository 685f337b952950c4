#!/usr/bin/env python3
"""htpasswd authentication against the real binary: 401s with the
challenge and the JSON body, /v2/ closed when auth is configured and open
(with a warning) when it is not, the sessions API never open, bcrypt paid
once per credentials, and configuration errors."""

import base64
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import Berth, Suite, TempDir, run_berth  # noqa: E402
from test_sessions import AuthBerth, basic, error_code, make_htpasswd  # noqa: E402

suite = Suite("test_auth")


def expect_401(name, r, realm="berth-test", oci=False):
    suite.eq("%s: 401" % name, r.status, 401)
    suite.eq("%s: WWW-Authenticate" % name, r.h("www-authenticate"), 'Basic realm="%s"' % realm)
    suite.eq("%s: UNAUTHORIZED JSON body" % name, error_code(r), "UNAUTHORIZED")
    suite.eq("%s: content-type" % name, (r.h("content-type") or "").split(";")[0], "application/json")
    if oci:
        suite.eq("%s: Docker-Distribution-API-Version" % name, r.h("docker-distribution-api-version"), "registry/2.0")


@suite.test
def with_auth():
    srv = AuthBerth(suite, users={"alice": "alice-secret", "carol": "c:colon pass"}, threads=2).start()
    c = srv.client(keepalive=True)
    good = {"Authorization": basic("alice", "alice-secret")}
    wrong = [
        ("no credentials", {}),
        ("wrong password", {"Authorization": basic("alice", "nope")}),
        ("unknown user", {"Authorization": basic("mallory", "alice-secret")}),
        ("empty password", {"Authorization": basic("alice", "")}),
        ("not base64", {"Authorization": "Basic !!!"}),
        ("no colon", {"Authorization": "Basic " + base64.b64encode(b"alice").decode()}),
        ("Bearer scheme", {"Authorization": "Bearer abc"}),
        ("scheme only", {"Authorization": "Basic"}),
    ]
    for name, h in wrong:
        expect_401("GET /v2/ with %s" % name, c.get("/v2/", h), oci=True)
        expect_401("POST /uploads/sessions with %s" % name,
                   c.post("/uploads/sessions", b'{"total_parts":1,"part_size":1}', h))
    expect_401("PUT part without credentials",
               c.put("/uploads/sessions/00000000-0000-4000-8000-000000000000/parts/1", b"x"))
    expect_401("blob GET without credentials", c.get("/v2/a/blobs/sha256:" + "0" * 64), oci=True)
    expect_401("upload POST without credentials", c.post("/v2/a/blobs/uploads/"), oci=True)
    r = c.get("/v2/", good)
    suite.eq("GET /v2/ with the right credentials: 200", r.status, 200)
    r = c.get("/v2/", {"Authorization": "basic " + good["Authorization"][6:]})
    suite.eq("scheme is case-insensitive", r.status, 200)
    r = c.get("/v2/", {"Authorization": basic("carol", "c:colon pass")})
    suite.eq("a password with a colon and a space", r.status, 200)
    r = c.post("/uploads/sessions", b'{"total_parts":1,"part_size":1}', good)
    suite.eq("create a session with credentials: 201", r.status, 201)
    r = c.get("/nothing-here")
    suite.eq("other paths need no credentials (404)", r.status, 404)

    # bcrypt once per credentials: many requests cost about one check.
    t0 = time.monotonic()
    for _ in range(40):
        if c.get("/v2/", good).status != 200:
            suite.fail("cached credentials refused")
            break
    cached = time.monotonic() - t0
    t0 = time.monotonic()
    for _ in range(5):
        c.get("/v2/", {"Authorization": basic("alice", "wrong")})
    wrong_t = (time.monotonic() - t0) / 5
    print("# 40 requests with cached credentials: %.3f s; one wrong password: %.3f s" % (cached, wrong_t), flush=True)
    srv.stop()
    srv.check_sanitizer()


@suite.test
def bcrypt_is_paid_once():
    # Cost 12: a few hundred ms per check, so paying it per request would
    # take far longer than the bound below.
    srv = AuthBerth(suite, users={"slow": "pw"}, cost=12, threads=2).start()
    h = {"Authorization": basic("slow", "pw")}
    c = srv.client(keepalive=True)
    t0 = time.monotonic()
    suite.eq("first request: 200", c.get("/v2/", h).status, 200)
    first = time.monotonic() - t0
    t0 = time.monotonic()
    codes = set()
    for _ in range(30):
        codes.add(c.get("/v2/", h).status)
    rest = time.monotonic() - t0
    c2 = srv.client()  # a new connection: the cache is not per connection
    codes.add(c2.get("/v2/", h).status)
    print("# cost 12: first request %.3f s, 30 more %.3f s" % (first, rest), flush=True)
    suite.eq("30 more requests: 200", codes, {200})
    suite.check("30 cached requests take less than 10 first ones", rest < 10 * first,
                "first %.3f s, 30 more %.3f s" % (first, rest))

    # A bcrypt check runs on a worker: other requests are not held up.
    done = threading.Event()

    def slow():
        srv.client().get("/v2/", {"Authorization": basic("slow", "wrong")})
        done.set()

    th = threading.Thread(target=slow)
    th.start()
    t0 = time.monotonic()
    c.get("/v2/", h)
    quick = time.monotonic() - t0
    th.join()
    suite.check("a cached request is not held up by a running bcrypt check", quick < max(first, 0.2),
                "%.3f s" % quick)
    srv.stop()
    srv.check_sanitizer()


@suite.test
def without_auth():
    srv = AuthBerth(suite, users=None, threads=2).start()
    c = srv.client()
    suite.eq("GET /v2/ is open without auth", c.get("/v2/").status, 200)
    r = c.post("/v2/open/blobs/uploads/")
    suite.eq("OCI upload POST is open", r.status, 202)
    expect_401("sessions API without auth configured", c.post("/uploads/sessions", b'{"total_parts":1,"part_size":1}'),
               realm="berth")
    expect_401("sessions API without auth configured, with credentials",
               c.get("/uploads/sessions/00000000-0000-4000-8000-000000000000",
                     {"Authorization": basic("alice", "x")}), realm="berth")
    suite.check("a warning about the open API at start", "no auth configured" in srv.stderr(), srv.stderr_tail(500))
    srv.stop()
    srv.check_sanitizer()


@suite.test
def non_bcrypt_entries_cannot_log_in():
    srv = AuthBerth(suite, users={"alice": "alice-secret"}, threads=2)
    subprocess.run(["htpasswd", "-m", "-b", srv.htpasswd, "md5user", "pw"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    srv.start()
    c = srv.client()
    suite.check("warning names the non-bcrypt user", "md5user" in srv.stderr(), srv.stderr_tail(500))
    expect_401("an MD5 entry", c.get("/v2/", {"Authorization": basic("md5user", "pw")}), oci=True)
    suite.eq("a bcrypt user still logs in", c.get("/v2/", {"Authorization": basic("alice", "alice-secret")}).status,
             200)
    srv.stop()
    srv.check_sanitizer()


@suite.test
def config_errors():
    tmp = TempDir()
    suite.add_cleanup(tmp.cleanup)
    hp = tmp.join("htpasswd")
    make_htpasswd(hp, {"a": "b"})
    cases = [
        ("realm without path", "auth:\n  htpasswd:\n    realm: r\n", "realm and path"),
        ("path without realm", "auth:\n  htpasswd:\n    path: %s\n" % hp, "realm and path"),
        ("unknown auth type", "auth:\n  token:\n    realm: r\n", "auth.token"),
        ("realm with a quote", 'auth:\n  htpasswd:\n    realm: "a\\"b"\n    path: %s\n' % hp, "realm"),
    ]
    for name, text, want in cases:
        p = tmp.join("c.yaml")
        with open(p, "w") as f:
            f.write("storage:\n  filesystem:\n    rootdirectory: %s\n" % tmp.join("root") + text)
        rc, out, err = run_berth(["serve", "-c", p], cwd=tmp.path, timeout=30)
        suite.eq("%s: exit 2" % name, rc, 2)
        suite.check("%s: message names it" % name, want in err, err[-300:])
    p = tmp.join("c.yaml")
    with open(p, "w") as f:
        f.write("http:\n  addr: 127.0.0.1:1\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
                "auth:\n  htpasswd:\n    realm: r\n    path: %s\n" % (tmp.join("root"), tmp.join("missing")))
    rc, out, err = run_berth(["serve", "-c", p], cwd=tmp.path, timeout=30)
    suite.eq("missing htpasswd file: exit 2", rc, 2)
    suite.check("missing htpasswd file: message names it", "missing" in err, err[-300:])


if __name__ == "__main__":
    suite.main()
