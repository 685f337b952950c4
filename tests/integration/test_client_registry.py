#!/usr/bin/env python3
"""`berth push` (OCI chunked) and `berth pull` against Debian's reference
registry (docker-registry), directly and through a fault-injecting proxy.
Skipped when docker-registry is not installed."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import Suite, TempDir, free_port  # noqa: E402
from clienttest import ClientEnv, file_digest, write_random  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

suite = Suite("test_client_registry")
MiB = 1 << 20


class Registry:
    def __init__(self, tmp):
        self.port = free_port()
        self.root = os.path.join(tmp.path, "registry-data")
        os.makedirs(self.root)
        self.config = os.path.join(tmp.path, "registry.yml")
        with open(self.config, "w") as f:
            f.write("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
                    "storage:\n  filesystem:\n    rootdirectory: %s\n  maintenance:\n    uploadpurging:\n"
                    "      enabled: false\nhttp:\n  addr: 127.0.0.1:%d\n  secret: berth-client-test\n"
                    % (self.root, self.port))
        self.log = open(os.path.join(tmp.path, "registry.log"), "wb")
        env = dict(os.environ)
        env.pop("AWS_CA_BUNDLE", None)  # crashes its S3 driver at start
        self.proc = subprocess.Popen(["docker-registry", "serve", self.config], env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/v2/" % self.port, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("docker-registry did not start")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def head(self, repo, dgst):
        req = urllib.request.Request("http://127.0.0.1:%d/v2/%s/blobs/%s" % (self.port, repo, dgst), method="HEAD")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers.get("Content-Length"), r.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError as e:
            return e.code, None, None


@suite.test
def push_and_pull_against_docker_registry():
    if shutil.which("docker-registry") is None:
        suite.skip("docker-registry", "not installed")
        return
    tmp = TempDir("berth-client-reg-")
    suite.add_cleanup(tmp.cleanup)
    reg = Registry(tmp)
    suite.add_cleanup(reg.stop)
    env = ClientEnv(suite, tmp.path)
    size = 40 * MiB + 123
    path = tmp.join("f.bin")
    want = write_random(path, size, seed=5)
    target = "127.0.0.1:%d/client/reg" % reg.port
    rc, out, err = env.run(["push", "--chunk-size", "8MiB", path, target], label="push to docker-registry")
    suite.eq("push to docker-registry: exit 0", rc, 0)
    suite.eq("push to docker-registry: digest", out.strip(), want)
    suite.eq("docker-registry has the blob (HEAD)", reg.head("client/reg", want), (200, str(size), want))
    dst = tmp.join("f.out")
    rc, out, err = env.run(["pull", "%s@%s" % (target, want), dst], label="pull from docker-registry")
    suite.eq("pull from docker-registry: exit 0 and the right bytes",
             (rc, file_digest(dst) if rc == 0 else None), (0, want))
    rc, out, err = env.run(["push", path, target], label="push again")
    suite.check("second push: HEAD finds it", rc == 0 and "already has" in err, err)

    # Through cuts. The registry writes a cut-off chunk's bytes as far as
    # they came, while the signed `_state` in the last Location still names
    # the old offset: it then answers 404 (BLOB_UPLOAD_INVALID) to that
    # Location, so the upload cannot be resumed there and the client starts
    # a new session. It must still finish, with the right digest.
    path2 = tmp.join("g.bin")
    want2 = write_random(path2, 48 * MiB, seed=6)
    proxy = FaultProxy(reg.port, cut_at=[int(48 * MiB * f) for f in (0.2, 0.45, 0.7)]).start()
    suite.add_cleanup(proxy.stop)
    rc, out, err = env.run(["push", "--chunk-size", "8MiB", path2, "127.0.0.1:%d/client/regcut" % proxy.port],
                           label="push to docker-registry through cuts")
    suite.eq("push to docker-registry through 3 cuts: exit 0", rc, 0)
    suite.eq("push to docker-registry through 3 cuts: digest", out.strip(), want2)
    suite.eq("the proxy cut 3 times", proxy.stats()["cuts"], 3)
    suite.eq("docker-registry has it", reg.head("client/regcut", want2)[0], 200)
    suite.check("the client said why it started over", "starting over in a new session" in err, err[-1500:])


if __name__ == "__main__":
    suite.main()
