#!/usr/bin/env python3
"""berth on S3 (moto, behind the project's SigV4 verifier): what only S3
shows. Chunked uploads in 1 MiB chunks (staged tails) and 8 MiB chunks
(parts cut at chunksize), the objects left in the bucket, kill -9 and
resume, resume through a second instance on the same bucket, part sessions
with parallel parts, aborts that leave no multipart upload, S3 going away
mid-upload (503, then resume), and a wrong signature failing.

Always runs on S3 (BERTH_TEST_BACKEND is set here); SKIPPED (exit 77) when
moto is not installed."""

import json
import os
import sys
import threading
import urllib.error
import urllib.request

os.environ["BERTH_TEST_BACKEND"] = "s3"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import berthtest  # noqa: E402
import s3moto  # noqa: E402
from berthtest import (Berth, Suite, blob_url, digest, expect_error, finish_upload, patch_chunk,  # noqa: E402
                       rand_bytes, start_upload, upload_blob, uuid_of)
from test_sessions import AuthBerth  # noqa: E402

MIB = 1 << 20
suite = Suite("test_s3_flows")
# Requests of the real access key this file makes fail on purpose (a
# tampered presigned URL); any other rejection is a signing bug.
expected_rejects = [0]


def root_of(srv):
    return srv.config["storage"]["s3"]["rootdirectory"].strip("/") + "/"


def check_blob(name, srv, repo, data, headers=None):
    d = digest(data)
    r = srv.client().get(blob_url(repo, d), headers=headers)
    suite.eq("%s: GET status" % name, r.status, 200)
    suite.check("%s: GET body byte-exact" % name, r.body == data, "%d bytes" % len(r.body))
    h = dict(headers or {})
    h["Range"] = "bytes=%d-%d" % (MIB - 3, 3 * MIB + 5)
    r = srv.client().get(blob_url(repo, d), headers=h)
    suite.eq("%s: Range GET status" % name, r.status, 206)
    suite.check("%s: Range GET body" % name, r.body == data[MIB - 3:3 * MIB + 6], "%d bytes" % len(r.body))


def check_bucket_after(name, srv, uuid, data):
    """The blob is the session's completed object, named by a link; nothing
    of the session is left."""
    peer = berthtest.s3_peer()
    root = root_of(srv)
    hexd = digest(data)[7:]
    suite.eq("%s: no multipart upload left" % name, peer.multipart_uploads(root), [])
    suite.eq("%s: no session objects left" % name, peer.keys(root + "uploads/" + uuid + "/"), [])
    link = json.loads(peer.get(root + "blobs/sha256/%s/%s/link" % (hexd[:2], hexd)))
    suite.eq("%s: link names the session's own object" % name, link, {"key": "blobs/data/" + uuid,
                                                                          "size": len(data)})
    suite.check("%s: the object holds the blob" % name, peer.get(root + "blobs/data/" + uuid) == data)


def chunked(name, chunk, size, repo, unstaged=False):
    """unstaged: every whole chunk must go to S3 as a part, nothing staged
    (chunks over chunksize set the session's part size)."""
    srv = Berth(suite).start()
    data = rand_bytes(size)
    c = srv.client()
    r, loc, _ = start_upload(c, repo)
    suite.require_eq("%s: start" % name, r.status, 202)
    off = 0
    while off < size:
        r = patch_chunk(c, loc, data[off:off + chunk], off)
        if not suite.eq("%s: PATCH at %d" % (name, off), r.status, 202):
            return
        if unstaged and off + chunk <= size:
            staged = berthtest.s3_peer().keys(root_of(srv) + "uploads/" + uuid_of(loc) + "/tail/")
            suite.eq("%s: nothing staged after the whole chunk at %d" % (name, off), staged, [])
        off += chunk
    r = finish_upload(c, loc, digest(data))
    suite.eq("%s: PUT" % name, r.status, 201)
    check_blob(name, srv, repo, data)
    check_bucket_after(name, srv, uuid_of(loc), data)
    srv.stop()


@suite.test
def chunked_1mib_chunks_are_staged():
    chunked("1MiB chunks", MIB, 12 * MIB + 4321, "s3/small")


@suite.test
def chunked_8mib_chunks_become_parts():
    # chunksize is 5 MiB here: 8 MiB chunks become 8 MiB parts.
    chunked("8MiB chunks", 8 * MIB, 40 * MIB + 17, "s3/large", unstaged=True)


@suite.test
def kill9_and_resume():
    srv = Berth(suite).start()
    data = rand_bytes(14 * MIB + 99)
    c = srv.client()
    r, loc, _ = start_upload(c, "s3/crash")
    for off in range(0, 7 * MIB, MIB):
        suite.require_eq("PATCH before the kill", patch_chunk(c, loc, data[off:off + MIB], off).status, 202)
    srv.kill9()
    srv.start()
    c = srv.client()
    r = c.get(loc)
    suite.eq("status after kill -9", r.status, 204)
    suite.eq("Range after kill -9", r.h("range"), "0-%d" % (7 * MIB - 1))
    off = 7 * MIB
    while off < len(data):
        suite.require_eq("PATCH after restart", patch_chunk(c, loc, data[off:off + 3 * MIB], off).status, 202)
        off += 3 * MIB
    suite.eq("PUT after restart", finish_upload(c, loc, digest(data)).status, 201)
    check_blob("after kill -9", srv, "s3/crash", data)
    srv.stop()


@suite.test
def resume_on_a_second_instance():
    a = Berth(suite).start()
    b = Berth(suite, config={"storage": {"s3": {"rootdirectory": a.config["storage"]["s3"]["rootdirectory"]}}})
    b.start()
    data = rand_bytes(9 * MIB + 5)
    r, loc, _ = start_upload(a.client(), "s3/shared")
    suite.require_eq("start on A", r.status, 202)
    suite.require_eq("PATCH on A", patch_chunk(a.client(), loc, data[:6 * MIB], 0).status, 202)
    r = b.client().get(loc)
    suite.eq("B sees the session", r.status, 204)
    suite.eq("B sees its offset", r.h("range"), "0-%d" % (6 * MIB - 1))
    suite.eq("PATCH on B", patch_chunk(b.client(), loc, data[6 * MIB:], 6 * MIB).status, 202)
    suite.eq("PUT on B", finish_upload(b.client(), loc, digest(data)).status, 201)
    check_blob("read through A", a, "s3/shared", data)
    a.stop()
    b.stop()


@suite.test
def parts_in_parallel_map_to_s3_parts():
    srv = AuthBerth(suite).start()
    ps = 5 * MIB
    data = rand_bytes(4 * ps + 1234)
    s = srv.sessions()
    r = s.create(5, 1 * MIB)
    suite.eq("part_size under 5 MiB with several parts: 400", r.status, 400)
    suite.check("the 400 explains the S3 limit", b"5 MiB" in r.body, r.body[:300])
    r = s.create(5, ps, repository="s3/parts", digest=digest(data))
    suite.require_eq("create", r.status, 201)
    sid = r.json()["session_id"]
    order = [4, 2, 5, 1, 3]
    errs = []

    def send(n):
        sc = srv.sessions()
        st = sc.put(sid, n, data[(n - 1) * ps:n * ps]).status
        if st not in (200, 201, 204):
            errs.append((n, st))
        sc.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in order]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    suite.eq("every part stored", errs, [])
    peer = berthtest.s3_peer()
    suite.eq("one multipart upload while parts arrive", len(peer.multipart_uploads(root_of(srv))), 1)
    r = s.complete(sid)
    suite.check("complete", r.status in (200, 201), "%d %s" % (r.status, r.body[:300]))
    suite.eq("no multipart upload after completion", peer.multipart_uploads(root_of(srv)), [])
    check_blob("parts", srv, "s3/parts", data, headers={"Authorization": s.auth})
    s.close()
    srv.stop()


@suite.test
def parts_resume_after_kill9_and_complete():
    """Parts sent before a kill -9 cannot be hashed from memory afterwards:
    completion reads them back, which on S3 means completing the upload
    first."""
    srv = AuthBerth(suite).start()
    ps = 5 * MIB
    data = rand_bytes(3 * ps - 77)
    s = srv.sessions()
    r = s.create(3, ps, repository="s3/partscrash", digest=digest(data))
    suite.require_eq("create", r.status, 201)
    sid = r.json()["session_id"]
    for n in (3, 2):
        suite.require_eq("part %d before the kill" % n, s.put(sid, n, data[(n - 1) * ps:n * ps]).status in
                         (200, 201, 204), True)
    srv.kill9()
    srv.start()
    s = srv.sessions()
    suite.require_eq("part 1 after the restart", s.put(sid, 1, data[:ps]).status in (200, 201, 204), True)
    r = s.complete(sid)
    suite.check("complete after the restart", r.status in (200, 201), "%d %s" % (r.status, r.body[:300]))
    check_blob("parts after kill -9", srv, "s3/partscrash", data, headers={"Authorization": s.auth})
    suite.eq("no multipart upload left", berthtest.s3_peer().multipart_uploads(root_of(srv)), [])
    s.close()
    srv.stop()


@suite.test
def aborts_leave_no_multipart_upload():
    srv = Berth(suite).start()
    peer = berthtest.s3_peer()
    root = root_of(srv)
    c = srv.client()
    r, loc, _ = start_upload(c, "s3/abort")
    suite.require_eq("PATCH 6 MiB (one part sent)", patch_chunk(c, loc, rand_bytes(6 * MIB), 0).status, 202)
    suite.eq("a multipart upload is open", len(peer.multipart_uploads(root)), 1)
    suite.eq("DELETE the OCI session", c.delete(loc).status, 204)
    suite.eq("OCI abort: ListMultipartUploads is empty", peer.multipart_uploads(root), [])
    suite.eq("OCI abort: no session objects", peer.keys(root + "uploads/"), [])

    srv.stop()
    srv = AuthBerth(suite).start()
    root = root_of(srv)
    s = srv.sessions()
    sid = s.create(2, 5 * MIB).json()["session_id"]
    suite.require_eq("part 1", s.put(sid, 1, rand_bytes(5 * MIB)).status in (200, 201, 204), True)
    suite.eq("parts abort", s.abort(sid).status in (200, 204), True)
    suite.eq("parts abort: ListMultipartUploads is empty", peer.multipart_uploads(root), [])
    s.close()
    srv.stop()


@suite.test
def s3_down_mid_upload_answers_503_then_resumes():
    peer = berthtest.s3_peer()
    gate = s3moto.TcpGate(peer.proxy.port).up()
    srv = Berth(suite, config={"storage": {"s3": {"regionendpoint": "http://127.0.0.1:%d" % gate.port,
                                                  "maxretries": 1, "connecttimeout": "1s"}}}).start()
    data = rand_bytes(7 * MIB)
    c = srv.client()
    r, loc, _ = start_upload(c, "s3/down")
    suite.require_eq("PATCH while S3 is up", patch_chunk(c, loc, data[:3 * MIB], 0).status, 202)
    gate.down()
    r = srv.client().patch(loc, data[3 * MIB:6 * MIB], {"Content-Type": "application/octet-stream",
                                                          "Content-Range": "%d-%d" % (3 * MIB, 6 * MIB - 1)})
    expect_error(suite, "PATCH while S3 is down", r, 503, None)
    r = srv.client().get(loc)
    suite.eq("status while S3 is down: 503", r.status, 503)
    gate.up()
    r = srv.client().get(loc)
    suite.eq("status once S3 is back", r.status, 204)
    suite.eq("the record kept its offset", r.h("range"), "0-%d" % (3 * MIB - 1))
    c = srv.client()
    suite.eq("PATCH resumes", patch_chunk(c, loc, data[3 * MIB:], 3 * MIB).status, 202)
    suite.eq("PUT", finish_upload(c, loc, digest(data)).status, 201)
    check_blob("after S3 came back", srv, "s3/down", data)
    srv.stop()
    gate.down()


@suite.test
def a_wrong_signature_fails():
    peer = berthtest.s3_peer()
    before = peer.proxy.stats.snapshot()["rejected_by_key"].get(s3moto.WRONG_ACCESS, 0)
    srv = Berth(suite, config={"storage": {"s3": {"accesskey": s3moto.WRONG_ACCESS,
                                                  "secretkey": "not-the-secret"}}}).start()
    r, loc, _ = start_upload(srv.client(), "s3/badsig")
    suite.check("upload start refused", r.status >= 500, "status %d" % r.status)
    after = peer.proxy.stats.snapshot()["rejected_by_key"].get(s3moto.WRONG_ACCESS, 0)
    suite.check("the verifier rejected the signature", after > before, "%d -> %d" % (before, after))
    srv.stop()


@suite.test
def redirect_answers_307_to_a_presigned_url():
    srv = Berth(suite, config={"storage": {"s3": {"redirect": True}}}).start()
    data = rand_bytes(3 * MIB + 5)
    suite.require_eq("upload", upload_blob(srv.client(), "s3/redir", data, chunk=MIB).status, 201)
    r = srv.client().get(blob_url("s3/redir", digest(data)))
    suite.eq("GET: 307", r.status, 307)
    loc = r.h("location") or ""
    suite.check("Location is a presigned URL of the bucket", loc.startswith(berthtest.s3_peer().endpoint) and
                "X-Amz-Signature=" in loc, loc)
    try:
        body = urllib.request.urlopen(loc, timeout=30).read()
    except urllib.error.HTTPError as e:
        body = ("HTTP %d" % e.code).encode()
    suite.check("the presigned URL serves the blob (signature verified)", body == data, body[:100])
    r = srv.client().head(blob_url("s3/redir", digest(data)))
    suite.eq("HEAD is answered by berth", r.status, 200)
    sig = loc.rsplit("=", 1)[1]
    tampered = loc[:-len(sig)] + ("0" if sig[0] != "0" else "1") + sig[1:]
    expected_rejects[0] += 1
    try:
        urllib.request.urlopen(tampered, timeout=30).read()
        status = 200
    except urllib.error.HTTPError as e:
        status = e.code
    suite.eq("a tampered presigned URL is refused", status, 403)
    srv.stop()


@suite.test
def legitimate_requests_all_passed_the_verifier():
    st = berthtest.s3_peer().proxy.stats.snapshot()
    suite.eq("requests of the real key rejected", st["rejected_by_key"].get(s3moto.ACCESS, 0), expected_rejects[0])
    suite.check("the verifier saw requests", st["requests"] > 100, str(st["requests"]))


if __name__ == "__main__":
    suite.main()
