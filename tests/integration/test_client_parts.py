#!/usr/bin/env python3
"""`berth push --parts N --parallel P` against a real berth's part-session
API (/uploads/sessions, with htpasswd authentication): 256 MiB through 5
cuts, an interrupted push resumed with only the missing parts, status in
words and JSON, credentials from the environment, 401 without them."""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import Berth, Failure, Suite, TempDir  # noqa: E402
from clienttest import ClientEnv, file_digest, write_random  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

suite = Suite("test_client_parts")
MiB = 1 << 20
USER, PASSWORD = "alice", "s3cret-pw"


def auth_header():
    import base64
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()}


class RealBerth:
    """berth with htpasswd auth."""
    name = "berth"

    @staticmethod
    def make(tmp):
        htpasswd = tmp.join("htpasswd")
        subprocess.run(["htpasswd", "-Bbc", "-C", "5", htpasswd, USER, PASSWORD], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        srv = Berth(suite, config={"auth": {"htpasswd": {"realm": "berth-test", "path": htpasswd}}})
        srv.start(wait=False)
        # With auth, GET /v2/ answers 401 to anonymous clients: up all the same.
        deadline = time.monotonic() + 30
        while True:
            if srv.proc.poll() is not None:
                raise Failure("berth exited at start with an auth section: %s" % srv.stderr_tail(1500))
            try:
                if srv.client(timeout=5).get("/v2/", auth_header()).status in (200, 401):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise Failure("berth with auth did not answer GET /v2/")
            time.sleep(0.1)
        b = RealBerth()
        b.srv, b.port = srv, srv.port
        return b

    def head(self, repo, dgst):
        r = self.srv.client().head("/v2/%s/blobs/%s" % (repo, dgst), auth_header())
        return r.status, r.h("content-length")

    def stop(self):
        self.srv.stop()


def setup(kind):
    tmp = TempDir("berth-client-parts-")
    suite.add_cleanup(tmp.cleanup)
    be = kind.make(tmp)
    return be, tmp, ClientEnv(suite, tmp.path)


def blob_ok(be, repo, dgst, size):
    suite.eq("%s: HEAD /v2/%s/blobs/<digest>" % (be.name, repo), be.head(repo, dgst), (200, str(size)))


def parts_push_256mib_through_5_cuts(kind):
    srv, tmp, env = setup(kind)
    size = 256 * MiB
    path = tmp.join("big.bin")
    want = write_random(path, size, seed=256)
    cuts = [int(size * f) for f in (0.11, 0.29, 0.47, 0.66, 0.83)]
    proxy = FaultProxy(srv.port, cut_at=cuts).start()
    suite.add_cleanup(proxy.stop)
    rc, out, err = env.run(["push", "--parts", "16", "--parallel", "4", "--user", "%s:%s" % (USER, PASSWORD), path,
                            "127.0.0.1:%d/client/parts" % proxy.port], label="parts push")
    st = proxy.stats()
    suite.eq("parts push through 5 cuts: exit 0", rc, 0)
    suite.eq("parts push through 5 cuts: digest", out.strip(), want)
    suite.eq("the proxy cut 5 times", st["cuts"], 5)
    suite.check("each cut cost at most its parts (%d bytes sent)" % st["up_bytes"],
                size <= st["up_bytes"] <= size + 5 * 4 * 16 * MiB + 256 * 1024)
    suite.check("stderr shows retries", "retries" in err, err[-1500:])
    blob_ok(srv, "client/parts", want, size)
    suite.eq("no state file left", env.state_files(), [])
    proxy.stop()
    srv.stop()


def parts_interrupted_then_only_missing_parts(kind):
    srv, tmp, env = setup(kind)
    size = 64 * MiB + 5
    path = tmp.join("m.bin")
    want = write_random(path, size, seed=64)
    # A slow link; the client is killed (-9) once some parts are stored.
    proxy = FaultProxy(srv.port, rate=24 * MiB).start()
    suite.add_cleanup(proxy.stop)
    env.env["BERTH_USER"], env.env["BERTH_PASSWORD"] = USER, PASSWORD
    args = ["push", "--parts", "32", "--parallel", "2", path, "127.0.0.1:%d/client/pm" % proxy.port]
    p = env.popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and p.poll() is None:
        st = env.state()
        if st and st.get("url"):
            rc, out, _ = env.run(["status", "--json", st["url"]], label="status while pushing", check_sanitizer=False)
            done = json.loads(out).get("completed_parts", 0) if rc == 0 else 0
            if done >= 4:
                break
        time.sleep(0.1)
    suite.require("the first run was still going with >= 4 parts stored", p.poll() is None and done >= 4,
                  "rc %s, %d parts" % (p.poll(), done))
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    deadline = time.monotonic() + 60
    while proxy.active() and time.monotonic() < deadline:
        time.sleep(0.05)
    state = env.state()
    suite.require("a state file with the session URL", state is not None and "/uploads/sessions/" in state.get("url", ""),
                  str(state))
    url = state["url"]
    rc, out, err = env.run(["status", "--json", url], label="status --json")
    j = json.loads(out) if rc == 0 else {}
    suite.eq("status --json: exit 0", rc, 0)
    suite.eq("status --json: type parts", j.get("type"), "parts")
    suite.eq("status --json: IN_PROGRESS", j.get("status"), "IN_PROGRESS")
    suite.check("status --json: some parts missing", j.get("missing_parts"), out)
    rc, words, _ = env.run(["status", url], label="status")
    suite.check("status in words", rc == 0 and "missing parts:" in words and "IN_PROGRESS" in words, words)
    missing = 0
    for rg in j.get("missing_parts", []):
        a, _, b = str(rg).partition("-")
        missing += int(b or a) - int(a) + 1
    proxy.set_faults(rate=None)
    proxy.reset_counters()
    rc, out, err = env.run(args, label="parts push resumed")
    suite.eq("resumed parts push: exit 0", rc, 0)
    suite.eq("resumed parts push: digest", out.strip(), want)
    part = (size + 31) // 32  # parts still in flight at the kill (2 connections) may land after `missing` was read
    sent = proxy.stats()["up_bytes"]
    suite.check("resumed push sent only the %d missing parts (%d bytes)" % (missing, sent),
                sent <= missing * part + 64 * 1024 and sent >= (missing - 2) * part)
    blob_ok(srv, "client/pm", want, size)
    proxy.stop()
    srv.stop()


def parts_needs_credentials(kind):
    srv, tmp, env = setup(kind)
    path = tmp.join("c.bin")
    write_random(path, 3 * MiB, seed=3)
    rc, out, err = env.run(["push", "--parts", "3", path, "127.0.0.1:%d/client/nocred" % srv.port], label="no creds")
    suite.eq("parts push without credentials: exit 1", rc, 1)
    suite.check("it says credentials are needed", "credentials" in err, err)
    rc, out, err = env.run(["push", "--parts", "3", "--user", USER + ":wrong", path,
                            "127.0.0.1:%d/client/nocred" % srv.port], label="wrong creds")
    suite.eq("parts push with a wrong password: exit 1", rc, 1)
    srv.stop()


for _fn in (parts_push_256mib_through_5_cuts, parts_interrupted_then_only_missing_parts, parts_needs_credentials):
    def _t(fn=_fn):
        fn(RealBerth)
    _t.__name__ = _fn.__name__
    suite.test(_t)


if __name__ == "__main__":
    suite.main()
