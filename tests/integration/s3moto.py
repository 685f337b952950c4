#!/usr/bin/env python3
"""moto, the S3 peer of the S3 tests: start it on a free loopback port,
make a bucket, and put the project's SigV4 verifier (s3sigv4.py) in front.

As a library (berthtest.py, the S3 integration tests):
    s3 = S3Peer(); s3.start(); s3.endpoint; s3.stop()
As a wrapper for other test programs (the criterion contract suite):
    s3moto.py exec -- COMMAND ARGS...
runs COMMAND with BERTH_TEST_S3_ENDPOINT, BERTH_TEST_S3_BUCKET,
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set, and exits with its status;
and fails (exit 1) if any request reached the verifier with a bad signature.

When moto is not installed, everything here reports SKIPPED loudly and
exits with SKIP_CODE (ctest's SKIP_RETURN_CODE), never a pass.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3sigv4  # noqa: E402

SKIP_CODE = 77
ACCESS = "berthtestaccess"
SECRET = "berth/test+secret"  # '/' and '+' exercise the signing of odd secrets
BUCKET = "berth-test"
# An access key whose requests the tests sign with a wrong secret on purpose:
# their rejections are expected, anything rejected for ACCESS is a bug.
WRONG_ACCESS = "berthwrongsig"
REGION = "us-east-1"


def moto_available():
    try:
        import moto.server  # noqa: F401
        return True
    except Exception:
        return False


def skip_if_unavailable():
    if not moto_available():
        sys.stderr.write("\n*** SKIPPED: moto (python3 -m pip install 'moto[server]') is not "
                         "installed: the S3 tests did NOT run ***\n\n")
        sys.exit(SKIP_CODE)


def _die_with_parent():
    """moto goes when the test process goes, even on kill -9 or a ctest
    timeout (Linux PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except Exception:
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Peer:
    """moto plus the verifying proxy. `endpoint` is what berth talks to."""

    def __init__(self, bucket=BUCKET):
        self.bucket = bucket
        self.proc = None
        self.proxy = None
        self.moto_port = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.proxy.port

    @property
    def moto_url(self):
        return "http://127.0.0.1:%d" % self.moto_port

    def start(self):
        self.moto_port = free_port()
        self.log = open(os.devnull, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.moto_port)],
            stdout=self.log, stderr=self.log, preexec_fn=_die_with_parent)
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(self.moto_url + "/moto-api/", timeout=2).read()
                break
            except Exception:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("moto did not start")
                time.sleep(0.1)
        self.make_bucket()
        self.proxy = s3sigv4.start(self.moto_port, ACCESS, SECRET, REGION, creds={WRONG_ACCESS: SECRET})
        return self

    def make_bucket(self):
        req = urllib.request.Request(self.moto_url + "/" + self.bucket, method="PUT")
        urllib.request.urlopen(req, timeout=10).read()

    def reset(self):
        """Empties moto (every bucket) and makes the bucket again."""
        req = urllib.request.Request(self.moto_url + "/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).read()
        self.make_bucket()

    def stop(self):
        if self.proxy is not None:
            self.proxy.shutdown()
            self.proxy.server_close()
            self.proxy = None
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()

    # -- looking into the bucket (boto3, which moto depends on, straight to moto)

    def _s3(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.moto_url, region_name=REGION,
                            aws_access_key_id=ACCESS, aws_secret_access_key=SECRET)

    def keys(self, prefix=""):
        out = []
        for page in self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out

    def multipart_uploads(self, prefix=""):
        """Keys of the unfinished multipart uploads (ListMultipartUploads)."""
        r = self._s3().list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return [u["Key"] for u in r.get("Uploads", [])]

    def get(self, key):
        return self._s3().get_object(Bucket=self.bucket, Key=key)["Body"].read()


import urllib.parse  # noqa: E402  (used above, after the class for readability)


class TcpGate:
    """A TCP forwarder on a fixed loopback port that can be taken down (the
    listener closed and every connection reset, as an S3 that went away)
    and brought up again on the same port."""

    def __init__(self, upstream_port):
        import threading
        self.upstream = upstream_port
        self.port = free_port()
        self.lock = threading.Lock()
        self.listener = None
        self.socks = set()
        self.connections = 0

    def up(self):
        import threading
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()
        return self

    def down(self):
        import struct
        s, self.listener = self.listener, None
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self.lock:
            socks, self.socks = list(self.socks), set()
        for c in socks:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
            except OSError:
                pass

    def _accept(self, listener):
        import threading
        while True:
            try:
                c, _ = listener.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.connections += 1
                self.socks.update((c, u))
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    if len(sys.argv) < 3 or sys.argv[1] != "exec" or "--" not in sys.argv:
        sys.stderr.write("usage: s3moto.py exec -- COMMAND ARGS...\n")
        return 2
    skip_if_unavailable()
    cmd = sys.argv[sys.argv.index("--") + 1:]
    peer = S3Peer().start()
    try:
        env = dict(os.environ)
        env.update({"BERTH_TEST_S3_ENDPOINT": peer.endpoint, "BERTH_TEST_S3_BUCKET": peer.bucket,
                    "AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET})
        rc = subprocess.call(cmd, env=env)
        st = peer.proxy.stats.snapshot()
        sys.stderr.write("s3moto: %d S3 requests, %d rejected by the SigV4 verifier\n"
                         % (st["requests"], st["rejected"]))
        sys.stderr.write("s3moto: operations %s\n" % json.dumps(st["ops"], sort_keys=True))
        if st["rejected_by_key"].get(ACCESS) and rc == 0:
            sys.stderr.write("s3moto: FAIL: requests with bad signatures (last: %s)\n"
                             % peer.proxy.stats.last_reject)
            rc = 1
        return rc
    finally:
        peer.stop()


if __name__ == "__main__":
    sys.exit(main())
