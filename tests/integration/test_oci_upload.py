#!/usr/bin/env python3
"""The OCI distribution-spec blob upload flow over HTTP/1.1, including a
resume across kill -9 and restart."""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import berthtest  # noqa: E402
from berthtest import (EMPTY_DIGEST, UUID_RE, Berth, Suite, blob_url, content_range, digest,  # noqa: E402
                       expect_error, expect_session, finish_upload, patch_chunk, start_upload, upload_blob,
                       upload_path)

suite = Suite("test_oci_upload")
rng = random.Random(0xBE27)
srv = None


def cl():
    return srv.client()


def new_session(repo, label):
    r, loc, uuid = start_upload(cl(), repo)
    suite.require_eq("%s: POST status" % label, r.status, 202)
    return loc, uuid


def check_blob(label, repo, data, c=None):
    """GET and HEAD of a finished blob: exact bytes and headers."""
    c = c or cl()
    d = digest(data)
    r = c.get(blob_url(repo, d))
    suite.eq("%s: GET blob status" % label, r.status, 200)
    suite.check("%s: GET blob bytes identical" % label, r.body == data,
                "got %d bytes (%s), want %d (%s)" % (len(r.body), digest(r.body), len(data), d))
    suite.eq("%s: GET blob Content-Length" % label, r.h("content-length"), str(len(data)))
    suite.eq("%s: GET blob Docker-Content-Digest" % label, r.h("docker-content-digest"), d)
    suite.eq("%s: GET blob Accept-Ranges" % label, r.h("accept-ranges"), "bytes")
    r = c.head(blob_url(repo, d))
    suite.eq("%s: HEAD blob status" % label, r.status, 200)
    suite.eq("%s: HEAD blob Content-Length" % label, r.h("content-length"), str(len(data)))
    suite.eq("%s: HEAD blob Docker-Content-Digest" % label, r.h("docker-content-digest"), d)
    suite.eq("%s: HEAD blob has no body" % label, r.body, b"")


@suite.test
def start_server():
    global srv
    srv = Berth(suite, shared=True).start()


@suite.test
def api_version():
    r = cl().get("/v2/")
    suite.eq("GET /v2/ status", r.status, 200)
    suite.eq("GET /v2/ Docker-Distribution-API-Version", r.h("docker-distribution-api-version"), "registry/2.0")
    suite.check("GET /v2/ body is JSON", r.json() is not None, repr(r.body[:200]))
    r = cl().head("/v2/")
    suite.eq("HEAD /v2/ status", r.status, 200)


@suite.test
def seed_scenario():
    repo = "seed/app"
    c1, c2, c3 = rng.randbytes(1 << 20), rng.randbytes(700001), rng.randbytes(333333)
    data = c1 + c2 + c3
    d = digest(data)

    r, loc, uuid = start_upload(cl(), repo)
    suite.require_eq("POST status", r.status, 202)
    suite.eq("POST Location", loc, upload_path(repo, uuid))
    suite.check("POST uuid is 8-4-4-4-12 lowercase hex", uuid and UUID_RE.match(uuid), repr(uuid))
    suite.eq("POST Docker-Upload-UUID", r.h("docker-upload-uuid"), uuid)
    suite.eq("POST Range", r.h("range"), "0-0")

    r = cl().get(loc)
    expect_session(suite, "status of empty session", r, 204, repo, uuid, -1)

    r = patch_chunk(cl(), loc, c1, 0)
    expect_session(suite, "PATCH chunk 1 with Content-Range", r, 202, repo, uuid, len(c1) - 1)
    r = patch_chunk(cl(), loc, c2)  # no Content-Range: append
    expect_session(suite, "PATCH chunk 2 without Content-Range", r, 202, repo, uuid, len(c1) + len(c2) - 1)
    n = len(c1) + len(c2)

    r = cl().get(loc)
    expect_session(suite, "status after two chunks", r, 204, repo, uuid, n - 1)
    suite.check("status has empty body", r.body == b"", repr(r.body[:100]))

    up = srv.upload_dir(uuid)
    if berthtest.BACKEND == "filesystem":  # the S3 layout is checked in test_s3_flows.py
        rec = os.path.join(srv.root, "sessions", uuid)
        suite.check("sessions/<uuid> (the record) exists", os.path.isfile(rec), rec)
        try:
            with open(os.path.join(up, "data"), "rb") as f:
                stored = f.read(n)
        except OSError as e:
            stored = repr(e).encode()
        suite.check("uploads/<uuid>/data holds the bytes sent", stored == c1 + c2, "%d bytes" % len(stored))

    srv.kill9()
    srv.start()
    r = cl().get(loc)
    expect_session(suite, "status after kill -9 and restart", r, 204, repo, uuid, n - 1)

    r = patch_chunk(cl(), loc, c3, n)
    expect_session(suite, "PATCH chunk 3 after restart", r, 202, repo, uuid, len(data) - 1)

    r = finish_upload(cl(), loc, d)
    suite.eq("PUT ?digest status", r.status, 201)
    suite.eq("PUT Location", r.h("location"), blob_url(repo, d))
    suite.eq("PUT Docker-Content-Digest", r.h("docker-content-digest"), d)

    r = cl().get(loc)
    expect_error(suite, "status of finished session", r, 404, "BLOB_UPLOAD_UNKNOWN")
    r = patch_chunk(cl(), loc, b"x", len(data))
    expect_error(suite, "PATCH to finished session", r, 404, "BLOB_UPLOAD_UNKNOWN")

    check_blob("seed", repo, data)

    r = cl().get(blob_url(repo, d), headers={"Range": "bytes=100-199"})
    suite.eq("Range GET bytes=100-199 status", r.status, 206)
    suite.eq("Range GET Content-Range", r.h("content-range"), "bytes 100-199/%d" % len(data))
    suite.check("Range GET body", r.body == data[100:200], "%d bytes" % len(r.body))
    suite.eq("Range GET Content-Length", r.h("content-length"), "100")
    r = cl().get(blob_url(repo, d), headers={"Range": "bytes=%d-" % (len(data) - 5)})
    suite.eq("Range GET open-ended status", r.status, 206)
    suite.check("Range GET open-ended body", r.body == data[-5:], repr(r.body[:20]))
    suite.eq("Range GET open-ended Content-Range", r.h("content-range"),
             "bytes %d-%d/%d" % (len(data) - 5, len(data) - 1, len(data)))
    r = cl().get(blob_url(repo, d), headers={"Range": "bytes=-7"})
    suite.eq("Range GET suffix status", r.status, 206)
    suite.check("Range GET suffix body", r.body == data[-7:], repr(r.body[:20]))
    r = cl().get(blob_url(repo, d), headers={"Range": "bytes=%d-%d" % (len(data), len(data) + 10)})
    suite.eq("Range GET unsatisfiable status", r.status, 416)

    if berthtest.BACKEND == "filesystem":
        suite.check("blobs/sha256/<aa>/<hex>/data exists", os.path.isfile(srv.blob_path(d)), srv.blob_path(d))
        if os.path.isfile(srv.blob_path(d)):
            suite.eq("blob data file size", os.path.getsize(srv.blob_path(d)), len(data))
        suite.check("repositories/<name>/_layers link exists", os.path.isfile(srv.link_path(repo, d)),
                    srv.link_path(repo, d))
        suite.check("finished session directory is gone", not os.path.exists(up), up)


@suite.test
def unknown_session():
    repo = "unknown/sess"
    bogus = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    loc = upload_path(repo, bogus)
    expect_error(suite, "GET unknown session", cl().get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(suite, "PATCH unknown session", patch_chunk(cl(), loc, b"abc", 0), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(suite, "PUT unknown session", finish_upload(cl(), loc, digest(b"abc"), b"abc"), 404,
                 "BLOB_UPLOAD_UNKNOWN")
    expect_error(suite, "DELETE unknown session", cl().delete(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    # A session is bound to its repository.
    loc2, uuid2 = new_session("owner/repo", "session of another repo")
    expect_error(suite, "GET session through another repository",
                 cl().get(upload_path("other/repo", uuid2)), 404, "BLOB_UPLOAD_UNKNOWN")
    r = cl().get(loc2)
    expect_session(suite, "session still there in its own repository", r, 204, "owner/repo", uuid2, -1)
    cl().delete(loc2)


@suite.test
def out_of_order_and_retry():
    repo = "order/test"
    a, b, c = rng.randbytes(1000), rng.randbytes(2000), rng.randbytes(500)
    loc, uuid = new_session(repo, "order")
    r = patch_chunk(cl(), loc, a, 0)
    expect_session(suite, "first chunk", r, 202, repo, uuid, 999)

    r = patch_chunk(cl(), loc, c, 3000)  # gap: 1000..2999 missing
    expect_session(suite, "out-of-order chunk -> 416", r, 416, repo, uuid, 999)
    r = patch_chunk(cl(), loc, a, 0)  # retry of the chunk already received
    expect_session(suite, "retry of received chunk -> 416", r, 416, repo, uuid, 999)
    r = patch_chunk(cl(), loc, a[500:] + b[:500], 500)  # overlapping
    expect_session(suite, "overlapping chunk -> 416", r, 416, repo, uuid, 999)
    r = cl().patch(loc, b[:10], {"Content-Range": content_range(1000, 20)})  # range/length mismatch
    suite.check("Content-Range not matching the body length -> 400/416", r.status in (400, 416),
                "got %d" % r.status)
    r = cl().get(loc)
    expect_session(suite, "status unchanged after rejected chunks", r, 204, repo, uuid, 999)

    r = patch_chunk(cl(), loc, b, 1000)
    expect_session(suite, "in-order chunk after 416s", r, 202, repo, uuid, 2999)
    r = patch_chunk(cl(), loc, b, 1000)
    expect_session(suite, "second retry -> 416", r, 416, repo, uuid, 2999)
    r = patch_chunk(cl(), loc, c)  # append
    expect_session(suite, "append", r, 202, repo, uuid, 3499)
    data = a + b + c
    r = finish_upload(cl(), loc, digest(data))
    suite.eq("PUT after 416s", r.status, 201)
    check_blob("order", repo, data)


@suite.test
def digest_mismatch_stays_resumable():
    repo = "digest/mismatch"
    a, b = rng.randbytes(4096), rng.randbytes(5000)
    loc, uuid = new_session(repo, "mismatch")
    expect_session(suite, "chunk", patch_chunk(cl(), loc, a, 0), 202, repo, uuid, 4095)
    wrong = digest(b"not the content")
    r = finish_upload(cl(), loc, wrong)
    expect_error(suite, "PUT with wrong digest", r, 400, "DIGEST_INVALID")
    r = cl().get(loc)
    expect_session(suite, "status after wrong digest", r, 204, repo, uuid, 4095)
    r = finish_upload(cl(), loc, wrong, b)
    expect_error(suite, "PUT with wrong digest and a last chunk", r, 400, "DIGEST_INVALID")
    r = cl().get(loc)
    expect_session(suite, "last chunk of a failed PUT not stored", r, 204, repo, uuid, 4095)
    r = cl().head(blob_url(repo, wrong))
    suite.eq("wrong digest is no blob", r.status, 404)
    expect_session(suite, "PATCH after wrong digest", patch_chunk(cl(), loc, b, 4096), 202, repo, uuid, 9095)
    r = finish_upload(cl(), loc, digest(a + b))
    suite.eq("PUT with the right digest", r.status, 201)
    suite.eq("PUT Docker-Content-Digest", r.h("docker-content-digest"), digest(a + b))
    check_blob("mismatch", repo, a + b)


@suite.test
def put_with_final_chunk():
    repo = "final/chunk"
    a, b = rng.randbytes(300000), rng.randbytes(123457)
    loc, uuid = new_session(repo, "final chunk")
    patch_chunk(cl(), loc, a, 0)
    r = finish_upload(cl(), loc, digest(a + b), b)
    suite.eq("PUT with last chunk status", r.status, 201)
    suite.eq("PUT with last chunk Location", r.h("location"), blob_url(repo, digest(a + b)))
    check_blob("final chunk", repo, a + b)
    # PUT carrying the whole blob, no PATCH at all
    data = rng.randbytes(77777)
    loc, uuid = new_session(repo, "PUT-only")
    r = finish_upload(cl(), loc, digest(data), data)
    suite.eq("PUT-only upload status", r.status, 201)
    check_blob("PUT-only", repo, data)


@suite.test
def monolithic_post():
    repo = "mono/lithic"
    data = rng.randbytes(250001)
    d = digest(data)
    r = cl().post("/v2/%s/blobs/uploads/?digest=%s" % (repo, d), data)
    suite.eq("monolithic POST status", r.status, 201)
    suite.eq("monolithic POST Location", r.h("location"), blob_url(repo, d))
    suite.eq("monolithic POST Docker-Content-Digest", r.h("docker-content-digest"), d)
    check_blob("monolithic", repo, data)
    other = rng.randbytes(1000)
    r = cl().post("/v2/%s/blobs/uploads/?digest=%s" % (repo, digest(b"other")), other)
    expect_error(suite, "monolithic POST with wrong digest", r, 400, "DIGEST_INVALID")
    suite.eq("nothing stored for the wrong digest", cl().head(blob_url(repo, digest(other))).status, 404)
    # the same content twice is fine
    r = cl().post("/v2/%s/blobs/uploads/?digest=%s" % (repo, d), data)
    suite.eq("monolithic POST of an existing blob", r.status, 201)


@suite.test
def mount():
    data = rng.randbytes(64 * 1024 + 3)
    d = digest(data)
    r = upload_blob(cl(), "mount/src", data, chunk=20000)
    suite.require_eq("upload in source repo", r.status, 201)
    suite.eq("blob not yet visible in target", cl().head(blob_url("mount/dst", d)).status, 404)
    r = cl().post("/v2/mount/dst/blobs/uploads/?mount=%s&from=mount/src" % d)
    suite.eq("mount status", r.status, 201)
    suite.eq("mount Location", r.h("location"), blob_url("mount/dst", d))
    suite.eq("mount Docker-Content-Digest", r.h("docker-content-digest"), d)
    check_blob("mounted", "mount/dst", data)
    if berthtest.BACKEND == "filesystem":
        suite.check("mount created the link", os.path.isfile(srv.link_path("mount/dst", d)))

    unknown = digest(b"never uploaded")
    r = cl().post("/v2/mount/dst2/blobs/uploads/?mount=%s&from=mount/src" % unknown)
    suite.eq("mount of unknown blob -> 202", r.status, 202)
    uuid = r.h("docker-upload-uuid")
    suite.check("mount fallback gives a session uuid", uuid and UUID_RE.match(uuid), repr(uuid))
    suite.eq("mount fallback Location", r.h("location"), upload_path("mount/dst2", uuid))
    suite.eq("mount fallback Range", r.h("range"), "0-0")
    if r.status == 202:
        loc = r.h("location")
        r = finish_upload(cl(), loc, digest(b"fallback"), b"fallback")
        suite.eq("the fallback session works", r.status, 201)

    r = cl().post("/v2/mount/dst3/blobs/uploads/?mount=%s&from=mount/nothere" % d)
    suite.eq("mount from a repo without the blob -> 202", r.status, 202)
    suite.eq("blob still invisible in dst3", cl().head(blob_url("mount/dst3", d)).status, 404)
    if r.status == 202:
        cl().delete(r.h("location"))


@suite.test
def delete_session():
    repo = "del/sess"
    loc, uuid = new_session(repo, "delete")
    patch_chunk(cl(), loc, rng.randbytes(5000), 0)
    r = cl().delete(loc)
    suite.eq("DELETE session status", r.status, 204)
    expect_error(suite, "status after DELETE", cl().get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(suite, "PATCH after DELETE", patch_chunk(cl(), loc, b"abc", 5000), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(suite, "PUT after DELETE", finish_upload(cl(), loc, digest(b"")), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(suite, "second DELETE", cl().delete(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    suite.check("session directory removed", not srv.session_stored(uuid))


@suite.test
def blob_visibility():
    data = rng.randbytes(1234)
    d = digest(data)
    suite.require_eq("upload into vis/one", upload_blob(cl(), "vis/one", data).status, 201)
    r = cl().get(blob_url("vis/two", d))
    expect_error(suite, "GET blob from another repo", r, 404, "BLOB_UNKNOWN")
    r = cl().head(blob_url("vis/two", d))
    suite.eq("HEAD blob from another repo", r.status, 404)
    r = cl().get(blob_url("vis/one", digest(b"nope")))
    expect_error(suite, "GET unknown blob", r, 404, "BLOB_UNKNOWN")
    r = cl().post("/v2/vis/two/blobs/uploads/?mount=%s&from=vis/one" % d)
    suite.eq("mount into vis/two", r.status, 201)
    check_blob("after mount", "vis/two", data)
    # uploading the same content into a third repo links it there too
    suite.eq("same content uploaded again into vis/three", upload_blob(cl(), "vis/three", data).status, 201)
    check_blob("re-upload", "vis/three", data)


@suite.test
def large_chunk():
    repo = "large/chunk"
    big = os.urandom(40 << 20)
    tail = os.urandom(1 << 20)
    loc, uuid = new_session(repo, "large")
    r = patch_chunk(cl(), loc, big, 0)
    expect_session(suite, "40 MiB PATCH", r, 202, repo, uuid, len(big) - 1)
    r = cl().get(loc)
    expect_session(suite, "status after 40 MiB", r, 204, repo, uuid, len(big) - 1)
    data = big + tail
    r = finish_upload(cl(), loc, digest(data), tail)
    suite.eq("PUT with 1 MiB tail", r.status, 201)
    r = cl().get(blob_url(repo, digest(data)))
    suite.eq("GET 41 MiB blob status", r.status, 200)
    suite.eq("GET 41 MiB blob digest", digest(r.body), digest(data))
    r = cl().get(blob_url(repo, digest(data)), headers={"Range": "bytes=%d-%d" % ((40 << 20) - 3, (40 << 20) + 2)})
    suite.eq("Range GET across the chunk boundary", r.status, 206)
    suite.check("Range GET across the chunk boundary body", r.body == data[(40 << 20) - 3:(40 << 20) + 3],
                repr(r.body))


@suite.test
def empty_blob():
    repo = "empty/blob"
    loc, uuid = new_session(repo, "empty")
    r = cl().get(loc)
    expect_session(suite, "status of empty session", r, 204, repo, uuid, -1)
    r = finish_upload(cl(), loc, EMPTY_DIGEST)
    suite.eq("PUT empty blob status", r.status, 201)
    suite.eq("PUT empty blob Location", r.h("location"), blob_url(repo, EMPTY_DIGEST))
    suite.eq("PUT empty blob Docker-Content-Digest", r.h("docker-content-digest"), EMPTY_DIGEST)
    check_blob("empty", repo, b"")
    r = cl().post("/v2/empty/mono/blobs/uploads/?digest=%s" % EMPTY_DIGEST, b"")
    suite.eq("monolithic empty blob", r.status, 201)


@suite.test
def keepalive_flow():
    """A whole upload on one HTTP/1.1 connection."""
    repo = "keep/alive"
    c = srv.client(keepalive=True)
    try:
        chunks = [rng.randbytes(n) for n in (10000, 1, 65536, 4097)]
        r, loc, uuid = start_upload(c, repo)
        suite.require_eq("keep-alive POST", r.status, 202)
        off = 0
        ok = True
        for i, ch in enumerate(chunks):
            r = patch_chunk(c, loc, ch, off)
            off += len(ch)
            ok &= r.status == 202 and r.h("range") == "0-%d" % (off - 1)
        suite.check("keep-alive PATCHes", ok)
        expect_session(suite, "keep-alive status", c.get(loc), 204, repo, uuid, off - 1)
        data = b"".join(chunks)
        suite.eq("keep-alive PUT", finish_upload(c, loc, digest(data)).status, 201)
        check_blob("keep-alive", repo, data, c)
    finally:
        c.close()


@suite.test
def nested_names():
    for repo in ("a", "library/ubuntu", "x/y/z/w", "my-org.io/some_repo/a__b/c--d"):
        data = repo.encode() * 100
        r = upload_blob(cl(), repo, data, chunk=333)
        suite.eq("upload into %s" % repo, r.status, 201)
        suite.eq("blob of %s" % repo, cl().get(blob_url(repo, digest(data))).body, data)


@suite.test
def shutdown():
    srv.stop()


if __name__ == "__main__":
    suite.main()
