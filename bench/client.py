#!/usr/bin/env python3
"""bench/client.py: the berth client (`berth push`) pushing one file of
random bytes to a berth of its own, in each mode, with and without 5
connection cuts injected by tests/integration/faultproxy.py. Prints one
table: wall time, MB/s, and the bytes sent compared with the file size
(the cost of resuming). Run by bench/run after the server figures.

    client.py --berth-bin PATH --tmp DIR [--quick]
"""

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from faultproxy import FaultProxy  # noqa: E402

MiB, GiB = 1 << 20, 1 << 30
USER, PASSWORD = "bench", "bench-pw"


def log(msg):
    print("[client] " + msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Berth:
    def __init__(self, binary, tmp, auth):
        self.port = free_port()
        self.root = os.path.join(tmp, "client-berth-data")
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root)
        cfg = os.path.join(tmp, "client-berth.yml")
        text = ('http:\n  addr: "127.0.0.1:%d"\n  maxchunksize: "2GiB"\nstorage:\n  filesystem:\n'
                '    rootdirectory: "%s"\n    sync: commit\nlog:\n  accesslog: ""\n  level: warn\n'
                % (self.port, self.root))
        if auth:
            ht = os.path.join(tmp, "client-htpasswd")
            subprocess.run(["htpasswd", "-Bbc", "-C", "5", ht, USER, PASSWORD], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            text += 'auth:\n  htpasswd:\n    realm: "bench"\n    path: "%s"\n' % ht
        with open(cfg, "w") as f:
            f.write(text)
        self.log = open(os.path.join(tmp, "client-berth.log"), "wb")
        self.proc = subprocess.Popen([binary, "serve", "-c", cfg], stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        for _ in range(100):
            if self.proc.poll() is not None:
                raise RuntimeError("berth exited at start (rc %s)" % self.proc.returncode)
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/v2/" % self.port, timeout=2)
                return
            except urllib.error.HTTPError:
                return  # 401 with auth: it is up
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("berth did not answer")

    def has_sessions(self):
        req = urllib.request.Request("http://127.0.0.1:%d/uploads/sessions" % self.port, data=b"{}", method="POST")
        try:
            urllib.request.urlopen(req, timeout=5)
            return True
        except urllib.error.HTTPError as e:
            return e.code != 404
        except OSError:
            return False

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def write_file(path, size):
    rng = random.Random(1)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 * MiB)
            f.write(rng.randbytes(n))
            left -= n


def push(binary, env, path, target, extra):
    cmd = [binary, "push", "--retries", "10"] + extra + [path, target]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError("push failed (rc %d): %s" % (p.returncode, p.stderr.strip()[-400:]))
    m = re.search(r"(\d+) bytes sent .* (\d+) retries", p.stderr)
    return secs, (int(m.group(1)) if m else None), (int(m.group(2)) if m else None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--berth-bin", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    size = GiB // (8 if a.quick else 1)
    chunk = 16 * MiB // (8 if a.quick else 1)
    path = os.path.join(a.tmp, "client-data.bin")
    log("writing %d MiB of random bytes" % (size // MiB))
    write_file(path, size)

    have_htpasswd = shutil.which("htpasswd") is not None
    srv = None
    auth = False
    if have_htpasswd:
        try:
            srv = Berth(a.berth_bin, a.tmp, auth=True)
            auth = True
        except RuntimeError as e:
            log("berth refused an auth section (%s): parts mode needs it, OCI only" % e)
    if srv is None:
        srv = Berth(a.berth_bin, a.tmp, auth=False)
    sessions = auth and srv.has_sessions()
    if not sessions:
        log("this berth has no part-session API: the parts rows are n/a")

    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = os.path.join(a.tmp, "client-cache")
    env.pop("BERTH_USER", None)
    if auth:
        env["BERTH_USER"], env["BERTH_PASSWORD"] = USER, PASSWORD

    modes = [("OCI chunked, %d MiB chunks" % (chunk // MiB), ["--chunk-size", str(chunk)], True),
             ("parts, 64 parts, 4 connections", ["--parts", "64", "--parallel", "4"], sessions),
             ("parts, 64 parts, 8 connections", ["--parts", "64", "--parallel", "8"], sessions)]
    cuts = [int(size * (i + 0.5) / 5) for i in range(5)]
    rows = []
    n = 0
    try:
        for label, extra, ok in modes:
            for fault in ("direct", "proxy", "5 cuts"):
                name = "%s, %s" % (label, {"direct": "direct", "proxy": "via proxy, no faults",
                                           "5 cuts": "via proxy, 5 cuts"}[fault])
                if not ok:
                    rows.append((name, None, None, None, "n/a: no sessions API"))
                    continue
                n += 1
                repo = "bench/client%d" % n
                proxy = None
                port = srv.port
                if fault != "direct":
                    proxy = FaultProxy(srv.port, cut_at=cuts if fault == "5 cuts" else ()).start()
                    port = proxy.port
                os.sync()
                log("%s ..." % name)
                try:
                    secs, sent, retries = push(a.berth_bin, env, path, "127.0.0.1:%d/%s" % (port, repo), extra)
                    if proxy is not None:
                        st = proxy.stats()
                        wire = st["up_bytes"]
                        note = "%d cuts, %d retries" % (st["cuts"], retries or 0) if fault == "5 cuts" else ""
                    else:
                        wire, note = sent, "body bytes counted by the client"
                    rows.append((name, secs, size / secs / 1e6, wire / size if wire else None, note))
                    log("%s: %.2f s" % (name, secs))
                except Exception as e:
                    rows.append((name, None, None, None, "ERR: %s" % e))
                    log("%s FAILED: %s" % (name, e))
                finally:
                    if proxy is not None:
                        proxy.stop()
    finally:
        srv.stop()
        os.unlink(path)

    print()
    print("berth client: push of %d MiB to berth (sync commit) on loopback" % (size // MiB))
    print()
    print("| mode | wall | MB/s | bytes sent / file size | note |")
    print("|---|---|---|---|---|")
    failed = False
    for name, secs, mbs, ratio, note in rows:
        if note.startswith("ERR"):
            failed = True
        print("| %s | %s | %s | %s | %s |" % (name, "%.2f s" % secs if secs else "-", "%.0f" % mbs if mbs else "-",
                                              "%.3f" % ratio if ratio else "-", note))
    print()
    print("The proxy is Python (tests/integration/faultproxy.py) and shares the 2 cores: compare the cut rows")
    print("with the no-fault proxy rows, not with the direct ones. Wire bytes through the proxy include headers.")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
