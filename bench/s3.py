#!/usr/bin/env python3
"""berth on S3 vs Debian's docker-registry with its s3 driver, one run.

Both servers store into the same moto (python3 -m moto.server), each through
the project's SigV4-verifying, request-counting proxy
(tests/integration/s3sigv4.py), with the same chunksize, driven by the same
client (Python http.client, one keep-alive connection). Per server:

  - chunked 256 MiB in 8 MiB chunks and in 1 MiB chunks: MB/s from POST to 201
  - completion latency: the final PUT ?digest= (no body) of those uploads
  - S3 requests, and bytes sent to / read from S3, per uploaded GiB,
    counted at the proxy

usage: bench/s3.py --berth BUILD/berth [--size-mib 256] [--chunksize 10MiB]
Build berth first: cmake -B build-s3rel -DCMAKE_BUILD_TYPE=Release && cmake --build build-s3rel
"""
import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import s3moto  # noqa: E402
import s3sigv4  # noqa: E402

MIB = 1 << 20


def wait_http(port, path, ok=(200, 401), timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", path)
            if c.getresponse().status in ok:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server on %d did not start" % port)


def upload(port, repo, data, chunk):
    """Chunked upload; returns (seconds total, seconds of the final PUT)."""
    dig = "sha256:" + hashlib.sha256(data).hexdigest()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.monotonic()
    c.request("POST", "/v2/%s/blobs/uploads/" % repo, body=b"")
    r = c.getresponse()
    r.read()
    assert r.status == 202, r.status
    loc = r.getheader("Location")
    if loc.startswith("http"):
        loc = "/" + loc.split("/", 3)[3]
    off = 0
    while off < len(data):
        piece = data[off:off + chunk]
        c.request("PATCH", loc, body=piece, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": "%d-%d" % (off, off + len(piece) - 1),
            "Content-Length": str(len(piece))})
        r = c.getresponse()
        r.read()
        assert r.status == 202, (r.status, off)
        loc = r.getheader("Location") or loc
        if loc.startswith("http"):
            loc = "/" + loc.split("/", 3)[3]
        off += len(piece)
    t1 = time.monotonic()
    sep = "&" if "?" in loc else "?"
    c.request("PUT", "%s%sdigest=%s" % (loc, sep, dig), body=b"", headers={"Content-Length": "0"})
    r = c.getresponse()
    r.read()
    assert r.status == 201, r.status
    t2 = time.monotonic()
    c.close()
    return t2 - t0, t2 - t1


def check(port, repo, data):
    """Byte-exact read back (not timed, not counted)."""
    dig = "sha256:" + hashlib.sha256(data).hexdigest()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("GET", "/v2/%s/blobs/%s" % (repo, dig))
    r = c.getresponse()
    body = r.read()
    if r.status in (301, 302, 307):
        raise RuntimeError("redirected blob GET; disable redirects")
    assert r.status == 200 and body == data, (r.status, len(body))
    c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--berth", required=True)
    ap.add_argument("--registry", default=shutil.which("docker-registry"))
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--chunksize", default="10MiB")
    args = ap.parse_args()
    s3moto.skip_if_unavailable()
    chunkbytes = int(args.chunksize[:-3]) * MIB if args.chunksize.endswith("MiB") else int(args.chunksize)

    tmp = tempfile.mkdtemp(prefix="berth-s3bench-")
    peer = s3moto.S3Peer(bucket="bench").start()
    # One counting proxy per server, so the counts never mix.
    prox = {name: s3sigv4.start(peer.moto_port, s3moto.ACCESS, s3moto.SECRET, s3moto.REGION)
            for name in ("berth", "registry")}
    procs = []
    results = {}
    try:
        bport, rport = s3moto.free_port(), s3moto.free_port()
        bcfg = os.path.join(tmp, "berth.yaml")
        with open(bcfg, "w") as f:
            f.write("""http:
  addr: 127.0.0.1:%d
  bodybufferdir: %s
storage:
  s3:
    bucket: bench
    region: us-east-1
    regionendpoint: http://127.0.0.1:%d
    accesskey: %s
    secretkey: %s
    rootdirectory: /berth
    chunksize: %s
log:
  level: warn
  accesslog: ""
""" % (bport, tmp, prox["berth"].port, s3moto.ACCESS, s3moto.SECRET, args.chunksize))
        rcfg = os.path.join(tmp, "registry.yaml")
        with open(rcfg, "w") as f:
            f.write("""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  s3:
    accesskey: %s
    secretkey: %s
    region: us-east-1
    regionendpoint: http://127.0.0.1:%d
    bucket: bench
    secure: false
    v4auth: true
    chunksize: %d
    rootdirectory: /registry
  redirect:
    disable: true
  delete:
    enabled: true
http:
  addr: 127.0.0.1:%d
""" % (s3moto.ACCESS, s3moto.SECRET, prox["registry"].port, chunkbytes, rport))
        env = dict(os.environ)
        env.pop("AWS_CA_BUNDLE", None)  # crashes aws-sdk-go programs on these machines
        procs.append(subprocess.Popen([args.berth, "serve", "-c", bcfg], stdout=subprocess.DEVNULL,
                                      stderr=open(os.path.join(tmp, "berth.err"), "wb"), env=env))
        procs.append(subprocess.Popen([args.registry, "serve", rcfg], stdout=subprocess.DEVNULL,
                                      stderr=open(os.path.join(tmp, "registry.err"), "wb"), env=env))
        wait_http(bport, "/v2/")
        wait_http(rport, "/v2/")
        base = os.urandom(args.size_mib * MIB)
        gib = len(base) / (1 << 30)
        for name, port in (("berth", bport), ("registry", rport)):
            for chunk_mib in (8, 1):
                # Different content per upload: a blob that exists already
                # would be deduplicated at commit, which is not what we time.
                data = bytes([chunk_mib]) + base[1:]
                p = prox[name]
                p.stats.reset()
                total, put = upload(port, "bench/c%d" % chunk_mib, data, chunk_mib * MIB)
                st = p.stats.snapshot()
                check(port, "bench/c%d" % chunk_mib, data)
                results[(name, chunk_mib)] = {
                    "MB/s": len(data) / total / 1e6,
                    "final PUT s": put,
                    "S3 requests/GiB": st["requests"] / gib,
                    "MiB sent to S3/GiB": st["bytes_in"] / MIB / gib,
                    "MiB read from S3/GiB": st["bytes_out"] / MIB / gib,
                    "MiB copied inside S3/GiB": st["bytes_copied"] / MIB / gib,
                    "rejected signatures": st["rejected"],
                    "ops": st["ops"],
                }
                print("# %s %d MiB chunks: %s" % (name, chunk_mib, json.dumps(results[(name, chunk_mib)])),
                      flush=True)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        for p in prox.values():
            p.shutdown()
        peer.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print("%d MiB blob, chunksize %s, moto behind a counting SigV4 proxy, one client connection" %
          (args.size_mib, args.chunksize))
    print("| figure | chunks | berth | docker-registry | berth/registry |")
    print("|---|---|---|---|---|")
    for key in ("MB/s", "final PUT s", "S3 requests/GiB", "MiB sent to S3/GiB", "MiB read from S3/GiB",
                "MiB copied inside S3/GiB"):
        for chunk_mib in (8, 1):
            b = results[("berth", chunk_mib)][key]
            r = results[("registry", chunk_mib)][key]
            print("| %s | %d MiB | %.3g | %.3g | %s |" % (key, chunk_mib, b, r, ("%.2f" % (b / r)) if r else "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
