#!/usr/bin/env python3
"""The registry API of the distribution-spec against the real binary:
manifests (OCI and Docker types, validation, Accept, size limit), tags and
catalog pagination with Link, subject/OCI-Subject and referrers with
artifactType filtering, deletes switched by storage.delete.enabled, blob
Range reads, cross-repository mounts, and `berth gc` while the server
serves."""

import http.client
import json
import os
import socket
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import Berth, Suite, curl, digest, expect_error, run_berth, upload_blob  # noqa: E402

suite = Suite("test_registry")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def enc(obj):
    return json.dumps(obj, sort_keys=True).encode()


def desc(mt, data):
    return {"mediaType": mt, "digest": digest(data), "size": len(data)}


def push_blob(c, repo, data):
    r = upload_blob(c, repo, data)
    suite.require("upload %d bytes to %s" % (len(data), repo), r.status == 201, repr(r))
    return digest(data)


def image(c, repo, seed, mt=OCI_MANIFEST, config_mt=OCI_CONFIG, extra=None, upload=True):
    """An image manifest of a fresh config and layer (uploaded to repo)."""
    cfg = enc({"architecture": "amd64", "os": "linux", "seed": seed})
    layer = ("layer of %s" % seed).encode() * 50
    if upload:
        push_blob(c, repo, cfg)
        push_blob(c, repo, layer)
    m = {"schemaVersion": 2, "mediaType": mt, "config": desc(config_mt, cfg), "layers": [desc(LAYER, layer)]}
    m.update(extra or {})
    return enc(m)


def put_manifest(c, repo, ref, body, mt=OCI_MANIFEST):
    return c.put("/v2/%s/manifests/%s" % (repo, ref), body, {"Content-Type": mt} if mt else {"Content-Type": ""})


@suite.test
def manifests():
    srv = Berth(suite, config={"validation": {"manifests": {"maxsize": "64KiB"}}}).start()
    c = srv.client()
    body = image(c, "lib/app", "one")
    d = digest(body)

    r = put_manifest(c, "lib/app", "v1", body)
    suite.eq("PUT by tag: 201", r.status, 201)
    suite.eq("PUT: Location names the manifest by digest", r.h("location"), "/v2/lib/app/manifests/" + d)
    suite.eq("PUT: Docker-Content-Digest", r.h("docker-content-digest"), d)
    suite.eq("PUT: no OCI-Subject without a subject", r.h("oci-subject"), None)
    for ref in ("v1", d):
        r = c.get("/v2/lib/app/manifests/" + ref)
        suite.eq("GET %s: 200 with the exact bytes" % ref[:10], (r.status, r.body), (200, body))
        suite.eq("GET %s: Content-Type as pushed" % ref[:10], r.h("content-type"), OCI_MANIFEST)
        suite.eq("GET %s: Docker-Content-Digest" % ref[:10], r.h("docker-content-digest"), d)
        r = c.head("/v2/lib/app/manifests/" + ref)
        suite.eq("HEAD %s: 200, length, digest, no body" % ref[:10],
                 (r.status, r.h("content-length"), r.h("docker-content-digest"), r.body),
                 (200, str(len(body)), d, b""))
    r = put_manifest(c, "lib/app", d, body)
    suite.eq("PUT by its digest: 201", r.status, 201)
    res = curl("http://127.0.0.1:%d" % srv.port, [
        {"method": "GET", "path": "/v2/lib/app/manifests/v1", "headers": {"Accept": OCI_MANIFEST}},
        {"method": "PUT", "path": "/v2/lib/app/manifests/h2", "body": body, "headers": {"Content-Type": OCI_MANIFEST}},
    ], "h2c", srv.dir)
    suite.eq("h2c GET: 200, the bytes, the digest", (res[0].status, res[0].body, res[0].h("docker-content-digest")),
             (200, body, d))
    suite.eq("h2c PUT: 201", (res[1].status, res[1].h("docker-content-digest")), (201, d))

    # Docker types are served with their own Content-Type; Accept is honoured.
    dbody = image(c, "lib/app", "docker", mt=DOCKER_MANIFEST, config_mt=DOCKER_CONFIG)
    r = put_manifest(c, "lib/app", "docker", dbody, DOCKER_MANIFEST)
    suite.eq("PUT a Docker schema2 manifest: 201", r.status, 201)
    lbody = enc({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        dict(desc(DOCKER_MANIFEST, dbody), platform={"os": "linux", "architecture": "amd64"})]})
    r = put_manifest(c, "lib/app", "list", lbody, DOCKER_LIST)
    suite.eq("PUT a Docker manifest list: 201", r.status, 201)
    r = c.get("/v2/lib/app/manifests/list", {"Accept": DOCKER_LIST})
    suite.eq("GET the list: its Content-Type", (r.status, r.h("content-type")), (200, DOCKER_LIST))
    r = c.get("/v2/lib/app/manifests/docker", {"Accept": "%s;q=0.9, %s" % (OCI_MANIFEST, DOCKER_MANIFEST)})
    suite.eq("GET with the type in a list of Accept values: 200", (r.status, r.h("content-type")),
             (200, DOCKER_MANIFEST))
    r = c.get("/v2/lib/app/manifests/docker", {"Accept": OCI_MANIFEST})
    expect_error(suite, "GET with an Accept that excludes the type", r, 404, "MANIFEST_UNKNOWN")
    r = c.get("/v2/lib/app/manifests/docker", {"Accept": "*/*"})
    suite.eq("GET with Accept */*: 200", r.status, 200)

    # Errors.
    r = c.get("/v2/lib/app/manifests/nope")
    expect_error(suite, "GET an unknown tag", r, 404, "MANIFEST_UNKNOWN")
    r = c.head("/v2/lib/app/manifests/nope")
    suite.eq("HEAD an unknown tag: 404 without a body", (r.status, r.body), (404, b""))
    r = c.get("/v2/lib/other/manifests/" + d)
    expect_error(suite, "GET a manifest of another repository", r, 404, "MANIFEST_UNKNOWN")
    r = c.get("/v2/lib/app/manifests/sha256:xyz")
    expect_error(suite, "GET a malformed digest", r, 400, "DIGEST_INVALID")
    missing = image(c, "lib/app", "missing", upload=False)
    r = put_manifest(c, "lib/app", "v2", missing)
    expect_error(suite, "PUT naming blobs the repository lacks", r, 400, "MANIFEST_BLOB_UNKNOWN")
    j = r.json() or {}
    suite.eq("MANIFEST_BLOB_UNKNOWN names the digest in its detail",
             j.get("errors", [{}])[0].get("detail", {}).get("digest"), json.loads(missing)["config"]["digest"])
    other = image(c, "lib/elsewhere", "elsewhere")
    r = put_manifest(c, "lib/app", "v3", other)
    expect_error(suite, "PUT naming blobs only another repository has", r, 400, "MANIFEST_BLOB_UNKNOWN")
    r = put_manifest(c, "lib/app", "v4", b"{not json")
    expect_error(suite, "PUT invalid JSON", r, 400, "MANIFEST_INVALID")
    r = put_manifest(c, "lib/app", "v4", b"")
    expect_error(suite, "PUT an empty body", r, 400, "MANIFEST_INVALID")
    suite.check("an empty body is named as such", "empty" in ((r.json() or {}).get("errors", [{}])[0].get("message", "")),
                repr(r.body[:300]))
    r = put_manifest(c, "lib/app", "v4", enc({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}))
    expect_error(suite, "PUT an image manifest without config", r, 400, "MANIFEST_INVALID")
    r = put_manifest(c, "lib/app", "v4", body, OCI_INDEX)
    expect_error(suite, "PUT with a Content-Type that contradicts mediaType", r, 400, "MANIFEST_INVALID")
    r = put_manifest(c, "lib/app", "v4", enc({"schemaVersion": 1, "name": "x"}),
                     "application/vnd.docker.distribution.manifest.v1+prettyjws")
    expect_error(suite, "PUT a schema1 manifest", r, 400, "MANIFEST_INVALID")
    r = put_manifest(c, "lib/app", ".bad-tag", body)
    expect_error(suite, "PUT to an invalid tag", r, 400, "MANIFEST_INVALID")
    r = put_manifest(c, "lib/app", "a" * 129, body)
    expect_error(suite, "PUT to a 129-character tag", r, 400, "MANIFEST_INVALID")
    r = put_manifest(c, "lib/app", "a" * 300, body)
    expect_error(suite, "PUT to a 300-character tag", r, 400, "MANIFEST_INVALID")
    r = c.get("/v2/lib/app/manifests/" + "a" * 300)
    expect_error(suite, "GET a 300-character tag", r, 404, "MANIFEST_UNKNOWN")
    r = put_manifest(c, "lib/app", "sha256:" + "0" * 64, body)
    expect_error(suite, "PUT by a digest that is not the body's", r, 400, "DIGEST_INVALID")
    big = enc({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"pad": "x" * 70000}})
    r = put_manifest(c, "lib/app", "big", big)
    expect_error(suite, "PUT over validation.manifests.maxsize", r, 413, "SIZE_INVALID")
    r = c.request("PATCH", "/v2/lib/app/manifests/v1", b"x")
    expect_error(suite, "PATCH a manifest", r, 405, "UNSUPPORTED")
    r = c.delete("/v2/lib/app/manifests/" + d)
    expect_error(suite, "DELETE with deletes disabled", r, 405, "UNSUPPORTED")
    r = c.delete("/v2/lib/app/blobs/" + json.loads(body)["config"]["digest"])
    expect_error(suite, "blob DELETE with deletes disabled", r, 405, "UNSUPPORTED")
    r = c.get("/v2/lib/app/manifests/v1")
    suite.eq("the manifest is still there", r.status, 200)
    srv.stop()
    srv.check_sanitizer()


def collect_pages(c, first, key):
    """Follows Link headers from `first`; returns (pages, items)."""
    pages, items, url = [], [], first
    for _ in range(50):
        r = c.get(url)
        if r.status != 200:
            pages.append(r.status)
            break
        pages.append(r.json()[key])
        items += r.json()[key]
        link = r.h("link")
        if link is None:
            break
        suite.check("Link is <url>; rel=\"next\"", link.startswith("<") and link.endswith('>; rel="next"'), link)
        url = link[1:link.index(">")]
    return pages, items


@suite.test
def tags_and_catalog_pagination():
    srv = Berth(suite).start()
    c = srv.client()
    body = image(c, "lib/app", "tags")
    tags = ["v1", "v2", "latest", "V3", "1.0", "v10", "_under", "a.b-c"]
    for t in tags:
        put_manifest(c, "lib/app", t, body)
    r = c.get("/v2/lib/app/tags/list")
    suite.eq("all tags, sorted", (r.status, r.json()), (200, {"name": "lib/app", "tags": sorted(tags)}))
    suite.eq("no Link without n", r.h("link"), None)
    pages, items = collect_pages(c, "/v2/lib/app/tags/list?n=3", "tags")
    suite.eq("n=3: pages of 3, 3, 2", [len(p) for p in pages], [3, 3, 2])
    suite.eq("n=3: the pages make the whole sorted list", items, sorted(tags))
    r = c.get("/v2/lib/app/tags/list?n=3")
    suite.eq("Link of the first page", r.h("link"),
             '</v2/lib/app/tags/list?n=3&last=%s>; rel="next"' % urllib.parse.quote(sorted(tags)[2]))
    r = c.get("/v2/lib/app/tags/list?n=2&last=v1")
    suite.eq("last=v1: what follows", r.json()["tags"], [t for t in sorted(tags) if t > "v1"][:2])
    r = c.get("/v2/lib/app/tags/list?n=0")
    suite.eq("n=0: an empty list and no Link", (r.status, r.json()["tags"], r.h("link")), (200, [], None))
    r = c.get("/v2/lib/app/tags/list?n=100")
    suite.eq("n larger than the list: all, no Link", (len(r.json()["tags"]), r.h("link")), (len(tags), None))
    r = c.get("/v2/lib/app/tags/list?n=-1")
    expect_error(suite, "n=-1", r, 400, None)
    r = c.get("/v2/lib/app/tags/list?n=abc")
    expect_error(suite, "n=abc", r, 400, None)
    r = c.get("/v2/lib/none/tags/list")
    expect_error(suite, "tags of an unknown repository", r, 404, "NAME_UNKNOWN")
    r = c.get("/v2/BAD/tags/list")
    expect_error(suite, "tags of an invalid name", r, 400, "NAME_INVALID")

    for repo in ("lib/b", "lib", "a/b/c", "z"):
        put_manifest(c, repo, "t", image(c, repo, "cat-" + repo))
    want = sorted(["lib/app", "lib/b", "lib", "a/b/c", "z"])
    r = c.get("/v2/_catalog")
    suite.eq("catalog: every repository with a manifest, sorted", r.json(), {"repositories": want})
    pages, items = collect_pages(c, "/v2/_catalog?n=2", "repositories")
    suite.eq("catalog n=2: pages of 2, 2, 1", [len(p) for p in pages], [2, 2, 1])
    suite.eq("catalog n=2: the whole list", items, want)
    r = c.post("/v2/_catalog")
    expect_error(suite, "POST /v2/_catalog", r, 405, "UNSUPPORTED")
    for path in ("/v2/_catalog", "/v2/lib/app/tags/list?n=2", "/v2/lib/app/referrers/sha256:" + "0" * 64):
        g, h = c.get(path), c.head(path)
        suite.eq("HEAD %s: the GET's status, type and length, no body" % path,
                 (h.status, h.h("content-type"), h.h("content-length"), h.body),
                 (g.status, g.h("content-type"), str(len(g.body)), b""))
    h = c.head("/v2/lib/none/tags/list")
    suite.eq("HEAD tags of an unknown repository: 404, no body", (h.status, h.body), (404, b""))
    r = c.get("/v2/_catalog")
    suite.eq("the connection still serves after the HEADs", r.status, 200)
    srv.stop()
    srv.check_sanitizer()


@suite.test
def referrers():
    srv = Berth(suite, config={"storage": {"delete": {"enabled": True}}}).start()
    c = srv.client()
    subject = image(c, "lib/app", "subject")
    sd = digest(subject)
    put_manifest(c, "lib/app", "v1", subject)
    empty = push_blob(c, "lib/app", b"{}")
    sig = enc({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
               "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
               "layers": [], "subject": desc(OCI_MANIFEST, subject), "annotations": {"org.example": "yes"}})
    r = put_manifest(c, "lib/app", digest(sig), sig)
    suite.eq("PUT with a subject: 201", r.status, 201)
    suite.eq("PUT with a subject: OCI-Subject", r.h("oci-subject"), sd)
    sbom = image(c, "lib/app", "sbom", config_mt="application/vnd.example.sbom",
                 extra={"subject": desc(OCI_MANIFEST, subject)})
    r = put_manifest(c, "lib/app", digest(sbom), sbom)
    suite.eq("a second referrer: OCI-Subject", r.h("oci-subject"), sd)
    idx = enc({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc(OCI_MANIFEST, sbom)],
               "subject": desc(OCI_MANIFEST, subject)})
    r = put_manifest(c, "lib/app", digest(idx), idx, OCI_INDEX)
    suite.eq("an index with a subject: OCI-Subject", r.h("oci-subject"), sd)

    r = c.get("/v2/lib/app/referrers/" + sd)
    suite.eq("referrers: 200, an OCI index", (r.status, r.h("content-type")), (200, OCI_INDEX))
    j = r.json() or {}
    suite.eq("referrers: schemaVersion and mediaType", (j.get("schemaVersion"), j.get("mediaType")), (2, OCI_INDEX))
    got = {m["digest"]: m for m in j.get("manifests", [])}
    suite.eq("referrers: the three referrers", sorted(got), sorted([digest(sig), digest(sbom), digest(idx)]))
    suite.eq("the signature's descriptor", got.get(digest(sig)),
             {"mediaType": OCI_MANIFEST, "digest": digest(sig), "size": len(sig),
              "artifactType": "application/vnd.example.sig", "annotations": {"org.example": "yes"}})
    suite.eq("an image without artifactType: the config's media type",
             got.get(digest(sbom), {}).get("artifactType"), "application/vnd.example.sbom")
    suite.eq("an index without artifactType: none", "artifactType" in got.get(digest(idx), {"artifactType": 1}),
             False)
    suite.eq("no OCI-Filters-Applied without a filter", r.h("oci-filters-applied"), None)
    r = c.get("/v2/lib/app/referrers/%s?artifactType=%s" % (sd, urllib.parse.quote("application/vnd.example.sig",
                                                                                    safe="")))
    suite.eq("filtered: only the signature", [m["digest"] for m in r.json()["manifests"]], [digest(sig)])
    suite.eq("filtered: OCI-Filters-Applied", r.h("oci-filters-applied"), "artifactType")
    r = c.get("/v2/lib/app/referrers/%s?artifactType=application/none" % sd)
    suite.eq("filtered to nothing: empty", (r.status, r.json()["manifests"]), (200, []))
    r = c.get("/v2/lib/app/referrers/sha256:" + "1" * 64)
    suite.eq("unknown subject: 200 and an empty index", (r.status, r.json()),
             (200, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}))
    r = c.get("/v2/lib/app/referrers/not-a-digest")
    expect_error(suite, "referrers of a malformed digest", r, 400, "DIGEST_INVALID")
    r = c.delete("/v2/lib/app/manifests/" + digest(sig))
    suite.eq("DELETE a referrer: 202", r.status, 202)
    r = c.get("/v2/lib/app/referrers/" + sd)
    suite.eq("a deleted referrer is no longer listed", sorted(m["digest"] for m in r.json()["manifests"]),
             sorted([digest(sbom), digest(idx)]))
    srv.stop()
    srv.check_sanitizer()


@suite.test
def deletes():
    srv = Berth(suite, config={"storage": {"delete": {"enabled": True}}}).start()
    c = srv.client()
    body = image(c, "lib/app", "del")
    d = digest(body)
    put_manifest(c, "lib/app", "v1", body)
    put_manifest(c, "lib/app", "v2", body)
    r = c.delete("/v2/lib/app/manifests/v1")
    suite.eq("DELETE a tag: 202", r.status, 202)
    suite.eq("the tag is gone", c.get("/v2/lib/app/manifests/v1").status, 404)
    suite.eq("the manifest stays under its digest", c.get("/v2/lib/app/manifests/" + d).status, 200)
    r = c.delete("/v2/lib/app/manifests/v1")
    expect_error(suite, "DELETE the tag again", r, 404, "MANIFEST_UNKNOWN")
    r = c.delete("/v2/lib/app/manifests/" + d)
    suite.eq("DELETE by digest: 202 with Docker-Content-Digest", (r.status, r.h("docker-content-digest")), (202, d))
    suite.eq("the manifest is gone", c.get("/v2/lib/app/manifests/" + d).status, 404)
    suite.eq("its other tag is gone too", c.get("/v2/lib/app/manifests/v2").status, 404)
    r = c.delete("/v2/lib/app/manifests/" + d)
    expect_error(suite, "DELETE by digest again", r, 404, "MANIFEST_UNKNOWN")

    layer = json.loads(body)["layers"][0]["digest"]
    r = c.delete("/v2/lib/app/blobs/" + layer)
    suite.eq("DELETE a blob: 202", r.status, 202)
    suite.eq("the blob HEADs 404 in that repository", c.head("/v2/lib/app/blobs/" + layer).status, 404)
    r = c.delete("/v2/lib/app/blobs/" + layer)
    expect_error(suite, "DELETE the blob again", r, 404, "BLOB_UNKNOWN")
    r = c.delete("/v2/lib/app/blobs/sha256:zz")
    expect_error(suite, "DELETE a malformed digest", r, 400, "DIGEST_INVALID")
    srv.stop()
    srv.check_sanitizer()


@suite.test
def blob_range_and_mounts():
    srv = Berth(suite).start()
    c = srv.client()
    data = bytes(range(256)) * 40
    d = push_blob(c, "lib/src", data)
    r = c.get("/v2/lib/src/blobs/" + d, {"Range": "bytes=100-299"})
    suite.eq("Range: 206 with the bytes", (r.status, r.body), (206, data[100:300]))
    suite.eq("Range: Content-Range", r.h("content-range"), "bytes 100-299/%d" % len(data))
    r = c.get("/v2/lib/src/blobs/" + d, {"Range": "bytes=-10"})
    suite.eq("suffix Range", (r.status, r.body), (206, data[-10:]))
    r = c.get("/v2/lib/src/blobs/" + d, {"Range": "bytes=99999-"})
    suite.eq("unsatisfiable Range: 416", r.status, 416)

    r = c.post("/v2/lib/dst/blobs/uploads/?mount=%s&from=lib/src" % d)
    suite.eq("mount from a repository that has it: 201", (r.status, r.h("location")),
             (201, "/v2/lib/dst/blobs/" + d))
    r = c.post("/v2/lib/auto/blobs/uploads/?mount=%s" % d)
    suite.eq("mount without from of a stored blob: 201", (r.status, r.h("docker-content-digest")), (201, d))
    suite.eq("the mounted blob reads", c.get("/v2/lib/auto/blobs/" + d).body, data)
    r = c.post("/v2/lib/x/blobs/uploads/?mount=%s&from=lib/none" % d)
    suite.eq("mount from a repository without it: 202, an upload", r.status, 202)
    r = c.post("/v2/lib/x/blobs/uploads/?mount=sha256:" + "2" * 64)
    suite.eq("mount of an unknown blob: 202, an upload", r.status, 202)
    srv.stop()
    srv.check_sanitizer()


@suite.test
def large_blob_reads():
    """Blob GETs that span several read slices (2 MiB each, two in flight):
    whole, ranged across slice edges, over h2c, a client leaving half way,
    and a read failing after the headers went out."""
    MiB = 1 << 20
    data = os.urandom(5 * MiB + 12345)
    srv = Berth(suite).start()
    c = srv.client()
    d = push_blob(c, "lib/big", data)
    r = c.get("/v2/lib/big/blobs/" + d)
    suite.eq("GET 5 MiB: every byte", (r.status, len(r.body), r.body == data), (200, len(data), True))
    r = c.get("/v2/lib/big/blobs/" + d, {"Range": "bytes=1000-%d" % (4 * MiB + 99)})
    suite.eq("Range across slice edges", (r.status, r.body == data[1000:4 * MiB + 100]), (206, True))
    r = c.get("/v2/lib/big/blobs/" + d, {"Range": "bytes=%d-" % (2 * MiB)})
    suite.eq("Range from a slice edge to the end", (r.status, r.body == data[2 * MiB:]), (206, True))
    res = curl("http://127.0.0.1:%d" % srv.port, [{"method": "GET", "path": "/v2/lib/big/blobs/" + d}], "h2c",
               srv.dir)[0]
    suite.eq("h2c GET 5 MiB: every byte", (res.status, res.body == data), (200, True))
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        s.sendall(("GET /v2/lib/big/blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n" % d).encode())
        s.recv(100000)
        s.close()
    r = c.get("/v2/lib/big/blobs/" + d)
    suite.eq("after clients left half way: GET still whole", (r.status, r.body == data), (200, True))
    srv.stop()
    srv.check_sanitizer()

    os.environ["BERTH_FAULT"] = "blob_read:-6:1"
    try:
        srv = Berth(suite).start()
    finally:
        del os.environ["BERTH_FAULT"]
    c = srv.client()
    d = push_blob(c, "lib/big", data)
    try:
        r = c.get("/v2/lib/big/blobs/" + d)
        broken = r.status != 200 or len(r.body) != len(data)
    except (http.client.HTTPException, OSError):
        broken = True
    suite.check("a failed read cuts the response short (never a short 200 that looks whole)", broken)
    r = c.get("/v2/lib/big/blobs/" + d)
    suite.eq("the next GET is whole", (r.status, r.body == data), (200, True))
    suite.check("the failed read is logged", "injected fault" in srv.stderr(), srv.stderr_tail(500))
    srv.stop()
    srv.check_sanitizer()


@suite.test
def gc_while_serving():
    srv = Berth(suite, config={"storage": {"delete": {"enabled": True}}}).start()
    c = srv.client()
    keep = image(c, "lib/app", "keep")
    drop = image(c, "lib/app", "drop")
    put_manifest(c, "lib/app", "keep", keep)
    put_manifest(c, "lib/app", "drop", drop)
    orphan = push_blob(c, "lib/app", b"nobody references me")
    c.delete("/v2/lib/app/manifests/" + digest(drop))
    dropped = [digest(drop), json.loads(drop)["config"]["digest"], json.loads(drop)["layers"][0]["digest"], orphan]
    kept = [json.loads(keep)["config"]["digest"], json.loads(keep)["layers"][0]["digest"]]

    rc, out, err = run_berth(["gc", "-c", srv.config_path])
    suite.eq("gc with the default grace period: exit 0", rc, 0)
    suite.check("gc with the default grace: nothing is young enough to remove", "removed 0 blob(s)" in out, out + err)
    rc, out, err = run_berth(["gc", "-c", srv.config_path, "--dry-run", "--grace", "0s"])
    suite.eq("gc --dry-run: exit 0", rc, 0)
    suite.check("gc --dry-run reports what it would remove",
                all(("would remove blob %s" % d) in out for d in dropped) and "would remove 4 blob(s)" in out, out + err)
    suite.eq("gc --dry-run removed nothing", [c.head("/v2/lib/app/blobs/" + d).status for d in dropped[1:]],
             [200] * 3)
    rc, out, err = run_berth(["gc", "-c", srv.config_path, "--grace", "0s"])
    suite.eq("gc: exit 0", rc, 0)
    suite.check("gc: removes 4 blobs and their links", "removed 4 blob(s)" in out and "and 4 link(s)" in out, out)
    suite.eq("gc: the links to them are gone", [c.head("/v2/lib/app/blobs/" + d).status for d in dropped],
             [404] * 4)
    # A mount without `from` succeeds exactly when the blob is stored.
    suite.eq("gc: the unreferenced blobs are gone",
             [c.post("/v2/probe/x/blobs/uploads/?mount=" + d).status for d in dropped], [202] * 4)
    r = c.get("/v2/lib/app/manifests/keep")
    suite.eq("the kept manifest reads", (r.status, r.body), (200, keep))
    suite.eq("its blobs read", [c.get("/v2/lib/app/blobs/" + d).status for d in kept], [200, 200])
    rc, out, err = run_berth(["gc", "-c", srv.config_path, "--grace", "bogus"])
    suite.eq("gc --grace bogus: exit 2", rc, 2)
    # The server goes on: a new push after gc works.
    r = put_manifest(c, "lib/app", "again", image(c, "lib/app", "again"))
    suite.eq("push after gc: 201", r.status, 201)
    srv.stop()
    srv.check_sanitizer()


if __name__ == "__main__":
    suite.main()
