#!/usr/bin/env python3
"""The upload flow over every protocol berth speaks, driven by curl:
HTTP/2 with prior knowledge (h2c), HTTP/1.1 Upgrade to h2c, TLS with ALPN
h2, and HTTP/1.1 both in the clear and over TLS."""

import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import (UUID_RE, Berth, Suite, blob_url, content_range, curl, digest, start_upload,  # noqa: E402
                       upload_path)

suite = Suite("test_protocols")
rng = random.Random(0x42)
plain = None
tls = None


def version_for(mode):
    return "HTTP/1.1" if mode == "h1" else "HTTP/2"


def flow(srv, mode, label, size=(300000, 200001, 99999)):
    """POST, two PATCHes, status, PUT with a last chunk, GETs: all in two
    curl invocations, every answer checked."""
    want = version_for(mode)
    base = srv.url("")
    repo = "proto/%s" % label.replace(" ", "-").replace("/", "-").lower()
    a, b, c = (rng.randbytes(n) for n in size)
    data = a + b + c
    d = digest(data)

    res = curl(base, [{"path": "/v2/"}, {"method": "POST", "path": "/v2/%s/blobs/uploads/" % repo}], mode, srv.dir)
    if mode == "upgrade":
        suite.check("%s: first answer is 101 Switching Protocols then HTTP/2" % label,
                    any(s.startswith("HTTP/1.1 101") for s in res[0].all_status_lines),
                    repr(res[0].all_status_lines))
    suite.eq("%s: GET /v2/ status line" % label, res[0].proto_status, "%s 200" % want)
    suite.eq("%s: GET /v2/ API version header" % label, res[0].h("docker-distribution-api-version"),
             "registry/2.0")
    r = res[1]
    suite.eq("%s: POST status line" % label, r.proto_status, "%s 202" % want)
    uuid = r.h("docker-upload-uuid") or ""
    suite.check("%s: POST uuid" % label, UUID_RE.match(uuid), repr(uuid))
    loc = r.h("location")
    suite.eq("%s: POST Location" % label, loc, upload_path(repo, uuid))
    suite.eq("%s: POST Range" % label, r.h("range"), "0-0")
    if r.status != 202 or not loc:
        return

    reqs = [
        {"path": "/v2/"},
        {"method": "PATCH", "path": loc, "body": a, "headers": {"Content-Range": content_range(0, len(a))}},
        {"method": "PATCH", "path": loc, "body": b},
        {"method": "PATCH", "path": loc, "body": a, "headers": {"Content-Range": content_range(0, len(a))}},
        {"path": loc},
        {"method": "PUT", "path": "%s?digest=%s" % (loc, d), "body": c},
        {"path": blob_url(repo, d)},
        {"method": "HEAD", "path": blob_url(repo, d)},
        {"path": blob_url(repo, d), "headers": {"Range": "bytes=10-19"}},
        {"path": loc},
        {"path": blob_url("proto/elsewhere", d)},
    ]
    res = curl(base, reqs, mode, srv.dir)
    names = ["GET /v2/", "PATCH 1", "PATCH 2 (append)", "PATCH retry", "status", "PUT", "GET blob", "HEAD blob",
             "Range GET", "status after PUT", "GET from another repo"]
    codes = [200, 202, 202, 416, 204, 201, 200, 200, 206, 404, 404]
    for n, code, r in zip(names, codes, res):
        suite.eq("%s: %s status line" % (label, n), r.proto_status, "%s %d" % (want, code))
    if want == "HTTP/2":
        upper = sorted({h for r in res for h in r.raw_names if h != h.lower()})
        suite.eq("%s: HTTP/2 header names are lowercase (RFC 9113 8.2.1)" % label, upper, [])
    rp1, rp2, rretry, rst, rput, rget, rhead, rrange, rgone, rother = res[1:]
    suite.eq("%s: PATCH 1 Range" % label, rp1.h("range"), "0-%d" % (len(a) - 1))
    suite.eq("%s: PATCH 1 Location" % label, rp1.h("location"), loc)
    suite.eq("%s: PATCH 1 Docker-Upload-UUID" % label, rp1.h("docker-upload-uuid"), uuid)
    suite.eq("%s: PATCH 2 Range" % label, rp2.h("range"), "0-%d" % (len(a) + len(b) - 1))
    suite.eq("%s: PATCH retry Range" % label, rretry.h("range"), "0-%d" % (len(a) + len(b) - 1))
    suite.eq("%s: PATCH retry Location" % label, rretry.h("location"), loc)
    suite.eq("%s: status Range" % label, rst.h("range"), "0-%d" % (len(a) + len(b) - 1))
    suite.eq("%s: status Location" % label, rst.h("location"), loc)
    suite.eq("%s: status Docker-Upload-UUID" % label, rst.h("docker-upload-uuid"), uuid)
    suite.eq("%s: PUT Location" % label, rput.h("location"), blob_url(repo, d))
    suite.eq("%s: PUT Docker-Content-Digest" % label, rput.h("docker-content-digest"), d)
    suite.check("%s: GET blob bytes" % label, rget.body == data, "%d bytes, %s" % (len(rget.body), digest(rget.body)))
    suite.eq("%s: GET blob Docker-Content-Digest" % label, rget.h("docker-content-digest"), d)
    suite.eq("%s: GET blob Content-Length" % label, rget.h("content-length"), str(len(data)))
    suite.eq("%s: HEAD Content-Length" % label, rhead.h("content-length"), str(len(data)))
    suite.eq("%s: Range GET body" % label, rrange.body, data[10:20])
    suite.eq("%s: Range GET Content-Range" % label, rrange.h("content-range"), "bytes 10-19/%d" % len(data))
    suite.eq("%s: status after PUT error code" % label, _code(rgone), "BLOB_UPLOAD_UNKNOWN")
    suite.eq("%s: error Content-Type" % label, (rgone.h("content-type") or "").split(";")[0], "application/json")
    suite.eq("%s: other repo error code" % label, _code(rother), "BLOB_UNKNOWN")


def _code(r):
    import json
    try:
        return json.loads(r.body)["errors"][0]["code"]
    except Exception:
        return None


@suite.test
def start_servers():
    global plain, tls
    plain = Berth(suite, shared=True).start()
    tls = Berth(suite, shared=True, tls=True).start()


@suite.test
def h2c_prior_knowledge():
    flow(plain, "h2c", "h2c prior knowledge")


@suite.test
def h2c_upgrade():
    flow(plain, "upgrade", "h2c upgrade")


@suite.test
def tls_h2():
    flow(tls, "h2", "TLS ALPN h2")


@suite.test
def tls_http11():
    flow(tls, "h1", "TLS HTTP/1.1")
    # and with Python's ssl client
    c = tls.client()
    data = rng.randbytes(12345)
    r, loc, uuid = start_upload(c, "proto/pytls")
    suite.eq("python TLS POST", r.status, 202)
    if r.status == 202:
        r = c.put("%s?digest=%s" % (loc, digest(data)), data)
        suite.eq("python TLS PUT", r.status, 201)
        suite.eq("python TLS GET", c.get(blob_url("proto/pytls", digest(data))).body, data)


@suite.test
def plain_http11():
    flow(plain, "h1", "HTTP/1.1")
    # curl sends "Expect: 100-continue" for HTTP/1.1 bodies over 1 MiB
    repo = "proto/expect"
    big = rng.randbytes(3 << 20)
    res = curl(plain.url(""), [{"method": "POST", "path": "/v2/%s/blobs/uploads/" % repo}], "h1", plain.dir)
    loc = res[0].h("location")
    if not loc:
        return suite.fail("Expect: POST", repr(res[0]))
    res = curl(plain.url(""), [
        {"method": "PATCH", "path": loc, "body": big, "headers": {"Expect": "100-continue"}},
        {"method": "PUT", "path": "%s?digest=%s" % (loc, digest(big)), "body": b""},
    ], "h1", plain.dir)
    suite.eq("Expect: 100-continue PATCH", res[0].proto_status, "HTTP/1.1 202")
    suite.eq("Expect: 100-continue PATCH Range", res[0].h("range"), "0-%d" % (len(big) - 1))
    suite.eq("Expect: PUT", res[1].proto_status, "HTTP/1.1 201")


@suite.test
def h2_large_chunk():
    """A chunk over 32 MiB on HTTP/2 (h2c and TLS)."""
    for srv, mode in ((plain, "h2c"), (tls, "h2")):
        repo = "proto/large-%s" % mode
        big = os.urandom(34 << 20)
        d = digest(big)
        res = curl(srv.url(""), [{"method": "POST", "path": "/v2/%s/blobs/uploads/" % repo}], mode, srv.dir)
        loc = res[0].h("location")
        suite.eq("%s large: POST" % mode, res[0].proto_status, "HTTP/2 202")
        if not loc:
            continue
        res = curl(srv.url(""), [
            {"method": "PATCH", "path": loc, "body": big, "headers": {"Content-Range": content_range(0, len(big))}},
            {"method": "PUT", "path": "%s?digest=%s" % (loc, d), "body": b""},
            {"method": "HEAD", "path": blob_url(repo, d)},
        ], mode, srv.dir)
        suite.eq("%s large: 34 MiB PATCH" % mode, res[0].proto_status, "HTTP/2 202")
        suite.eq("%s large: Range" % mode, res[0].h("range"), "0-%d" % (len(big) - 1))
        suite.eq("%s large: PUT" % mode, res[1].proto_status, "HTTP/2 201")
        suite.eq("%s large: HEAD Content-Length" % mode, res[2].h("content-length"), str(len(big)))
        r = srv.client().get(blob_url(repo, d))
        suite.eq("%s large: stored digest" % mode, digest(r.body), d)


@suite.test
def h2_multiplexed():
    """Several sessions written at once on one HTTP/2 connection."""
    n = 8
    repo = "proto/mux"
    c = plain.client()
    sessions = []
    for i in range(n):
        r, loc, uuid = start_upload(c, repo)
        suite.require_eq("mux POST %d" % i, r.status, 202)
        sessions.append((loc, rng.randbytes(512 * 1024 + i), rng.randbytes(1000 + i)))
    reqs = [{"method": "PATCH", "path": loc, "body": a, "headers": {"Content-Range": content_range(0, len(a))}}
            for loc, a, _ in sessions]
    res = curl(plain.url(""), reqs, "h2c", plain.dir, parallel=True)
    suite.eq("mux PATCHes all 202 over HTTP/2", [r.proto_status for r in res], ["HTTP/2 202"] * n)
    suite.eq("mux PATCH Ranges", [r.h("range") for r in res], ["0-%d" % (len(a) - 1) for _, a, _ in sessions])
    reqs = [{"method": "PUT", "path": "%s?digest=%s" % (loc, digest(a + b)), "body": b} for loc, a, b in sessions]
    res = curl(plain.url(""), reqs, "h2c", plain.dir, parallel=True)
    suite.eq("mux PUTs all 201", [r.proto_status for r in res], ["HTTP/2 201"] * n)
    blobs = [{"path": blob_url(repo, digest(a + b))} for _, a, b in sessions]
    res = curl(plain.url(""), blobs, "h2c", plain.dir, parallel=True)
    suite.eq("mux GETs bytes", [digest(r.body) for r in res], [digest(a + b) for _, a, b in sessions])
    # monolithic POSTs in parallel
    datas = [rng.randbytes(100000 + i) for i in range(n)]
    reqs = [{"method": "POST", "path": "/v2/%s/blobs/uploads/?digest=%s" % (repo, digest(x)), "body": x}
            for x in datas]
    res = curl(plain.url(""), reqs, "h2c", plain.dir, parallel=True)
    suite.eq("mux monolithic POSTs all 201", [r.proto_status for r in res], ["HTTP/2 201"] * n)
    suite.eq("mux monolithic Locations", [r.h("location") for r in res],
             [blob_url(repo, digest(x)) for x in datas])


@suite.test
def h2_client_abort():
    """A client that goes away mid-body: the session stays consistent and
    the server keeps serving (on HTTP/2 and HTTP/1.1)."""
    for mode in ("h2c", "h1"):
        repo = "proto/abort-%s" % mode
        c = plain.client()
        r, loc, uuid = start_upload(c, repo)
        suite.require_eq("abort %s: POST" % mode, r.status, 202)
        a = rng.randbytes(1000)
        c.patch(loc, a, {"Content-Range": content_range(0, len(a))})
        big = os.urandom(8 << 20)
        fn = os.path.join(plain.dir, "abort.bin")
        with open(fn, "wb") as f:
            f.write(big)
        args = ["curl", "-sS", "-o", "/dev/null", "--limit-rate", "2M", "--max-time", "1",
                "--http2-prior-knowledge" if mode == "h2c" else "--http1.1", "-X", "PATCH",
                "-H", "Content-Range: %s" % content_range(len(a), len(big)), "-H", "Content-Type: application/octet-stream",
                "--data-binary", "@" + fn, plain.url(loc)]
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        suite.check("abort %s: curl gave up mid-body" % mode, p.returncode != 0, "curl rc %d" % p.returncode)
        r = plain.client().get(loc)
        suite.eq("abort %s: status after abort" % mode, (r.status, r.h("range")), (204, "0-%d" % (len(a) - 1)))
        b = rng.randbytes(5000)
        r = plain.client().put("%s?digest=%s" % (loc, digest(a + b)), b)
        suite.eq("abort %s: session completes afterwards" % mode, r.status, 201)


@suite.test
def shutdown():
    plain.stop(label="plain berth")
    tls.stop(label="TLS berth")


if __name__ == "__main__":
    suite.main()
