#!/usr/bin/env python3
"""Malformed requests: each gets a 4xx OCI JSON error with the right code,
nothing is touched outside the storage root, the server keeps serving, and
a session hit by bad requests stays resumable."""

import os
import random
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import (Berth, Suite, blob_url, content_range, digest, expect_error, expect_session,  # noqa: E402
                       finish_upload, parse_raw_response, patch_chunk, raw_request, start_upload, upload_blob,
                       upload_path)

suite = Suite("test_errors")
rng = random.Random(0xE44)
srv = None
MARK = "berthescape%d" % os.getpid()
MAXCHUNK = 1 << 20


def cl():
    return srv.client()


def alive(label):
    try:
        r = cl().get("/v2/")
        return suite.eq("server still serves after %s" % label, r.status, 200)
    except OSError as e:
        return suite.fail("server still serves after %s" % label, repr(e))


@suite.test
def start_server():
    global srv
    srv = Berth(suite, shared=True, config={"http": {"maxchunksize": "1MiB"}})
    # A deeper root so that "../.." escapes would land in directories the
    # test can see (jail/ and the temp dir).
    srv.root = os.path.join(srv.dir, "jail", "inner", "root")
    srv.config["storage"]["filesystem"]["rootdirectory"] = srv.root
    srv.write_config()
    srv.start()


BAD_NAMES = [
    "UPPER",
    "Library/ubuntu",
    "..",
    "a/..",
    "../x",
    "a/../../b",
    "a/../../../" + MARK,
    "a/../../../../../../../../tmp/" + MARK,
    "a/%2e%2e/%2e%2e/%2e%2e/" + MARK,
    "a%2F..%2F..%2F..%2F" + MARK,
    "a/%2E%2E%2F%2E%2E%2F" + MARK,
    ".hidden",
    "-dash",
    "dash-",
    "a..b",
    "a//b",
    "a/",
    "a%20b",
    "a%00b",
    "x" * 256,
    "a/" + "b" * 254,
]


@suite.test
def bad_names():
    d = digest(b"x")
    for name in BAD_NAMES:
        label = "name %r" % (name if len(name) < 40 else name[:20] + "...")
        for what, method, path, body in (
                ("start", "POST", "/v2/%s/blobs/uploads/" % name, None),
                ("blob", "GET", "/v2/%s/blobs/%s" % (name, d), None),
                ("status", "GET", "/v2/%s/blobs/uploads/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9" % name, None),
                ("monolithic", "POST", "/v2/%s/blobs/uploads/?digest=%s" % (name, d), b"x"),
        ):
            try:
                r = cl().request(method, path, body)
            except Exception as e:
                suite.fail("%s %s %s" % (what, method, label), repr(e))
                continue
            codes = ("NAME_INVALID",) if r.status == 400 else None
            expect_error(suite, "%s %s %s" % (what, method, label), r, (400, 404), codes)
        r = cl().head("/v2/%s/blobs/%s" % (name, d))
        suite.check("HEAD %s -> 400/404" % label, r.status in (400, 404), "got %d" % r.status)
    alive("bad names")
    # Nothing outside the root, and nothing named MARK anywhere.
    allowed = {"config.yaml", "berth.stdout", "berth.stderr", "access.log", "bodybuf", "jail"}
    extra = sorted(set(os.listdir(srv.dir)) - allowed)
    suite.eq("nothing new in the temp dir", extra, [])
    suite.eq("nothing new next to the root", sorted(os.listdir(os.path.join(srv.dir, "jail"))), ["inner"])
    suite.eq("nothing new two levels up", sorted(os.listdir(os.path.join(srv.dir, "jail", "inner"))), ["root"])
    found = []
    for base in (srv.dir, "/tmp", "/"):
        for dirpath, dirnames, filenames in os.walk(base) if base == srv.dir else [(base, os.listdir(base), [])]:
            for n in dirnames + filenames:
                if MARK in n:
                    found.append(os.path.join(dirpath, n))
    suite.eq("no file named after the traversal target", found, [])
    repos = os.path.join(srv.root, "repositories")
    names = []
    if os.path.isdir(repos):
        for dirpath, dirnames, filenames in os.walk(repos):
            names += dirnames
    suite.check("no invalid repository directory created",
                not any(n != n.lower() or n in ("..", ".") or n.startswith(".") for n in names), repr(names))


@suite.test
def bad_digests():
    repo = "bad/digest"
    r, loc, uuid = start_upload(cl(), repo)
    suite.require_eq("POST", r.status, 202)
    data = rng.randbytes(3000)
    expect_session(suite, "chunk", patch_chunk(cl(), loc, data, 0), 202, repo, uuid, 2999)
    bad = [
        "sha256:xyz",
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "A" * 64,
        "SHA256:" + "a" * 64,
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha512:" + "a" * 128,
        "sha256",
        "sha256:",
        ":" + "a" * 64,
        "sha256:" + "g" * 64,
        "sha256:..%2F..%2F" + "a" * 58,
    ]
    for b in bad:
        expect_error(suite, "PUT ?digest=%s" % b[:24], finish_upload(cl(), loc, b), 400, "DIGEST_INVALID")
    r = cl().put(loc)
    expect_error(suite, "PUT without digest", r, 400, ("DIGEST_INVALID", "BLOB_UPLOAD_INVALID"))
    r = cl().put(loc, b"tail")
    expect_error(suite, "PUT without digest, with a chunk", r, 400, ("DIGEST_INVALID", "BLOB_UPLOAD_INVALID"))
    expect_session(suite, "session unchanged after bad digests", cl().get(loc), 204, repo, uuid, 2999)

    malformed = ["sha256:xyz", "sha256:" + "a" * 63, "sha256:" + "a" * 65, "sha256:" + "A" * 64,
                 "sha256:" + "g" * 64, "notadigest", "sha256:"]
    for b in malformed:
        r = cl().get("/v2/%s/blobs/%s" % (repo, b))
        expect_error(suite, "GET blob %s" % b[:24], r, 400, "DIGEST_INVALID")
        r = cl().head("/v2/%s/blobs/%s" % (repo, b))
        suite.eq("HEAD blob %s" % b[:24], r.status, 400)
    # well-formed digests of algorithms berth does not support: no such blob
    # can exist, so 404 BLOB_UNKNOWN is as right as 400 DIGEST_INVALID
    for b in ("md5:d41d8cd98f00b204e9800998ecf8427e", "sha512:" + "a" * 128):
        r = cl().get("/v2/%s/blobs/%s" % (repo, b))
        expect_error(suite, "GET blob %s" % b[:24], r, (400, 404),
                     "DIGEST_INVALID" if r.status == 400 else "BLOB_UNKNOWN")
    for b in bad[:7] + ["notadigest"]:
        r = cl().post("/v2/%s/blobs/uploads/?digest=%s" % (repo, b), b"body")
        expect_error(suite, "monolithic POST ?digest=%s" % b[:24], r, 400, "DIGEST_INVALID")

    r = cl().post("/v2/%s/blobs/uploads/?mount=%s&from=other/repo" % (repo, "sha256:xyz"))
    suite.check("mount with a bad digest -> 400 DIGEST_INVALID or a new session",
                (r.status == 400 and (r.error_codes() or [""])[0] == "DIGEST_INVALID") or r.status == 202,
                "got %d %r" % (r.status, r.body[:200]))
    if r.status == 202:
        cl().delete(r.h("location"))
    r = cl().post("/v2/%s/blobs/uploads/?mount=%s&from=../../x" % (repo, digest(data)))
    suite.check("mount from a bad name -> 400 NAME_INVALID or a new session",
                (r.status == 400 and (r.error_codes() or [""])[0] == "NAME_INVALID") or r.status == 202,
                "got %d %r" % (r.status, r.body[:200]))
    if r.status == 202:
        cl().delete(r.h("location"))

    r = finish_upload(cl(), loc, digest(data))
    suite.eq("PUT with the right digest after bad ones", r.status, 201)
    suite.eq("blob bytes", cl().get(blob_url(repo, digest(data))).body, data)
    alive("bad digests")


@suite.test
def bad_uuids():
    repo = "bad/uuid"
    r, loc, uuid = start_upload(cl(), repo)
    suite.require_eq("POST", r.status, 202)
    bad = [
        "not-a-uuid",
        uuid.upper(),
        uuid[:-1],
        uuid + "0",
        uuid.replace("-", ""),
        "..",
        "..%2F..%2F..%2Fetc",
        "%2e%2e",
        "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0fz",
        "0f1e2d3c_4b5a_4978_8695_a4b3c2d1e0f9",
        uuid + "%00",
    ]
    for b in bad:
        p = upload_path(repo, b)
        expect_error(suite, "GET session %s" % b[:40], cl().get(p), 404, "BLOB_UPLOAD_UNKNOWN")
        expect_error(suite, "PATCH session %s" % b[:40], patch_chunk(cl(), p, b"abc", 0), 404,
                     "BLOB_UPLOAD_UNKNOWN")
        expect_error(suite, "PUT session %s" % b[:40], finish_upload(cl(), p, digest(b"abc"), b"abc"), 404,
                     "BLOB_UPLOAD_UNKNOWN")
        expect_error(suite, "DELETE session %s" % b[:40], cl().delete(p), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_session(suite, "real session untouched", cl().get(loc), 204, repo, uuid, -1)
    cl().delete(loc)
    alive("bad uuids")


@suite.test
def malformed_content_range():
    repo = "bad/range"
    r, loc, uuid = start_upload(cl(), repo)
    suite.require_eq("POST", r.status, 202)
    a = rng.randbytes(100)
    expect_session(suite, "chunk", patch_chunk(cl(), loc, a, 0), 202, repo, uuid, 99)
    b = rng.randbytes(50)
    for cr in ("abc", "149-100", "-149", "100-", "100", "bytes=100-x", "100 - 149", "0x64-0x95",
               "18446744073709551616-18446744073709551665", "100-149,150-160", "", "+100-149"):
        r = cl().patch(loc, b, {"Content-Range": cr})
        expect_error(suite, "PATCH Content-Range %r" % cr[:30], r, 400,
                     ("BLOB_UPLOAD_INVALID", "RANGE_INVALID", "SIZE_INVALID"))
    expect_session(suite, "session unchanged after malformed ranges", cl().get(loc), 204, repo, uuid, 99)
    r = cl().patch(loc, b, {"Content-Range": "bytes 100-149"})
    expect_session(suite, "'bytes ' prefix accepted", r, 202, repo, uuid, 149)
    c = rng.randbytes(10)
    r = cl().patch(loc, c, {"Content-Range": "150-159/*"})
    expect_session(suite, "'/*' suffix accepted", r, 202, repo, uuid, 159)
    data = a + b + c
    suite.eq("PUT after malformed ranges", finish_upload(cl(), loc, digest(data)).status, 201)
    suite.eq("blob bytes", cl().get(blob_url(repo, digest(data))).body, data)
    alive("malformed Content-Range")


@suite.test
def unknown_routes_and_methods():
    d = digest(b"x")
    for path in ("/", "/v1/", "/v3/", "/v2/x/unknown", "/v2/x/blobs", "/v2/x/blobs/uploads/a/b/c/d",
                 "/favicon.ico", "/v2/x/blobs/%s/extra" % d):
        r = cl().get(path)
        expect_error(suite, "GET %s" % path[:40], r, 404, None)
    for method, path in (("DELETE", "/v2/"), ("POST", "/v2/"), ("PUT", "/v2/x/blobs/uploads/"),
                         ("PATCH", "/v2/x/blobs/uploads/"), ("POST", "/v2/x/blobs/%s" % d),
                         ("PATCH", "/v2/x/blobs/%s" % d), ("PUT", "/v2/x/blobs/%s" % d),
                         ("DELETE", "/v2/x/blobs/uploads/"), ("POST", "/v2/x/blobs/uploads/%s" %
                                                              "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"),
                         ("BREW", "/v2/"), ("TRACE", "/v2/x/blobs/uploads/")):
        r = cl().request(method, path, b"" if method in ("POST", "PUT", "PATCH") else None)
        expect_error(suite, "%s %s" % (method, path[:40]), r, (404, 405), None)
    alive("unknown routes")


@suite.test
def raw_protocol_garbage():
    port = srv.port
    cases = [
        b"GARBAGE\r\n\r\n",
        b"GET /v2/ HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 600000 + b"\r\n\r\n",
        b"PATCH /v2/x/blobs/uploads/zz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
        b"\x16\x03\x01\x00\x05hello",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00",
        b"\r\n\r\n\r\n",
    ]
    for i, raw in enumerate(cases):
        try:
            out = raw_request(port, raw, timeout=10)
        except OSError as e:
            out = repr(e).encode()
        resp = parse_raw_response(out)
        suite.check("garbage %d: no 2xx/5xx answer" % i, resp is None or 400 <= resp.status < 500,
                    repr(out[:200]))
        alive("garbage %d" % i)


@suite.test
def session_survives_bad_requests():
    repo = "tough/session"
    r, loc, uuid = start_upload(cl(), repo)
    suite.require_eq("POST", r.status, 202)
    a = rng.randbytes(200000)
    expect_session(suite, "chunk 1", patch_chunk(cl(), loc, a, 0), 202, repo, uuid, len(a) - 1)

    # a body cut short by the client: nothing of it may be stored
    hdr = ("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
           "Content-Range: %s\r\nContent-Length: 100000\r\n\r\n" % (loc, content_range(len(a), 100000))).encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(hdr + rng.randbytes(40000))
    s.close()
    # a chunked body cut short
    hdr = ("PATCH %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % loc).encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(hdr + b"2710\r\n" + b"z" * 5000)
    s.close()
    r = cl().get(loc)
    expect_session(suite, "status after aborted bodies", r, 204, repo, uuid, len(a) - 1)

    # over http.maxchunksize (1 MiB here)
    big = rng.randbytes(MAXCHUNK + 4096)
    try:
        r = patch_chunk(cl(), loc, big, len(a))
        suite.check("PATCH over maxchunksize -> 413", r.status == 413, "got %d" % r.status)
    except OSError as e:  # the server may close the connection while we still send
        suite.check("PATCH over maxchunksize refused (connection closed)", True, repr(e))
    expect_session(suite, "status after oversized chunk", cl().get(loc), 204, repo, uuid, len(a) - 1)

    for bad in ({"Content-Range": "zzz"}, {"Content-Range": "5-1"}):
        cl().patch(loc, b"abc", bad)
    cl().put(loc + "?digest=sha256:nothex")
    cl().put(loc + "?digest=" + digest(b"wrong"), b"wrong")
    patch_chunk(cl(), loc, b"early", 0)
    patch_chunk(cl(), loc, b"late", len(a) + 10)
    cl().get(upload_path(repo, uuid.upper()))
    cl().delete(upload_path("other/repo", uuid))
    expect_session(suite, "status after a barrage of bad requests", cl().get(loc), 204, repo, uuid, len(a) - 1)

    # a valid chunked (Transfer-Encoding) PATCH is accepted and appended
    b = rng.randbytes(70000)
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (b[:30000], b[30000:])) + b"0\r\n\r\n"
    raw = ("PATCH %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n"
           "Connection: close\r\n\r\n" % loc).encode() + body
    resp = parse_raw_response(raw_request(srv.port, raw, timeout=60))
    suite.check("chunked-encoding PATCH -> 202", resp is not None and resp.status == 202,
                repr(resp and (resp.status, resp.headers)))
    if resp is not None:
        suite.eq("chunked-encoding PATCH Range", resp.h("range"), "0-%d" % (len(a) + len(b) - 1))

    c = rng.randbytes(1000)
    data = a + b + c
    r = finish_upload(cl(), loc, digest(data), c)
    suite.eq("session completes after all that", r.status, 201)
    r = cl().get(blob_url(repo, digest(data)))
    suite.eq("blob digest after all that", digest(r.body), digest(data))
    alive("bad requests on a session")


@suite.test
def error_body_shape():
    r = cl().get("/v2/x/blobs/uploads/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9")
    j = r.json()
    ok = isinstance(j, dict) and list(j.keys()) == ["errors"] and len(j["errors"]) >= 1
    suite.check("error body is {\"errors\": [...]}", ok, repr(r.body[:300]))
    if ok:
        e = j["errors"][0]
        suite.eq("error code", e.get("code"), "BLOB_UPLOAD_UNKNOWN")
        suite.check("error message is a non-empty string", isinstance(e.get("message"), str) and e["message"],
                    repr(e))
        suite.check("error has a detail member", "detail" in e, repr(e))
    r = cl().get("/v2/x/no-such-endpoint/at/all")
    suite.eq("unknown endpoint: 404", r.status, 404)
    j = r.json() or {}
    suite.check("unknown endpoint: a JSON error with code, message and detail",
                all(k in (j.get("errors") or [{}])[0] for k in ("code", "message", "detail")), repr(r.body[:300]))


@suite.test
def still_works():
    data = rng.randbytes(10000)
    r = upload_blob(cl(), "final/check", data, chunk=3000)
    suite.eq("a normal upload after everything", r.status, 201)
    suite.eq("its bytes", cl().get(blob_url("final/check", digest(data))).body, data)


@suite.test
def shutdown():
    srv.stop()


if __name__ == "__main__":
    suite.main()
