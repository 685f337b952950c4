#!/usr/bin/env python3
"""Benchmark driver for bench/run: the same client against berth and the
reference registry, one table with both figures and the ratio berth/registry.

Python 3 stdlib only. Bodies are sent from a memoryview of an mmap'd file
of random bytes, so http.client hands the kernel the page-cache pages
directly (sendall on a memoryview: no copy in Python) and the client sends
at GB/s on loopback; it is not the bottleneck.

Usage (bench/run starts the servers and passes these):
  driver.py --tmp DIR --berth HOST:PORT --berth-pid PID
            --registry HOST:PORT --registry-pid PID [--quick]
"""
import argparse
import datetime
import hashlib
import http.client
import json
import mmap
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

MiB = 1 << 20
GiB = 1 << 30
MB = 1e6  # throughput figures are in MB/s (10^6 bytes), like openssl speed

SOCK_TIMEOUT = 300  # seconds per socket operation: a hung server fails the figure


def log(msg):
    print("[bench] " + msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------- HTTP

class Server:
    """One server under test: where it listens and its pid."""

    def __init__(self, name, hostport, pid):
        self.name = name
        host, port = hostport.rsplit(":", 1)
        if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            raise SystemExit("driver: refusing non-loopback address " + hostport)
        self.host = host
        self.port = int(port)
        self.netloc = "%s:%d" % (host, self.port)
        self.base = "http://%s/" % self.netloc
        self.pid = pid
        self.auth = None  # an Authorization header value, sent with every request

    def conn(self):
        return Conn(self)


class Conn:
    """One keep-alive connection and the upload protocol on top of it."""

    def __init__(self, server):
        self.server = server
        self.c = http.client.HTTPConnection(server.host, server.port, timeout=SOCK_TIMEOUT)

    def close(self):
        self.c.close()

    def _target(self, url):
        """Request target (path?query) for an absolute or relative URL;
        refuses any URL that leaves this server."""
        u = urllib.parse.urlsplit(urllib.parse.urljoin(self.server.base, url))
        if u.scheme != "http" or u.netloc != self.server.netloc:
            raise BenchError("%s returned a Location off this server: %r" % (self.server.name, url))
        return u.path + ("?" + u.query if u.query else "")

    def request(self, method, url, body=None, headers=None):
        headers = dict(headers or {})
        if self.server.auth:
            headers["Authorization"] = self.server.auth
        self.c.request(method, self._target(url), body=body, headers=headers)
        r = self.c.getresponse()
        data = r.read()
        return r.status, r, data

    def absolute(self, url):
        return urllib.parse.urljoin(self.server.base, url)

    def _expect(self, what, status, want, r, data):
        if status != want:
            raise BenchError("%s: %s answered %d (want %d): %s" % (
                self.server.name, what, status, want, data[:300].decode("utf-8", "replace")))

    def _location(self, what, r):
        loc = r.getheader("Location")
        if not loc:
            raise BenchError("%s: %s answered without Location" % (self.server.name, what))
        return self.absolute(loc)

    def post(self, repo):
        """Opens a session; returns its (absolute) Location."""
        st, r, data = self.request("POST", "/v2/%s/blobs/uploads/" % repo)
        self._expect("POST", st, 202, r, data)
        return self._location("POST", r)

    def patch(self, loc, body, start):
        """Sends one chunk [start, start+len) to loc; returns the new Location."""
        n = len(body)
        st, r, data = self.request("PATCH", loc, body=body, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": "%d-%d" % (start, start + n - 1),
        })
        self._expect("PATCH", st, 202, r, data)
        rng = r.getheader("Range")
        want = "0-%d" % (start + n - 1)
        if rng != want:
            raise BenchError("%s: PATCH Range %r, want %r" % (self.server.name, rng, want))
        return self._location("PATCH", r)

    def put(self, loc, digest):
        url = loc + ("&" if "?" in loc else "?") + "digest=" + digest
        st, r, data = self.request("PUT", url)
        self._expect("PUT", st, 201, r, data)
        got = r.getheader("Docker-Content-Digest")
        if got is not None and got != digest:
            raise BenchError("%s: PUT Docker-Content-Digest %s, want %s" % (self.server.name, got, digest))

    def status(self, loc):
        st, r, data = self.request("GET", loc)
        self._expect("GET status", st, 204, r, data)
        return r.getheader("Range")

    def check_blob(self, repo, digest, size):
        """HEAD the finished blob (outside any timing): right size."""
        st, r, data = self.request("HEAD", "/v2/%s/blobs/%s" % (repo, digest))
        self._expect("HEAD blob", st, 200, r, data)
        cl = r.getheader("Content-Length")
        if cl is None or int(cl) != size:
            raise BenchError("%s: HEAD blob Content-Length %s, want %d" % (self.server.name, cl, size))


# --------------------------------------------------------------------- data

class Data:
    """A file of random bytes, mmap'd; digests of slices, cached."""

    def __init__(self, path, size):
        log("writing %d MiB of random data to %s" % (size // MiB, path))
        with open(path, "wb") as f:
            left = size
            while left:
                n = min(left, 16 * MiB)
                f.write(os.urandom(n))
                left -= n
        self.f = open(path, "rb")
        self.mm = mmap.mmap(self.f.fileno(), 0, access=mmap.ACCESS_READ)
        self.mv = memoryview(self.mm)
        self.size = size
        self._dig = {}

    def slice(self, off, n):
        if off + n > self.size:
            raise ValueError("slice past the data file")
        return self.mv[off:off + n]

    def digest(self, off, n):
        k = (off, n)
        if k not in self._dig:
            self._dig[k] = "sha256:" + hashlib.sha256(self.slice(off, n)).hexdigest()
        return self._dig[k]

    def close(self):
        try:  # slices may still be referenced (e.g. by a traceback): leave those to exit
            self.mv.release()
            self.mm.close()
        except BufferError:
            pass
        self.f.close()


# ------------------------------------------------------------------ figures

def upload_chunked(conn, data, repo, off, size, chunk, digest):
    """POST, PATCH size bytes in chunk-sized pieces, PUT. Returns wall seconds."""
    t0 = time.perf_counter()
    loc = conn.post(repo)
    pos = 0
    while pos < size:
        n = min(chunk, size - pos)
        loc = conn.patch(loc, data.slice(off + pos, n), pos)
        pos += n
    conn.put(loc, digest)
    return time.perf_counter() - t0


def fig_stream(server, data, P, repo, off, size, chunk):
    digest = data.digest(off, size)
    c = server.conn()
    try:
        secs = upload_chunked(c, data, repo, off, size, chunk, digest)
        c.check_blob(repo, digest, size)
    finally:
        c.close()
    return size / secs / MB


def fig_small_patches(server, data, P):
    n, sz = P["small_count"], 4096
    off, total = P["small_off"], P["small_count"] * 4096
    digest = data.digest(off, total)
    c = server.conn()
    try:
        loc = c.post("bench/small")
        t0 = time.perf_counter()
        for i in range(n):
            loc = c.patch(loc, data.slice(off + i * sz, sz), i * sz)
        secs = time.perf_counter() - t0
        c.put(loc, digest)
        c.check_blob("bench/small", digest, total)
    finally:
        c.close()
    return n / secs


def status_session(server, data):
    """An open session with 4 KiB in it; returns its absolute status URL."""
    c = server.conn()
    try:
        loc = c.post("bench/status")
        loc = c.patch(loc, data.slice(12345, 4096), 0)
        rng = c.status(loc)
        if rng != "0-4095":
            raise BenchError("%s: status Range %r, want '0-4095'" % (server.name, rng))
    finally:
        c.close()
    return loc


def fig_wrk(url, P, headers=()):
    cmd = ["wrk", "-t2", "-c32", "-d%ds" % P["wrk_secs"], "--timeout", "5s"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(url)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=P["wrk_secs"] + 60)
    out = p.stdout + p.stderr
    m = re.search(r"Requests/sec:\s*([0-9.]+)", out)
    if p.returncode != 0 or not m:
        raise BenchError("wrk failed (rc %d): %s" % (p.returncode, out.strip()[-300:]))
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if bad and int(bad.group(1)) > 0:
        raise BenchError("wrk: %s non-2xx responses" % bad.group(1))
    errs = re.search(r"Socket errors:.*", out)
    if errs:
        log("wrk " + errs.group(0))
    return float(m.group(1))


def fig_h2load(url, P):
    n = P["h2_requests"]
    cmd = ["h2load", "-n", str(n), "-c", "32", "-m", "10", url]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise BenchError("h2load did not finish within 120 s")
    out = p.stdout + p.stderr
    fin = re.search(r"finished in ([0-9.]+)(m?s)", out)
    codes = re.search(r"status codes: (\d+) 2xx", out)
    ok2xx = int(codes.group(1)) if codes else 0
    req = re.search(r"requests: .*", out)
    succ = re.search(r"(\d+) succeeded", out)
    succeeded = int(succ.group(1)) if succ else 0
    if not fin or ok2xx != n or succeeded != n:
        summary = "h2load: " + (req.group(0) if req else out.strip()[-200:])
        if ok2xx == 0 and not codes_any(out):
            raise BenchError("no HTTP/2 cleartext (prior knowledge): every connection ended after "
                             "the HTTP/2 preface without a response; " + summary)
        if ok2xx == n:
            raise BenchError("every response was 2xx but h2load rejected the streams as invalid "
                             "HTTP/2 (see `nghttp -v URL`: e.g. upper-case header names); " + summary)
        raise BenchError("h2load: %d of %d requests got 2xx; %s" % (ok2xx, n, summary))
    secs = float(fin.group(1)) / (1000.0 if fin.group(2) == "ms" else 1.0)
    return n / secs


def codes_any(out):
    """Whether h2load saw any HTTP status at all."""
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    return bool(m) and sum(int(x) for x in m.groups()) > 0


def fig_parallel(server, data, P):
    k, size, chunk = P["par_count"], P["par_size"], P["par_chunk"]
    digests = [data.digest(i * size, size) for i in range(k)]
    conns = [server.conn() for _ in range(k)]
    errors = []
    barrier = threading.Barrier(k + 1)

    def worker(i):
        try:
            barrier.wait()
            upload_chunked(conns[i], data, "bench/par%d" % i, i * size, size, chunk, digests[i])
        except Exception as e:  # reported after the join
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(k)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    secs = time.perf_counter() - t0
    for c in conns:
        c.close()
    if errors:
        raise BenchError("%d of %d uploads failed; first: %s" % (len(errors), k, errors[0]))
    c = server.conn()
    try:
        for i in range(k):
            c.check_blob("bench/par%d" % i, digests[i], size)
    finally:
        c.close()
    return k * size / secs / MB


def put_latency(server, data, repo, off, size, chunk):
    """Uploads size bytes in chunks (not timed), then times the PUT alone (ms)."""
    digest = data.digest(off, size)
    c = server.conn()
    try:
        loc = c.post(repo)
        pos = 0
        while pos < size:
            n = min(chunk, size - pos)
            loc = c.patch(loc, data.slice(off + pos, n), pos)
            pos += n
        t0 = time.perf_counter()
        c.put(loc, digest)
        ms = (time.perf_counter() - t0) * 1000.0
        c.check_blob(repo, digest, size)
    finally:
        c.close()
    return ms


def fig_put_small(server, data, P):
    size = P["put_small"]
    lat = [put_latency(server, data, "bench/putsmall%d" % i, i * size, size, size) for i in range(3)]
    return statistics.median(lat)


def fig_put_big(server, data, P):
    return put_latency(server, data, "bench/putbig", 0, P["put_big"], P["put_big_chunk"])


def fig_blob_get(server, data, P):
    """GET of the blob figure 6b stored (1 GiB), one connection, the body
    read into a reused buffer: MB/s. Checks length, digest header and the
    first MiB (outside the timing)."""
    size = P["put_big"]
    digest = data.digest(0, size)
    c = http.client.HTTPConnection(server.host, server.port, timeout=SOCK_TIMEOUT)
    buf = bytearray(MiB)
    mv = memoryview(buf)
    first = None
    got = 0
    try:
        t0 = time.perf_counter()
        c.request("GET", "/v2/bench/putbig/blobs/%s" % digest)
        r = c.getresponse()
        # The reference registry may redirect (S3 driver); the filesystem driver serves itself.
        if r.status != 200:
            raise BenchError("%s: blob GET answered %d" % (server.name, r.status))
        while True:
            n = r.readinto(mv)
            if not n:
                break
            if first is None:
                first = bytes(mv[:n])
            got += n
        secs = time.perf_counter() - t0
        hdr = r.getheader("Docker-Content-Digest")
    finally:
        c.close()
    if got != size:
        raise BenchError("%s: blob GET gave %d bytes, want %d" % (server.name, got, size))
    if hdr is not None and hdr != digest:
        raise BenchError("%s: blob GET Docker-Content-Digest %s" % (server.name, hdr))
    if first is None or bytes(data.slice(0, len(first))) != first:
        raise BenchError("%s: blob GET returned other bytes" % server.name)
    return size / secs / MB


def skopeo_layout(tmp, quick):
    """The image both servers get from skopeo: an OCI layout of two
    platforms sharing most layers (tests/integration/ocilayout.py)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests",
                                    "integration"))
    import ocilayout
    d = 8 if quick else 1
    sizes = (1 * MiB // d, 128 * MiB // d, 64 * MiB // d, 32 * MiB // d, 8 * MiB // d, 1 * MiB // d)
    lay = ocilayout.build_layout(os.path.join(tmp, "oci-src"), layer_sizes=sizes)
    return lay, sum(lay.blobs.values())


def _skopeo(args):
    if shutil.which("skopeo") is None:
        raise BenchError("skopeo is not installed")
    t0 = time.perf_counter()
    p = subprocess.run(["skopeo", "--insecure-policy"] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=1800)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise BenchError("skopeo %s: exit %d: %s" % (args[0], p.returncode,
                                                     p.stdout.decode("utf-8", "replace")[-300:]))
    return secs


def fig_skopeo_push(server, lay):
    return _skopeo(["copy", "--all", "--preserve-digests", "--dest-tls-verify=false", lay.ref(),
                    "docker://%s/bench/skopeo:%s" % (server.netloc, lay.tag)])


def fig_skopeo_pull(server, lay, tmp):
    out = os.path.join(tmp, "oci-pull-" + server.name)
    try:
        secs = _skopeo(["copy", "--all", "--preserve-digests", "--src-tls-verify=false",
                        "docker://%s/bench/skopeo:%s" % (server.netloc, lay.tag), "oci:%s:%s" % (out, lay.tag)])
        with open(os.path.join(out, "index.json")) as f:
            top = json.load(f)
        got = [m.get("digest") for m in top.get("manifests", [])]
        if got != [lay.index_digest]:
            raise BenchError("%s: pulled index %s, pushed %s" % (server.name, got, lay.index_digest))
        names = set("sha256:" + n for n in os.listdir(os.path.join(out, "blobs", "sha256")))
        if names != set(lay.blobs):
            raise BenchError("%s: pulled blobs differ from the pushed ones" % server.name)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return secs


def disk_speed(data, tmp, size):
    """Write size bytes + fsync on the data dirs' filesystem: MB/s (reference)."""
    path = os.path.join(tmp, "disk-test.bin")
    os.sync()
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        pos = 0
        while pos < size:
            pos += os.write(fd, data.slice(pos, min(16 * MiB, size - pos)))
        os.fsync(fd)
    finally:
        os.close(fd)
    secs = time.perf_counter() - t0
    os.unlink(path)
    return size / secs / MB


def vm_hwm(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB -> MiB
    except OSError as e:
        raise BenchError("cannot read /proc/%d/status: %s" % (pid, e))
    raise BenchError("no VmHWM for pid %d" % pid)


def sha256_speed():
    """Single-core SHA-256 throughput in MB/s from openssl speed (EVP, 16 KiB blocks)."""
    cmd = ["openssl", "speed", "-mr", "-seconds", "2", "-bytes", "16384", "-evp", "sha256"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    m = re.search(r"^\+F:\d+:[^:]+:([0-9.]+)", p.stdout + p.stderr, re.M)
    if not m:
        raise BenchError("openssl speed: no result: %s" % (p.stdout + p.stderr)[-300:])
    return float(m.group(1)) / MB


# ------------------------------------------------------------ part sessions

def start_sessions_berth(berth_bin, tmp, user, password):
    """A berth of its own with auth.htpasswd (the sessions API needs it),
    configured like the main one. Returns (Server, Popen)."""
    import base64
    import socket
    d = os.path.join(tmp, "sessions-berth")
    os.makedirs(os.path.join(d, "data"), exist_ok=True)
    htp = os.path.join(d, "htpasswd")
    subprocess.run(["htpasswd", "-B", "-b", "-c", htp, user, password], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cfg = os.path.join(d, "berth.yml")
    with open(cfg, "w") as f:
        f.write("http:\n  addr: \"127.0.0.1:%d\"\n  maxchunksize: \"2GiB\"\n"
                "storage:\n  filesystem:\n    rootdirectory: \"%s\"\n    sync: commit\n"
                "auth:\n  htpasswd:\n    realm: bench\n    path: \"%s\"\n"
                "log:\n  accesslog: \"\"\n  level: warn\n" % (port, os.path.join(d, "data"), htp))
    logf = open(os.path.join(d, "berth.log"), "wb")
    proc = subprocess.Popen([berth_bin, "serve", "-c", cfg], stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    logf.close()
    srv = Server("berth+auth", "127.0.0.1:%d" % port, proc.pid)
    srv.auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    for _ in range(100):
        if proc.poll() is not None:
            raise BenchError("sessions berth exited at start: see %s" % os.path.join(d, "berth.log"))
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/v2/", headers={"Authorization": srv.auth})
            if c.getresponse().status == 200:
                c.close()
                return srv, proc
            c.close()
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise BenchError("sessions berth did not answer GET /v2/ within 10 s")


def sess_request(conn, method, path, body=None, want=(200, 201)):
    st, r, data = conn.request(method, path, body=body, headers={"Content-Type": "application/octet-stream"})
    if st not in want:
        raise BenchError("%s %s: %d %s" % (method, path, st, data[:300].decode("utf-8", "replace")))
    return json.loads(data) if data else None


def fig_parts_upload(server, data, P):
    """data_size as 64 parts over 8 connections: create -> parts -> complete.
    Returns (MB/s, completion ms)."""
    size, nparts, k = P["data_size"], 64, 8
    ps = size // nparts
    digest = data.digest(0, size)
    c = server.conn()
    t0 = time.perf_counter()
    j = sess_request(c, "POST", "/uploads/sessions", json.dumps(
        {"total_parts": nparts, "part_size": ps, "total_size": size, "repository": "bench/parts",
         "digest": digest}).encode(), want=(201,))
    sid = j["session_id"]
    errors = []
    conns = [server.conn() for _ in range(k)]

    def worker(i):
        try:
            for n in range(1 + i, nparts + 1, k):
                sess_request(conns[i], "PUT", "/uploads/sessions/%s/parts/%d" % (sid, n),
                             data.slice((n - 1) * ps, ps), want=(201,))
        except Exception as e:
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(k)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for cc in conns:
        cc.close()
    if errors:
        c.close()
        raise BenchError("part upload failed: %s" % errors[0])
    t1 = time.perf_counter()
    j = sess_request(c, "POST", "/uploads/sessions/%s/complete" % sid, b"", want=(200,))
    t2 = time.perf_counter()
    if j.get("digest") != digest:
        raise BenchError("complete: digest %s, want %s" % (j.get("digest"), digest))
    c.check_blob("bench/parts", digest, size)
    c.close()
    return size / (t2 - t0) / MB, (t2 - t1) * 1000.0


def gapped_session(server, nparts=10000, every=10):
    """A 10,000-part session (1-byte parts) missing every 10th part: 1,000
    gaps. Returns its status path."""
    c = server.conn()
    sid = sess_request(c, "POST", "/uploads/sessions", json.dumps(
        {"total_parts": nparts, "part_size": 1}).encode(), want=(201,))["session_id"]
    c.close()
    errors = []

    def worker(i):
        cc = server.conn()
        try:
            for n in range(1 + i, nparts + 1, 8):
                if n % every:
                    sess_request(cc, "PUT", "/uploads/sessions/%s/parts/%d" % (sid, n), b"x", want=(201,))
        except Exception as e:
            errors.append(e)
        cc.close()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise BenchError("gapped session: %s" % errors[0])
    c = server.conn()
    j = sess_request(c, "GET", "/uploads/sessions/" + sid)
    c.close()
    if len(j["missing_parts"]) != nparts // every or len(j["received_parts"]) != nparts // every:
        raise BenchError("gapped session: %d missing and %d received ranges, want %d" % (
            len(j["missing_parts"]), len(j["received_parts"]), nparts // every))
    return "/uploads/sessions/" + sid


def sessions_figures(berth_bin, tmp, data, P, registry):
    """The part-session figures; returns the lines of their table."""
    res, errs = {}, {}

    def run(key, fn):
        os.sync()
        t = time.perf_counter()
        try:
            res[key] = fn()
            log("sessions  %s = %s (%.1f s)" % (key, res[key], time.perf_counter() - t))
        except Exception as e:
            errs[key] = str(e) or e.__class__.__name__
            log("sessions  %s FAILED: %s" % (key, errs[key]))

    size = P["data_size"]
    chunk = 16 * MiB if size >= GiB else max(MiB, size // 64)
    srv = proc = None
    try:
        srv, proc = start_sessions_berth(berth_bin, tmp, "bench", os.urandom(12).hex())
    except Exception as e:
        errs["start"] = str(e)
    if srv is not None:
        run("parts", lambda: fig_parts_upload(srv, data, P))
        run("oci", lambda: fig_stream(srv, data, P, "bench/ocistream", 0, size, chunk))
    run("reg", lambda: fig_stream(registry, data, P, "bench/ocistream", 0, size, chunk))
    if srv is not None:
        paths = {}
        run("gapped", lambda: paths.setdefault("gapped", gapped_session(srv)) and 0)
        run("empty", lambda: paths.setdefault("empty", "/uploads/sessions/" + sess_request(
            srv.conn(), "POST", "/uploads/sessions", json.dumps({"total_parts": 10000, "part_size": 1}).encode(),
            want=(201,))["session_id"]) and 0)
        if "gapped" in paths:
            run("wrk_gapped", lambda: fig_wrk(srv.base.rstrip("/") + paths["gapped"], P, ["Authorization: " + srv.auth]))
        if "empty" in paths:
            run("wrk_empty", lambda: fig_wrk(srv.base.rstrip("/") + paths["empty"], P, ["Authorization: " + srv.auth]))
        try:
            res["rss"] = vm_hwm(proc.pid)
        except Exception as e:
            errs["rss"] = str(e)
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()

    def v(key, i=None, f="%.0f"):
        if key not in res:
            return "ERR"
        x = res[key] if i is None else res[key][i]
        return f % x

    def ratio(a, b):
        return "%.2fx" % (a / b) if a is not None and b else "n/a"

    parts_mbs = res["parts"][0] if "parts" in res else None
    lines = ["", "part sessions: berth with auth.htpasswd, %s of the same random data" % (
        "%d GiB" % (size // GiB) if size >= GiB else "%d MiB" % (size // MiB)), ""]
    hdr = "%-62s %-7s %10s  %s" % ("figure", "unit", "value", "note")
    lines += [hdr, "-" * len(hdr)]
    lines.append("%-62s %-7s %10s  %s" % ("P1 parts API: 64 parts, 8 connections, create -> complete", "MB/s",
                                          v("parts", 0), "POST session, PUTs, POST complete (200)"))
    lines.append("%-62s %-7s %10s  %s" % ("P2 OCI chunked flow on the same berth, %s chunks, 1 conn" % (
        "%d MiB" % (chunk // MiB)), "MB/s", v("oci"), "P1/P2 = " + ratio(parts_mbs, res.get("oci"))))
    lines.append("%-62s %-7s %10s  %s" % ("P3 OCI chunked flow on docker-registry, same chunks", "MB/s", v("reg"),
                                          "P1/P3 = " + ratio(parts_mbs, res.get("reg"))))
    lines.append("%-62s %-7s %10s  %s" % ("P4 completion of P1's session (POST .../complete)", "ms",
                                          v("parts", 1, "%.1f"), "lower is better"))
    lines.append("%-62s %-7s %10s  %s" % ("S1 status GET, 10,000 parts with 1,000 gaps, wrk -c32", "req/s",
                                          v("wrk_gapped"), ""))
    wr = ratio(res.get("wrk_empty"), res.get("wrk_gapped"))
    met = ""
    if "wrk_empty" in res and "wrk_gapped" in res:
        met = "  (met)" if res["wrk_empty"] / res["wrk_gapped"] <= 2.0 else "  (NOT met)"
    lines.append("%-62s %-7s %10s  %s" % ("S2 status GET, empty 10,000-part session, wrk -c32", "req/s",
                                          v("wrk_empty"), "S2/S1 = %s, target <= 2x%s" % (wr, met)))
    lines.append("%-62s %-7s %10s  %s" % ("peak RSS of this berth (VmHWM)", "MiB", v("rss", None, "%.1f"), ""))
    if errs:
        lines += ["", "notes:"] + ["  - %s: %s" % (k, e) for k, e in errs.items()]
    return lines, bool(errs)


# -------------------------------------------------------------------- table

class Row:
    def __init__(self, key, label, unit, higher_better=True, target=None):
        self.key, self.label, self.unit = key, label, unit
        self.higher_better = higher_better
        self.target = target  # (text, fn(row) -> bool or None)
        self.val = {}   # server name -> float
        self.err = {}   # server name -> message
        self.ratio_note = None


def fmt(v, unit):
    if v is None:
        return "-"
    if unit in ("MiB",):
        return "%.1f" % v
    if v >= 1000:
        return "%.0f" % v
    if v >= 100:
        return "%.1f" % v
    if v >= 10:
        return "%.2f" % v
    return "%.3f" % v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--berth", required=True)
    ap.add_argument("--berth-pid", type=int, required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--registry-pid", type=int, required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--berth-version", default="")
    ap.add_argument("--only", default="", help="comma-separated figure keys (development)")
    ap.add_argument("--berth-bin", default="", help="berth binary: runs the part-session figures on a berth of "
                    "their own (with auth)")
    a = ap.parse_args()

    d = 8 if a.quick else 1
    P = {
        "data_size": GiB // d,
        "stream_size": 512 * MiB // d, "stream_chunk": 16 * MiB // d,
        "mono_size": 512 * MiB // d,
        "small_count": 1000 // d, "small_off": 0,
        "wrk_secs": 2 if a.quick else 10,
        "h2_requests": 100000 // d,
        "par_count": 16, "par_size": 64 * MiB // d, "par_chunk": 8 * MiB // d,
        "put_small": 16 * MiB // d, "put_big": GiB // d, "put_big_chunk": 16 * MiB // d,
    }
    servers = [Server("registry", a.registry, a.registry_pid), Server("berth", a.berth, a.berth_pid)]
    only = set(x for x in a.only.split(",") if x)

    def sz(n):
        return "%d GiB" % (n // GiB) if n >= GiB and n % GiB == 0 else "%d MiB" % (n // MiB)

    rows = [
        Row("stream", "1 chunked %s in %s chunks, 1 conn" % (sz(P["stream_size"]), sz(P["stream_chunk"])),
            "MB/s", target=(">= 5x", lambda r: r >= 5)),
        Row("mono", "2 monolithic %s PATCH + PUT" % sz(P["mono_size"]), "MB/s"),
        Row("small", "3 %d x 4 KiB PATCHes, 1 conn" % P["small_count"], "PATCH/s"),
        Row("wrk", "4a status GET, wrk HTTP/1.1 -c32", "req/s", target=(">= 30x", lambda r: r >= 30)),
        Row("h2", "4b status GET, h2load h2c -c32 -m10", "req/s", target=(">= 30x", lambda r: r >= 30)),
        Row("par", "5 %d parallel x %s in %s chunks" % (P["par_count"], sz(P["par_size"]), sz(P["par_chunk"])),
            "MB/s"),
        Row("putsmall", "6a PUT latency after %s (median of 3)" % sz(P["put_small"]), "ms", higher_better=False),
        Row("putbig", "6b PUT latency after %s" % sz(P["put_big"]), "ms", higher_better=False),
        Row("flat", "6c PUT latency %s / %s" % (sz(P["put_big"]), sz(P["put_small"])), "x",
            higher_better=False),
        Row("blobget", "9a GET of 6b's %s blob, first read" % sz(P["put_big"]), "MB/s"),
        Row("blobget2", "9b the same GET again", "MB/s"),
        Row("skopush", "10a skopeo push, 2-platform image (%s)" % "{image}", "s", higher_better=False),
        Row("skopull", "10b skopeo pull of the same image", "s", higher_better=False),
        Row("rss", "7 peak RSS (VmHWM)", "MiB", higher_better=False),
        Row("shapct", "8 figure 1 as % of SHA-256 speed", "%", target=("berth >= 40%", None)),
    ]
    R = {r.key: r for r in rows}

    data = Data(os.path.join(a.tmp, "data.bin"), P["data_size"])
    log("hashing the slices the figures upload")
    t0 = time.perf_counter()
    data.digest(0, P["stream_size"])
    data.digest(P["data_size"] - P["mono_size"], P["mono_size"])
    data.digest(P["small_off"], P["small_count"] * 4096)
    for i in range(P["par_count"]):
        data.digest(i * P["par_size"], P["par_size"])
    for i in range(3):
        data.digest(i * P["put_small"], P["put_small"])
    data.digest(0, P["put_big"])
    log("hashed in %.1f s" % (time.perf_counter() - t0))

    disk = None
    try:
        disk = disk_speed(data, a.tmp, 512 * MiB // d)
    except Exception as e:
        log("disk speed: %s" % e)

    def run(key, fn):
        if only and key not in only:
            return
        for s in servers:
            os.sync()  # start each measurement with no dirty pages from the one before
            log("%-9s %s ..." % (s.name, R[key].label))
            t = time.perf_counter()
            try:
                R[key].val[s.name] = fn(s)
                log("%-9s %s = %s %s (%.1f s)" % (s.name, R[key].label, fmt(R[key].val[s.name], R[key].unit),
                                                  R[key].unit, time.perf_counter() - t))
            except Exception as e:
                R[key].err[s.name] = str(e) or e.__class__.__name__
                log("%-9s %s FAILED: %s" % (s.name, R[key].label, R[key].err[s.name]))

    started = time.time()
    run("stream", lambda s: fig_stream(s, data, P, "bench/stream", 0, P["stream_size"], P["stream_chunk"]))
    run("mono", lambda s: fig_stream(s, data, P, "bench/mono", P["data_size"] - P["mono_size"],
                                     P["mono_size"], P["mono_size"]))
    run("small", lambda s: fig_small_patches(s, data, P))

    status_urls = {}
    if not only or only & {"wrk", "h2"}:
        for s in servers:
            try:
                status_urls[s.name] = status_session(s, data)
            except Exception as e:
                for k in ("wrk", "h2"):
                    R[k].err[s.name] = "status session: %s" % e

    def with_status(fn):
        def f(s):
            if s.name not in status_urls:
                raise BenchError(R["wrk"].err.get(s.name, "no status session"))
            return fn(status_urls[s.name], P)
        return f

    run("wrk", with_status(fig_wrk))
    run("h2", with_status(fig_h2load))
    run("par", lambda s: fig_parallel(s, data, P))
    run("putsmall", lambda s: fig_put_small(s, data, P))
    run("putbig", lambda s: fig_put_big(s, data, P))
    run("blobget", lambda s: fig_blob_get(s, data, P))
    run("blobget2", lambda s: fig_blob_get(s, data, P))
    if not only or only & {"skopush", "skopull"}:
        try:
            log("building the OCI image layout skopeo pushes")
            lay, total = skopeo_layout(a.tmp, a.quick)
            R["skopush"].label = R["skopush"].label.replace("{image}", "%d blobs, %.0f MiB" % (
                len(lay.blobs), total / MiB))
            run("skopush", lambda s: fig_skopeo_push(s, lay))
            run("skopull", lambda s: fig_skopeo_pull(s, lay, a.tmp))
        except Exception as e:
            R["skopush"].label = R["skopush"].label.replace("{image}", "n/a")
            for k in ("skopush", "skopull"):
                for s in servers:
                    R[k].err.setdefault(s.name, "layout: %s" % e)
    for s in servers:
        a_, b_ = R["putsmall"].val.get(s.name), R["putbig"].val.get(s.name)
        if a_ is not None and b_ is not None and a_ > 0:
            R["flat"].val[s.name] = b_ / a_
    for s in servers:
        try:
            R["rss"].val[s.name] = vm_hwm(s.pid)
        except Exception as e:
            R["rss"].err[s.name] = str(e)
    sess_lines, sess_failed = [], False
    if a.berth_bin and (not only or "sessions" in only):
        sess_lines, sess_failed = sessions_figures(a.berth_bin, a.tmp, data, P, servers[0])
    bench_secs = time.time() - started

    sha = None
    sha_err = None
    try:
        log("openssl speed -seconds 2 -bytes 16384 -evp sha256 ...")
        sha = sha256_speed()
    except Exception as e:
        sha_err = str(e)
    for s in servers:
        v = R["stream"].val.get(s.name)
        if sha and v is not None:
            R["shapct"].val[s.name] = 100.0 * v / sha
    data.close()

    # ------------------------------------------------------------- print
    notes = []
    out = []
    out.append("berth vs reference registry (docker-registry) -- %s%s" % (
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "  [QUICK: sizes / 8]" if a.quick else ""))
    out.append("machine: %s, %d cores, Linux %s; %s" % (
        platform.machine(), os.cpu_count() or 0, platform.release(),
        ", ".join(x for x in (a.berth_version, version_line()) if x)))
    out.append("single-core SHA-256 (openssl speed -evp sha256, 16 KiB): %s" % (
        "%.0f MB/s" % sha if sha else "n/a (%s)" % sha_err))
    out.append("disk write + fsync, %s on the data dirs' filesystem: %s" % (
        sz(512 * MiB // d), "%.0f MB/s" % disk if disk else "n/a"))
    out.append("(berth, storage.filesystem.sync commit, fsyncs each blob at PUT; the registry never fsyncs)")
    out.append("")
    hdr = "%-44s %-7s %10s %10s %10s  %s" % ("figure", "unit", "registry", "berth", "berth/reg", "target")
    out.append(hdr)
    out.append("-" * len(hdr))
    for r in rows:
        vals = []
        for s in servers:
            if s.name in r.val:
                vals.append(fmt(r.val[s.name], r.unit))
            elif s.name in r.err:
                vals.append("n/a" if (r.key, s.name) == ("h2", "registry") else "ERR")
                notes.append("%s, %s: %s" % (r.label.split(" ")[0], s.name, r.err[s.name]))
            else:
                vals.append("-")
        rb, rr = r.val.get("berth"), r.val.get("registry")
        if r.key == "shapct":
            ratio = "%.2fx" % (rb / rr) if rb is not None and rr else "n/a"
        elif rb is not None and rr:
            ratio = "%.2fx" % (rb / rr)
        else:
            ratio = "n/a"
        tgt = ""
        if r.target:
            text, fn = r.target
            met = None
            if r.key == "shapct":
                met = rb >= 40 if rb is not None else None
            elif fn and rb is not None and rr:
                met = fn(rb / rr)
            tgt = text + ("" if met is None else ("  (met)" if met else "  (NOT met)"))
        if r.key == "flat":
            tgt = "berth ~1 (flat)"
            if rb is not None:
                tgt += "  (met)" if rb <= 2.0 else "  (NOT met)"
        if not r.higher_better and r.key not in ("flat",):
            tgt = (tgt + "  " if tgt else "") + "lower is better"
        out.append("%-44s %-7s %10s %10s %10s  %s" % (r.label, r.unit, vals[0], vals[1], ratio, tgt))
    out.append("")
    out.append("MB = 10^6 bytes. Throughput is client wall time POST -> PUT 201 (figure 3: the PATCH loop only).")
    out.append("Ratio = berth / registry for every row (for ms and MiB rows lower is better).")
    h2b, w_r = R["h2"].val.get("berth"), R["wrk"].val.get("registry")
    if h2b is not None and "registry" in R["h2"].err and w_r:
        notes.append("4b: berth's h2c rate over the registry's HTTP/1.1 rate (4a): %.2fx" % (h2b / w_r))
    if notes:
        out.append("")
        out.append("notes:")
        for n in notes:
            out.append("  - " + n)
    out += sess_lines
    out.append("")
    out.append("figures took %.0f s" % bench_secs)
    print("\n".join(out), flush=True)
    failed = any(r.err.get("berth") for r in rows) or any(
        r.err.get("registry") for r in rows if r.key != "h2") or sess_failed
    return 1 if failed else 0


def version_line():
    parts = []
    try:
        p = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True, timeout=10)
        parts.append(p.stdout.strip().replace("docker-registry github.com/docker/distribution", "registry"))
    except Exception:
        pass
    try:
        p = subprocess.run(["openssl", "version"], capture_output=True, text=True, timeout=10)
        parts.append(" ".join(p.stdout.split()[:2]))
    except Exception:
        pass
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
