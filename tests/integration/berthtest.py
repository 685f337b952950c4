"""Helpers for berth's integration tests (stdlib only, plus the curl CLI).

Each test file is a plain script: it builds a `Suite`, registers test
functions with `suite.test`, and ends with `suite.main()`, which runs them in
order, prints one line per check and closes with "N passed, M failed". The
process exits non-zero when any check failed.

A `Berth` starts the real server binary (BERTH_BIN, else build/berth of the
source tree) on a free loopback port with its own temporary root directory,
and stops it with SIGTERM, expecting exit status 0 and no sanitizer report on
its stderr (the test build is ASan+UBSan; LeakSanitizer turns a leak into a
non-zero exit).
"""

import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("BERTH_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
# Absolute, since servers start in their own directories.
BERTH_BIN = os.path.abspath(os.environ.get("BERTH_BIN") or os.path.join(SOURCE_DIR, "build", "berth"))

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 90.0
EMPTY_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# BERTH_TEST_BACKEND=s3 runs the same tests with berth on S3: one moto per
# test process (tests/integration/s3moto.py, the SigV4 verifier in front),
# and each Berth gets its own rootdirectory in the bucket unless the test
# gives one (two instances sharing a bucket prefix).
BACKEND = os.environ.get("BERTH_TEST_BACKEND", "filesystem")
_S3_PEER = None


def s3_peer():
    """The process's S3 peer, started on first use. Exits with ctest's skip
    code (77), loudly, when moto is not installed."""
    global _S3_PEER
    if _S3_PEER is None:
        sys.path.insert(0, HERE)
        import s3moto
        s3moto.skip_if_unavailable()
        _S3_PEER = s3moto.S3Peer().start()
    return _S3_PEER


def s3_storage(rootdirectory, endpoint=None, chunksize="5MiB"):
    """A storage.s3 config section on the test peer."""
    import s3moto
    peer = s3_peer()
    return {"bucket": peer.bucket, "region": s3moto.REGION, "regionendpoint": endpoint or peer.endpoint,
            "accesskey": s3moto.ACCESS, "secretkey": s3moto.SECRET, "rootdirectory": rootdirectory,
            "chunksize": chunksize, "connecttimeout": "2s", "maxretries": 2}


# --------------------------------------------------------------------------
# checks and reporting


class Failure(Exception):
    """Raised by Suite.require when a test cannot meaningfully go on."""


class Suite:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.tests = []
        self._lock = threading.Lock()
        self._cleanups = []
        self._final_cleanups = []

    # -- registration
    def test(self, fn):
        self.tests.append(fn)
        return fn

    def add_cleanup(self, fn, final=False):
        """fn runs after the current test (or, if final, after all tests)."""
        (self._final_cleanups if final else self._cleanups).append(fn)

    # -- checks (thread-safe)
    def _emit(self, ok, name, detail=""):
        with self._lock:
            if ok:
                self.passed += 1
                print("ok   - %s" % name, flush=True)
            else:
                self.failed += 1
                print("FAIL - %s%s" % (name, (": " + detail) if detail else ""), flush=True)
        return ok

    def check(self, name, cond, detail=""):
        return self._emit(bool(cond), name, detail)

    def eq(self, name, got, want):
        ok = got == want
        detail = "" if ok else "got %s, want %s" % (_short(got), _short(want))
        return self._emit(ok, name, detail)

    def require(self, name, cond, detail=""):
        if not self.check(name, cond, detail):
            raise Failure(name)

    def require_eq(self, name, got, want):
        if not self.eq(name, got, want):
            raise Failure(name)

    def skip(self, name, why):
        with self._lock:
            self.skipped += 1
            print("skip - %s: %s" % (name, why), flush=True)

    def fail(self, name, detail=""):
        return self._emit(False, name, detail)

    # -- running
    def main(self):
        print("# %s (berth: %s, storage: %s)" % (self.name, BERTH_BIN, BACKEND), flush=True)
        if BACKEND == "s3":
            s3_peer()
            self.add_cleanup(_S3_PEER.stop, final=True)
        if not os.access(BERTH_BIN, os.X_OK):
            self.fail("berth binary exists", BERTH_BIN)
        else:
            for fn in self.tests:
                print("# %s" % fn.__name__, flush=True)
                failed_before = self.failed
                try:
                    fn()
                except Failure as e:
                    if self.failed == failed_before:
                        self.fail("%s stopped" % fn.__name__, str(e))
                except Exception:  # a crash of the test counts as one failure
                    self.fail("%s raised" % fn.__name__, traceback.format_exc().strip().replace("\n", "\n     "))
                finally:
                    while self._cleanups:
                        c = self._cleanups.pop()
                        try:
                            c()
                        except Exception:
                            self.fail("%s cleanup" % fn.__name__, traceback.format_exc().strip())
        while self._final_cleanups:
            c = self._final_cleanups.pop()
            try:
                c()
            except Exception:
                self.fail("final cleanup", traceback.format_exc().strip())
        line = "%d passed, %d failed" % (self.passed, self.failed)
        if self.skipped:
            line += ", %d skipped" % self.skipped
        print(line, flush=True)
        sys.exit(1 if self.failed or not self.passed else 0)


def _short(v, n=300):
    s = repr(v)
    return s if len(s) <= n else s[:n] + "...(%d chars)" % len(s)


# --------------------------------------------------------------------------
# small helpers


def free_port():
    """A loopback TCP port that is free right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rand_bytes(n, rng=None):
    if rng is None:
        return os.urandom(n)
    return rng.randbytes(n)


class TempDir:
    """A temporary directory removed at exit unless BERTH_KEEP_TMP is set."""

    def __init__(self, prefix="berth-it-"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def cleanup(self):
        if os.environ.get("BERTH_KEEP_TMP"):
            print("# kept %s" % self.path, flush=True)
            return
        shutil.rmtree(self.path, ignore_errors=True)

    def join(self, *p):
        return os.path.join(self.path, *p)


def yaml_dump(d, indent=0):
    """Minimal YAML for nested dicts of str/int/bool."""
    out = []
    for k, v in d.items():
        pad = "  " * indent
        if isinstance(v, dict):
            out.append("%s%s:" % (pad, k))
            out.append(yaml_dump(v, indent + 1))
        elif isinstance(v, bool):
            out.append("%s%s: %s" % (pad, k, "true" if v else "false"))
        elif isinstance(v, int):
            out.append("%s%s: %d" % (pad, k, v))
        else:
            out.append("%s%s: %s" % (pad, k, json.dumps(str(v))))
    return "\n".join(x for x in out if x != "")


def deep_merge(base, over):
    r = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(r.get(k), dict):
            r[k] = deep_merge(r[k], v)
        elif v is None:
            r.pop(k, None)
        else:
            r[k] = v
    return r


def berth_env():
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1"
    return env


def run_berth(args, cwd=None, timeout=60):
    """Runs berth to completion; returns (rc, stdout, stderr) as text."""
    p = subprocess.run([BERTH_BIN] + list(args), cwd=cwd, env=berth_env(), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def sanitizer_report(text):
    for m in SANITIZER_MARKERS:
        i = text.find(m)
        if i >= 0:
            return text[i:i + 1500]
    return None


def make_cert(dirpath):
    """A self-signed localhost certificate: (certificate path, key path)."""
    cert = os.path.join(dirpath, "cert.pem")
    key = os.path.join(dirpath, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-days", "1", "-keyout", key, "-out", cert], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)
    return cert, key


# --------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, headers, body, reason=""):
        self.status = status
        self.headers = headers  # lowercased names; repeated headers joined with ", "
        self.body = body
        self.reason = reason

    def h(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception:
            return None

    def error_codes(self):
        """The `code`s of an OCI error body, or None when it is not one."""
        j = self.json()
        if not isinstance(j, dict) or not isinstance(j.get("errors"), list) or not j["errors"]:
            return None
        codes = []
        for e in j["errors"]:
            if not isinstance(e, dict) or not isinstance(e.get("code"), str) or not isinstance(
                    e.get("message"), str):
                return None
            codes.append(e["code"])
        return codes

    def __iter__(self):  # status, headers, body = resp
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return "<%d %s %s>" % (self.status, self.headers, _short(self.body, 200))


def _headers_dict(msg):
    d = {}
    for k, v in msg.items():
        k = k.lower()
        d[k] = v if k not in d else d[k] + ", " + v
    return d


class Client:
    """HTTP/1.1 on http.client. One connection per request unless keepalive."""

    def __init__(self, port, host="127.0.0.1", tls=False, timeout=60, keepalive=False):
        self.host, self.port, self.tls, self.timeout, self.keepalive = host, port, tls, timeout, keepalive
        self._conn = None

    def _connect(self):
        if self.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["http/1.1"])
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(self, method, path, body=None, headers=None):
        hdrs = dict(headers or {})
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/octet-stream"
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        conn = self._conn if self.keepalive and self._conn is not None else self._connect()
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            resp = Response(r.status, _headers_dict(r.headers), data, r.reason)
        except BaseException:
            conn.close()
            if self.keepalive:
                self._conn = None
            raise
        if self.keepalive:
            self._conn = conn
            if resp.h("connection", "").lower() == "close":
                conn.close()
                self._conn = None
        else:
            conn.close()
        return resp

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # convenience
    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def head(self, path, headers=None):
        return self.request("HEAD", path, headers=headers)

    def post(self, path, body=None, headers=None):
        return self.request("POST", path, body, headers)

    def patch(self, path, body, headers=None):
        return self.request("PATCH", path, body, headers)

    def put(self, path, body=None, headers=None):
        return self.request("PUT", path, body, headers)

    def delete(self, path, headers=None):
        return self.request("DELETE", path, headers=headers)


def raw_request(port, data, timeout=30, read=True):
    """Sends raw bytes on a fresh connection; returns what came back before
    the server closed (or the timeout), as bytes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return b""
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
                # stop once a whole response without a body (or with a
                # Content-Length body) is in
                got = b"".join(chunks)
                if _response_complete(got):
                    break
        except socket.timeout:
            pass
        except ConnectionResetError:
            pass
        return b"".join(chunks)
    finally:
        s.close()


def _response_complete(buf):
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return False
    head = buf[:i].decode("latin-1")
    m = re.search(r"(?im)^content-length:\s*(\d+)\s*$", head)
    if m:
        return len(buf) - (i + 4) >= int(m.group(1))
    return False


def parse_raw_response(buf):
    """(status, headers, body) of the first response in buf, or None."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return None
    lines = buf[:i].decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/\d(?:\.\d)? (\d{3})", lines[0])
    if not m:
        return None
    hdrs = {}
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    return Response(int(m.group(1)), hdrs, buf[i + 4:])


# --------------------------------------------------------------------------
# the server


class Berth:
    """One berth server with its own temp dir, root directory and port.

    config: overrides merged into the default config (a value of None
    removes a key). tls=True generates a certificate and sets http.tls.*.
    """

    def __init__(self, suite=None, config=None, tls=False, threads=2, port=None, shared=False):
        self.suite = suite
        self.tmp = TempDir()
        self.dir = self.tmp.path
        self.root = self.tmp.join("root")
        self.port = port or free_port()
        self.tls = tls
        self.proc = None
        self.starts = 0
        self._sanitizer_checked = 0
        self.stdout_path = self.tmp.join("berth.stdout")
        self.stderr_path = self.tmp.join("berth.stderr")
        self.bodybuf = self.tmp.join("bodybuf")
        os.makedirs(self.bodybuf, exist_ok=True)
        cfg = {
            "http": {
                "addr": "127.0.0.1:%d" % self.port,
                "threads": threads,
                "timeout": "120s",
                "bodybufferdir": self.bodybuf,
                "shutdowntimeout": "30s",
            },
            "storage": {
                "filesystem": {"rootdirectory": self.root, "sync": "none"},
                "workers": 4,
            },
            "log": {"level": "info", "accesslog": self.tmp.join("access.log")},
        }
        if tls:
            cert, key = make_cert(self.dir)
            cfg["http"]["tls"] = {"certificate": cert, "key": key}
        if BACKEND == "s3":
            cfg["storage"] = {"s3": s3_storage("/it-%s" % os.path.basename(self.dir)), "workers": 4}
            if config and "filesystem" in (config.get("storage") or {}):
                config = deep_merge(config, {"storage": {"filesystem": None}})
        self.config = deep_merge(cfg, config or {})
        self.config_path = self.tmp.join("config.yaml")
        self.write_config()
        if suite is not None:
            suite.add_cleanup(self.cleanup, final=shared)

    # -- config
    def write_config(self, text=None):
        with open(self.config_path, "w") as f:
            f.write(text if text is not None else yaml_dump(self.config) + "\n")

    # -- lifecycle
    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None, "berth already running"
        self.starts += 1
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        err.write(("--- start %d ---\n" % self.starts).encode())
        err.flush()
        try:
            # BERTH_WRAPPER (e.g. "valgrind --leak-check=full --log-file=/tmp/vg.%p")
            # runs the server under a tool.
            wrapper = shlex.split(os.environ.get("BERTH_WRAPPER", ""))
            self.proc = subprocess.Popen(wrapper + [BERTH_BIN, "serve", "-c", self.config_path], cwd=self.dir,
                                         env=berth_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        finally:
            out.close()
            err.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure(self._note("berth exited with %s before answering; stderr:\n%s" %
                                         (self.proc.returncode, self.stderr_tail())))
            try:
                r = self.client(timeout=5).get("/v2/")
                if r.status == 200:
                    return
                last = "status %d" % r.status
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.1)
        raise Failure(self._note("berth did not answer GET /v2/ within %ds (%s); stderr:\n%s" %
                                 (timeout, last, self.stderr_tail())))

    def _note(self, msg):
        if self.suite is not None:
            self.suite.fail("berth ready", msg)
        return msg

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def restart(self):
        self.kill9()
        return self.start()

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            return None

    def stop(self, sig=signal.SIGTERM, check=True, label="berth"):
        """Stops with SIGTERM; checks exit 0 and a clean stderr. Returns rc."""
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
        else:
            self.proc.send_signal(sig)
            rc = self.wait_exit()
        if check and self.suite is not None:
            self.suite.eq("%s exits 0 after %s" % (label, signal.Signals(sig).name), rc, 0)
            if self.check_sanitizer(label) is None and rc != 0:
                print("     stderr tail:\n" + _indent(self.stderr_tail(1500)), flush=True)
        return rc

    def check_sanitizer(self, label="berth"):
        """Checks the stderr written since the last check (all runs of this
        server, killed ones included) for sanitizer reports."""
        text = self.stderr()
        rep = sanitizer_report(text[self._sanitizer_checked:])
        self._sanitizer_checked = len(text)
        if self.suite is not None:
            self.suite.check("%s stderr has no sanitizer report" % label, rep is None, rep or "")
        return rep

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.tmp.cleanup()

    # -- outputs
    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stdout(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, n=4000):
        return self.stderr()[-n:]

    # -- clients
    def client(self, timeout=60, keepalive=False):
        return Client(self.port, tls=self.tls, timeout=timeout, keepalive=keepalive)

    def url(self, path):
        return "%s://127.0.0.1:%d%s" % ("https" if self.tls else "http", self.port, path)

    # -- layout
    def session_stored(self, uuid):
        """Whether anything of session `uuid` is stored: its directory on the
        filesystem; on S3 an object under uploads/<uuid>/ or its unfinished
        multipart upload."""
        if BACKEND != "s3":
            return os.path.exists(self.upload_dir(uuid))
        root = self.config["storage"]["s3"]["rootdirectory"].strip("/") + "/"
        peer = s3_peer()
        return bool(peer.keys(root + "uploads/%s/" % uuid)) or bool(peer.multipart_uploads(root + "blobs/data/" + uuid))

    def upload_dir(self, uuid):
        return os.path.join(self.root, "uploads", uuid)

    def blob_path(self, dgst):
        hexd = dgst.split(":", 1)[1]
        return os.path.join(self.root, "blobs", "sha256", hexd[:2], hexd, "data")

    def link_path(self, repo, dgst):
        hexd = dgst.split(":", 1)[1]
        return os.path.join(self.root, "repositories", repo, "_layers", "sha256", hexd, "link")


def _indent(s, pad="     "):
    return "\n".join(pad + ln for ln in s.splitlines())


# --------------------------------------------------------------------------
# OCI flow helpers (HTTP/1.1)


def expect_error(suite, name, r, status, codes, body=True):
    """Checks an OCI error response: status (int or tuple), a JSON body with
    Content-Type application/json whose first error code is in `codes`
    (str or tuple; None: any code). Returns True when all hold."""
    statuses = (status,) if isinstance(status, int) else tuple(status)
    ok = suite.check("%s: status %s" % (name, "/".join(map(str, statuses))), r.status in statuses,
                     "got %d %s" % (r.status, _short(r.body, 300)))
    if not body:
        return ok
    ct = (r.h("content-type") or "").split(";")[0].strip().lower()
    ok &= suite.eq("%s: content-type" % name, ct, "application/json")
    got = r.error_codes()
    if codes is None:
        ok &= suite.check("%s: OCI error body" % name, got is not None, _short(r.body, 300))
    else:
        codes = (codes,) if isinstance(codes, str) else tuple(codes)
        ok &= suite.check("%s: error code %s" % (name, "|".join(codes)), got is not None and got[0] in codes,
                          "body %s" % _short(r.body, 300))
    return ok


def expect_session(suite, name, r, status, repo, uuid, last):
    """Checks a session answer (202/204/416): status, exact Location,
    Range 0-<last> (last=-1: "0-0" for an empty session) and
    Docker-Upload-UUID."""
    ok = suite.eq("%s: status" % name, r.status, status)
    ok &= suite.eq("%s: Location" % name, r.h("location"), upload_path(repo, uuid))
    ok &= suite.eq("%s: Range" % name, r.h("range"), "0-%d" % max(last, 0))
    if status != 416:
        ok &= suite.eq("%s: Docker-Upload-UUID" % name, r.h("docker-upload-uuid"), uuid)
    return ok


def upload_path(repo, uuid):
    return "/v2/%s/blobs/uploads/%s" % (repo, uuid)


def blob_url(repo, dgst):
    return "/v2/%s/blobs/%s" % (repo, dgst)


def uuid_of(location):
    return location.rstrip("/").rsplit("/", 1)[-1] if location else None


def start_upload(client, repo):
    """POST a new session; returns (response, location, uuid)."""
    r = client.post("/v2/%s/blobs/uploads/" % repo)
    loc = r.h("location")
    return r, loc, uuid_of(loc) if r.status == 202 else None


def content_range(start, length):
    return "%d-%d" % (start, start + length - 1)


def patch_chunk(client, location, data, start=None):
    hdrs = {"Content-Type": "application/octet-stream"}
    if start is not None:
        hdrs["Content-Range"] = content_range(start, len(data))
    return client.patch(location, data, hdrs)


def finish_upload(client, location, dgst, data=b""):
    return client.put("%s?digest=%s" % (location, dgst), data)


def upload_blob(client, repo, data, chunk=None):
    """Whole chunked upload; returns the PUT response (raises Failure-free)."""
    r, loc, _ = start_upload(client, repo)
    if r.status != 202:
        return r
    off = 0
    chunk = chunk or max(1, len(data))
    while off < len(data):
        piece = data[off:off + chunk]
        r = patch_chunk(client, loc, piece, off)
        if r.status != 202:
            return r
        off += len(piece)
    return finish_upload(client, loc, digest(data))


# --------------------------------------------------------------------------
# curl (HTTP/2)


class CurlResult:
    def __init__(self, status_line, status, headers, body, all_status_lines, raw_names=()):
        self.status_line = status_line  # "HTTP/2 202" or "HTTP/1.1 202 Accepted"
        self.status = status
        self.headers = headers
        self.body = body
        self.all_status_lines = all_status_lines
        self.raw_names = list(raw_names)  # header names as received

    @property
    def version(self):
        return self.status_line.split(" ", 1)[0] if self.status_line else None

    error = None  # curl's complaint when it got no answer

    @property
    def proto_status(self):
        """ "HTTP/2 202", "HTTP/1.1 202" (no reason phrase)."""
        if not self.status_line:
            return "no response (%s)" % (self.error or "?")
        return "%s %d" % (self.version, self.status)

    def h(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        return "<%s %s %s>" % (self.status_line, self.headers, _short(self.body, 200))


def _parse_header_file(text):
    """The last response block of a curl -D file (after 100/101 interim)."""
    blocks = []
    cur = None
    for ln in text.split("\r\n") if "\r\n" in text else text.split("\n"):
        if ln.startswith("HTTP/"):
            cur = [ln, {}, []]
            blocks.append(cur)
        elif cur is not None and ":" in ln:
            k, v = ln.split(":", 1)
            cur[2].append(k.strip())
            k = k.strip().lower()
            v = v.strip()
            cur[1][k] = v if k not in cur[1] else cur[1][k] + ", " + v
    if not blocks:
        return None, {}, [], []
    return blocks[-1][0].strip(), blocks[-1][1], [b[0].strip() for b in blocks], blocks[-1][2]


def curl(base_url, requests, mode, workdir, timeout=300, parallel=False):
    """Runs several requests in ONE curl invocation (so they share a
    connection where curl can), each a dict: method, path, body (bytes or
    None), headers (dict). mode: "h2c" (prior knowledge), "upgrade" (h2c
    Upgrade), "h2" (TLS + ALPN h2), "h1" (HTTP/1.1, TLS if https).
    Returns a list of CurlResult (status 0 when curl got no response)."""
    global _curl_seq
    if mode == "h2c" and not parallel and len(requests) > 1:
        # curl 7.88 fails to reuse a prior-knowledge connection for a second
        # request without a body ("Error in the HTTP2 framing layer", seen
        # against other h2c servers too): one invocation per request.
        return [curl(base_url, [rq], mode, workdir, timeout)[0] for rq in requests]
    with _curl_lock:
        _curl_seq += 1
        seq = _curl_seq
    args = ["curl", "-sS", "--max-time", str(timeout)]
    if parallel:
        args += ["--parallel", "--parallel-immediate", "--parallel-max", "16"]
    files = []
    for i, rq in enumerate(requests):
        if i:
            args.append("--next")
        if mode == "h2c":
            args.append("--http2-prior-knowledge")
        elif mode == "upgrade":
            args.append("--http2")
        elif mode == "h2":
            args += ["--http2", "-k"]
        elif mode == "h1":
            args += ["--http1.1", "-k"]
        else:
            raise ValueError(mode)
        hfile = os.path.join(workdir, "curl-%d-%d.h" % (seq, i))
        bfile = os.path.join(workdir, "curl-%d-%d.b" % (seq, i))
        files.append((hfile, bfile))
        method = rq.get("method", "GET")
        if method == "HEAD":
            args.append("-I")
        else:
            args += ["-X", method]
        for k, v in (rq.get("headers") or {}).items():
            args += ["-H", "%s: %s" % (k, v)]
        body = rq.get("body")
        if body is not None:
            dfile = os.path.join(workdir, "curl-%d-%d.in" % (seq, i))
            with open(dfile, "wb") as f:
                f.write(body)
            args += ["--data-binary", "@" + dfile]
            if not any(k.lower() == "content-type" for k in (rq.get("headers") or {})):
                args += ["-H", "Content-Type: application/octet-stream"]
        args += ["-D", hfile, "-o", bfile, base_url + rq["path"]]
    p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout + 30)
    results = []
    for hfile, bfile in files:
        try:
            with open(hfile, "rb") as f:
                htext = f.read().decode("latin-1")
        except FileNotFoundError:
            htext = ""
        try:
            with open(bfile, "rb") as f:
                body = f.read()
        except FileNotFoundError:
            body = b""
        line, hdrs, lines, raw = _parse_header_file(htext)
        status = int(line.split()[1]) if line and len(line.split()) > 1 else 0
        results.append(CurlResult(line, status, hdrs, body, lines, raw))
    if p.returncode != 0:
        err = "curl rc %d: %s" % (p.returncode, p.stderr.decode("utf-8", "replace").strip()[-300:])
        for r in results:
            r.error = err
    return results


_curl_lock = threading.Lock()
_curl_seq = 0
