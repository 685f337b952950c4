#!/usr/bin/env python3
"""skopeo against the real binary: a multi-platform OCI image (an index of
two platforms, several layers, one over 64 MiB) copied into berth over
HTTP/1.1 and back out, every digest compared; the same with htpasswd
credentials; and a push killed half way, then repeated, re-using the blobs
that had arrived."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import Berth, Failure, Suite, TempDir, run_berth, s3_peer, s3_storage  # noqa: E402
from ocilayout import OCI_INDEX, build_layout, have_skopeo, read_layout, skopeo  # noqa: E402
from test_sessions import AuthBerth, basic  # noqa: E402

suite = Suite("test_registry_skopeo")
ACCEPT = ", ".join([OCI_INDEX, "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])

_layout = {}


def layout():
    """One layout for every test (building the 70 MiB layer takes a while)."""
    if "l" not in _layout:
        tmp = TempDir("berth-oci-")
        suite.add_cleanup(tmp.cleanup, final=True)
        _layout["tmp"] = tmp
        _layout["l"] = build_layout(tmp.join("src"))
    return _layout["l"], _layout["tmp"]


def push_args(srv, repo, creds=None):
    lay, _ = layout()
    args = ["copy", "--all", "--preserve-digests", "--retry-times", "0", "--dest-tls-verify=false"]
    if creds:
        args += ["--dest-creds", creds]
    return args + [lay.ref(), "docker://127.0.0.1:%d/%s:%s" % (srv.port, repo, lay.tag)]


def check_registry_has_everything(name, srv, repo, headers=None):
    """Over plain HTTP: the tag names the index, every manifest and blob is
    there with its size."""
    lay, _ = layout()
    c = srv.client()
    h = dict(headers or {})
    h["Accept"] = ACCEPT
    r = c.get("/v2/%s/manifests/%s" % (repo, lay.tag), h)
    suite.eq("%s: GET the tag: 200" % name, r.status, 200)
    suite.eq("%s: the tag names the pushed index" % name, r.h("docker-content-digest"), lay.index_digest)
    suite.eq("%s: served as an OCI index" % name, r.h("content-type"), OCI_INDEX)
    missing = []
    for d, size in sorted(lay.blobs.items()):
        kind = "manifests" if d in lay.manifests or d == lay.index_digest else "blobs"
        r = c.head("/v2/%s/%s/%s" % (repo, kind, d), h)
        if r.status != 200 or r.h("content-length") != str(size) or r.h("docker-content-digest") != d:
            missing.append("%s %s: %d %s" % (kind, d, r.status, r.h("content-length")))
    suite.eq("%s: every manifest and blob HEADs 200 with its size and digest" % name, missing, [])


def pull_and_compare(name, srv, repo, out, creds=None):
    lay, _ = layout()
    args = ["copy", "--all", "--preserve-digests", "--src-tls-verify=false"]
    if creds:
        args += ["--src-creds", creds]
    rc, text = skopeo(args + ["docker://127.0.0.1:%d/%s:%s" % (srv.port, repo, lay.tag), "oci:%s:%s" % (out, lay.tag)])
    if not suite.eq("%s: skopeo copy out of berth exits 0" % name, rc, 0):
        print(text[-3000:], flush=True)
        return
    top, blobs = read_layout(out)
    suite.eq("%s: the copy's index is the original index" % name,
             [m.get("digest") for m in top.get("manifests", [])], [lay.index_digest])
    suite.eq("%s: the copy holds exactly the original blobs (digest and size)" % name, blobs, lay.blobs)


def push(name, srv, repo, creds=None):
    rc, text = skopeo(push_args(srv, repo, creds))
    if not suite.eq("%s: skopeo copy into berth exits 0" % name, rc, 0):
        print(text[-3000:], flush=True)
        raise Failure("push failed")


@suite.test
def roundtrip():
    if not have_skopeo():
        return suite.fail("skopeo is installed", "apt-get install skopeo (scripts/test installs it)")
    lay, tmp = layout()
    srv = Berth(suite, threads=2).start()
    push("push", srv, "library/multi")
    check_registry_has_everything("after push", srv, "library/multi")
    pull_and_compare("pull", srv, "library/multi", tmp.join("out-plain"))
    r = srv.client().get("/v2/library/multi/tags/list")
    suite.eq("the tag is listed", r.json(), {"name": "library/multi", "tags": [lay.tag]})
    r = srv.client().get("/v2/_catalog")
    suite.eq("the repository is listed", r.json(), {"repositories": ["library/multi"]})

    # Into a second repository of the same server: every blob is already
    # stored, and a push must still end with a complete repository.
    push("push to a second repository", srv, "other/copy")
    check_registry_has_everything("second repository", srv, "other/copy")
    srv.stop()
    srv.check_sanitizer()


@suite.test
def docker_formats_roundtrip():
    """skopeo converts the image to Docker schema2 (a manifest list of
    schema2 manifests) on the way in: berth keeps and serves those types,
    and a pull brings back every layer unchanged."""
    if not have_skopeo():
        return suite.fail("skopeo is installed")
    lay, tmp = layout()
    srv = Berth(suite, threads=2).start()
    dest = "docker://127.0.0.1:%d/docker/img:%s" % (srv.port, lay.tag)
    rc, text = skopeo(["copy", "--all", "--format", "v2s2", "--retry-times", "0", "--dest-tls-verify=false",
                       lay.ref(), dest])
    if not suite.eq("v2s2 push exits 0", rc, 0):
        print(text[-3000:], flush=True)
        return
    c = srv.client()
    r = c.get("/v2/docker/img/manifests/%s" % lay.tag, {"Accept": ACCEPT})
    suite.eq("the tag names a Docker manifest list",
             (r.status, r.h("content-type")), (200, "application/vnd.docker.distribution.manifest.list.v2+json"))
    lst = r.json() or {}
    kinds = set()
    for m in lst.get("manifests", []):
        rm = c.get("/v2/docker/img/manifests/%s" % m["digest"], {"Accept": ACCEPT})
        kinds.add((rm.status, rm.h("content-type"), rm.h("docker-content-digest") == m["digest"]))
    suite.eq("every platform's manifest is a Docker schema2 manifest, served under its digest", kinds,
             {(200, "application/vnd.docker.distribution.manifest.v2+json", True)})
    suite.eq("one manifest per platform", len(lst.get("manifests", [])), len(lay.manifests))
    out = tmp.join("out-v2s2")
    rc, text = skopeo(["copy", "--all", "--src-tls-verify=false", dest, "oci:%s:%s" % (out, lay.tag)])
    if not suite.eq("v2s2 pull exits 0", rc, 0):
        print(text[-3000:], flush=True)
        return
    _, blobs = read_layout(out)
    layers = {d: n for d, n in lay.blobs.items() if d not in lay.manifests and d != lay.index_digest
              and d not in {cfg for cfg, _ in lay.configs.values()}}
    suite.check("the layout has layers to compare", len(layers) >= 3, repr(layers))
    suite.eq("every original layer comes back with its digest and size",
             {d: blobs.get(d) for d in layers}, layers)
    srv.stop()
    srv.check_sanitizer()


@suite.test
def roundtrip_with_credentials():
    if not have_skopeo():
        return suite.fail("skopeo is installed")
    _, tmp = layout()
    srv = AuthBerth(suite, users={"pusher": "s3cret pass"}, threads=2).start()
    rc, text = skopeo(push_args(srv, "private/img"))
    suite.check("without credentials the push fails", rc != 0, text[-500:])
    rc, text = skopeo(push_args(srv, "private/img", "pusher:wrong"))
    suite.check("with a wrong password the push fails", rc != 0, text[-500:])
    push("push with --dest-creds", srv, "private/img", creds="pusher:s3cret pass")
    check_registry_has_everything("with credentials", srv, "private/img",
                                  {"Authorization": basic("pusher", "s3cret pass")})
    r = srv.client().get("/v2/private/img/tags/list")
    suite.eq("listing tags without credentials: 401", r.status, 401)
    pull_and_compare("pull with --src-creds", srv, "private/img", tmp.join("out-auth"), creds="pusher:s3cret pass")
    srv.stop()
    srv.check_sanitizer()


def _access_log_uploads(srv, start):
    """Digests whose bytes were sent to berth (a PUT completing an upload,
    or a monolithic POST) in the access log after byte `start`."""
    path = srv.config["log"]["accesslog"]
    with open(path, "rb") as f:
        f.seek(start)
        text = f.read().decode("utf-8", "replace")
    out = set()
    for line in text.splitlines():
        if '"/v2/' not in line or "digest=sha256" not in line:
            continue
        if '"method":"PUT"' in line or '"method":"POST"' in line:
            m = re.search(r"[?&]digest=([^&\"]+)", line)
            if m:
                out.add(urllib.parse.unquote(m.group(1)))
    return out


@suite.test
def interrupted_push_resumes():
    if not have_skopeo():
        return suite.fail("skopeo is installed")
    lay, tmp = layout()
    srv = Berth(suite, threads=2).start()
    repo = "library/cut"
    c = srv.client()
    blobs = [d for d in lay.blobs if d not in lay.manifests and d != lay.index_digest]

    def present():
        return [d for d in blobs if c.head("/v2/%s/blobs/%s" % (repo, d)).status == 200]

    p = subprocess.Popen(["skopeo", "--insecure-policy"] + push_args(srv, repo), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # Kill skopeo once half the blobs have arrived (the 70 MiB layer, the
    # slowest, is then still on its way) and before any manifest: the
    # position varies from run to run, what is checked does not.
    deadline = time.monotonic() + 600
    before = []
    while time.monotonic() < deadline and p.poll() is None:
        before = present()
        if len(before) >= len(blobs) // 2:
            p.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    p.wait(timeout=60)
    out = p.stdout.read().decode("utf-8", "replace")
    p.stdout.close()
    suite.check("skopeo was killed half way (some blobs stored)", p.returncode == -signal.SIGKILL and before,
                "rc %s, output: %s" % (p.returncode, out[-1000:]))
    r = c.get("/v2/%s/manifests/%s" % (repo, lay.tag), {"Accept": ACCEPT})
    suite.eq("the interrupted push left no tag", r.status, 404)
    suite.eq("the interrupted push's blobs HEAD as present", len(present()) >= len(before) > 0, True)
    stored = present()

    with open(srv.config["log"]["accesslog"], "rb") as f:
        mark = len(f.read())
    push("the repeated push", srv, repo)
    resent = _access_log_uploads(srv, mark)
    suite.check("the repeated push uploaded the missing blobs", len(resent) > 0 or len(stored) == len(blobs),
                "uploads seen: %s" % sorted(resent))
    suite.eq("the repeated push re-sent none of the %d blobs already there" % len(stored),
             sorted(set(stored) & resent), [])
    check_registry_has_everything("after the repeated push", srv, repo)
    pull_and_compare("pull after the repeated push", srv, repo, tmp.join("out-cut"))
    srv.stop()
    srv.check_sanitizer()


def _podman_usable():
    """podman, with a storage of its own in a temp dir, when it can run
    here; else None."""
    if shutil.which("podman") is None:
        return None
    tmp = TempDir("berth-podman-")
    suite.add_cleanup(tmp.cleanup)
    base = ["podman", "--root", tmp.join("root"), "--runroot", tmp.join("run"), "--storage-driver", "vfs"]
    try:
        p = subprocess.run(base + ["info"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return base if p.returncode == 0 else None


def _podman(base, args, timeout=600):
    p = subprocess.run(base + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


@suite.test
def podman_push_and_pull():
    """podman (when installed and usable here) pushes the amd64 image of the
    layout and pulls it back: same config (image id) and layers."""
    base = _podman_usable()
    if base is None:
        return suite.skip("podman push/pull", "podman is not installed or cannot run here")
    lay, _ = layout()
    cfg, diffs = lay.configs["linux/amd64"]
    srv = AuthBerth(suite, users={"pod": "pod-pass"}, threads=2).start()
    ref = "127.0.0.1:%d/pod/img:v1" % srv.port
    # podman names an image pulled from a layout after the layout's path,
    # which must then be a valid reference: mkdtemp's names (with '_') are
    # not always, so the layout is reached through a link of a safe name.
    link = "/tmp/berth-podman-layout-%d" % os.getpid()
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(lay.path, link)
    suite.add_cleanup(lambda: os.path.lexists(link) and os.remove(link))
    rc, out = _podman(base, ["pull", "--arch", "amd64", "oci:%s:%s" % (link, lay.tag)])
    suite.require("podman loads the layout's amd64 image", rc == 0, out[-1500:])
    local = out.strip().splitlines()[-1]
    rc, out = _podman(base, ["push", "--tls-verify=false", "--creds", "pod:wrong", local, ref])
    suite.check("podman push with a wrong password fails", rc != 0, out[-500:])
    rc, out = _podman(base, ["push", "--tls-verify=false", "--creds", "pod:pod-pass", local, ref])
    suite.require("podman push exits 0", rc == 0, out[-1500:])
    rc, out = _podman(base, ["rmi", "-a", "-f"])
    suite.eq("podman forgets its local images", rc, 0)
    rc, out = _podman(base, ["pull", "--tls-verify=false", "--creds", "pod:pod-pass", ref])
    suite.require("podman pull from berth exits 0", rc == 0, out[-1500:])
    suite.eq("the pulled image id is the original config digest", "sha256:" + out.strip().splitlines()[-1], cfg)
    rc, out = _podman(base, ["image", "inspect", "--format", "{{json .RootFS.Layers}}", ref])
    suite.eq("the pulled layers are the original layers (diff ids)", json.loads(out) if rc == 0 else out, diffs)
    srv.stop()
    srv.check_sanitizer()


@suite.test
def roundtrip_on_s3_and_gc():
    """The same round trip on the S3 backend (moto behind the project's SigV4
    verifier), then the image deleted and `berth gc` emptying the bucket of
    its blobs."""
    if not have_skopeo():
        return suite.fail("skopeo is installed")
    import s3moto
    if not s3moto.moto_available():
        return suite.skip("S3 round trip", "moto is not installed (python3 -m pip install 'moto[server]')")
    lay, tmp = layout()
    peer = s3_peer()
    srv = Berth(suite, threads=2, config={"storage": {
        "filesystem": None, "s3": s3_storage("/registry-skopeo"), "delete": {"enabled": True}}}).start()
    push("S3: push", srv, "library/multi")
    check_registry_has_everything("S3: after push", srv, "library/multi")
    pull_and_compare("S3: pull", srv, "library/multi", tmp.join("out-s3"))

    c = srv.client()
    r = c.delete("/v2/library/multi/manifests/%s" % lay.index_digest)
    suite.eq("S3: DELETE the index: 202", r.status, 202)
    for d in lay.manifests:
        suite.eq("S3: DELETE a platform manifest: 202", c.delete("/v2/library/multi/manifests/%s" % d).status, 202)
    rc, out, err = run_berth(["gc", "-c", srv.config_path, "--grace", "0s"], timeout=300)
    suite.eq("S3: gc exits 0", rc, 0)
    suite.check("S3: gc removes every blob of the image",
                "removed %d blob(s)" % len(lay.blobs) in out, out + err)
    missing = [d for d in lay.blobs if c.head("/v2/library/multi/blobs/%s" % d).status != 404]
    suite.eq("S3: after gc no blob of the image HEADs", missing, [])
    suite.eq("S3: no blob object left in the bucket",
             [k for k in peer.keys("registry-skopeo/") if "/blobs/" in k], [])
    srv.stop()
    srv.check_sanitizer()


if __name__ == "__main__":
    suite.main()
