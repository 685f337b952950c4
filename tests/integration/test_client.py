#!/usr/bin/env python3
"""The berth client (`berth push/status/pull`) against a real berth, OCI
chunked mode: round trips, resume through a fault-injecting proxy (cuts,
stalls, random resets), resume across a kill -9 of the client, the state
file, HEAD before upload, pull resume and digest check, status output,
progress on a real pty, usage errors."""

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import BERTH_BIN, Berth, Suite, TempDir, sanitizer_report  # noqa: E402
from clienttest import ClientEnv, file_digest, write_random  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

suite = Suite("test_client")
MiB = 1 << 20
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def setup(config=None):
    srv = Berth(suite, config=config).start()
    tmp = TempDir("berth-client-")
    suite.add_cleanup(tmp.cleanup)
    return srv, tmp, ClientEnv(suite, tmp.path)


def reg(port, repo):
    return "127.0.0.1:%d/%s" % (port, repo)


def blob_on_server(srv, repo, dgst, size):
    r = srv.client().head("/v2/%s/blobs/%s" % (repo, dgst))
    ok = suite.eq("HEAD blob %s: status" % repo, r.status, 200)
    ok &= suite.eq("HEAD blob %s: Content-Length" % repo, r.h("content-length"), str(size))
    ok &= suite.eq("stored blob file digest", file_digest(srv.blob_path(dgst)), dgst)
    return ok


def access_log(srv):
    out = []
    try:
        with open(srv.tmp.join("access.log")) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def patch_counts(srv):
    """(PATCHes answered 202, answered 416) in the access log."""
    log = access_log(srv)
    ok = sum(1 for e in log if e.get("method") == "PATCH" and e.get("status") == 202)
    bad = sum(1 for e in log if e.get("method") == "PATCH" and e.get("status") == 416)
    return ok, bad


@suite.test
def usage_errors():
    tmp = TempDir("berth-client-")
    suite.add_cleanup(tmp.cleanup)
    env = ClientEnv(suite, tmp.path)
    rc, _, err = env.run(["push"], label="push without arguments")
    suite.eq("push without arguments: exit 2", rc, 2)
    rc, _, err = env.run(["push", "/etc/hostname", "no-repo"], label="push bad ref")
    suite.eq("push to a reference without a repository: exit 2", rc, 2)
    rc, _, err = env.run(["push", "--parts", "0", "/etc/hostname", "127.0.0.1:1/a"], label="push --parts 0")
    suite.eq("push --parts 0: exit 2", rc, 2)
    rc, _, err = env.run(["pull", "127.0.0.1:1/a", "x"], label="pull without digest")
    suite.eq("pull without @digest: exit 2", rc, 2)
    rc, _, err = env.run(["status", "not-a-url"], label="status bad url")
    suite.eq("status of a non-URL: exit 2", rc, 2)
    rc, _, err = env.run(["push", tmp.join("missing"), "127.0.0.1:1/a"], label="push missing file")
    suite.eq("push of a missing file: exit 1", rc, 1)
    suite.check("push of a missing file: says so", "No such file" in err, err)
    rc, out, _ = env.run(["push", "--help"], label="push --help")
    suite.check("push --help: exit 0 and usage", rc == 0 and "--chunk-size" in out, out)


@suite.test
def push_pull_round_trip():
    srv, tmp, env = setup()
    for size, chunk, name in ((0, "1MiB", "empty"), (1, "1MiB", "one"), (5 * MiB + 17, "1MiB", "odd"),
                              (3 * MiB, "3MiB", "exact")):
        path = tmp.join(name + ".bin")
        want = write_random(path, size, seed=size)
        rc, out, err = env.run(["push", "--chunk-size", chunk, path, reg(srv.port, "client/rt")], label="push " + name)
        suite.eq("push %s (%d bytes): exit 0" % (name, size), rc, 0)
        suite.eq("push %s: prints the digest" % name, out.strip(), want)
        blob_on_server(srv, "client/rt", want, size)
        suite.eq("push %s: no state file left" % name, env.state_files(), [])
        dst = tmp.join(name + ".out")
        rc, out, err = env.run(["pull", "%s@%s" % (reg(srv.port, "client/rt"), want), dst], label="pull " + name)
        suite.eq("pull %s: exit 0" % name, rc, 0)
        suite.eq("pull %s: prints the digest" % name, out.strip(), want)
        suite.eq("pull %s: file digest" % name, file_digest(dst) if os.path.exists(dst) else None, want)
    srv.stop()


@suite.test
def head_before_upload():
    srv, tmp, env = setup()
    path = tmp.join("f.bin")
    want = write_random(path, 3 * MiB, seed=7)
    rc, out, _ = env.run(["push", path, reg(srv.port, "client/head")])
    suite.eq("first push: exit 0", rc, 0)
    proxy = FaultProxy(srv.port).start()
    suite.add_cleanup(proxy.stop)
    # The digest is remembered for this file: the second push only HEADs.
    rc, out, err = env.run(["push", path, reg(proxy.port, "client/head")])
    suite.eq("second push: exit 0", rc, 0)
    suite.eq("second push: digest", out.strip(), want)
    suite.check("second push: says the registry has it", "already has" in err, err)
    suite.check("second push: sent no body (%d bytes up)" % proxy.stats()["up_bytes"],
                proxy.stats()["up_bytes"] < 4096)
    # --digest for a file the cache does not know, in another repository:
    other = tmp.join("g.bin")
    with open(path, "rb") as a, open(other, "wb") as b:
        b.write(a.read())
    rc, out, err = env.run(["push", "--digest", want, other, reg(srv.port, "client/head")])
    suite.check("push --digest of a present blob: exit 0, no upload", rc == 0 and "already has" in err, err)
    # a wrong --digest is caught after the upload
    rc, out, err = env.run(["push", "--digest", "sha256:" + "0" * 64, other, reg(srv.port, "client/head2")])
    suite.eq("push with a wrong --digest: exit 1", rc, 1)
    suite.check("push with a wrong --digest: says so", "not the given" in err, err)
    srv.stop()


@suite.test
def push_256mib_through_5_cuts():
    srv, tmp, env = setup()
    size, chunk = 256 * MiB, 16 * MiB
    path = tmp.join("big.bin")
    want = write_random(path, size, seed=256)
    # Cuts at uneven places, each inside a different chunk's body.
    cuts = [int(size * f) for f in (0.11, 0.29, 0.47, 0.66, 0.83)]
    proxy = FaultProxy(srv.port, cut_at=cuts).start()
    suite.add_cleanup(proxy.stop)
    rc, out, err = env.run(["push", "--retries", "4", path, reg(proxy.port, "client/cuts")], label="push 256 MiB")
    st = proxy.stats()
    suite.eq("push through 5 cuts: exit 0", rc, 0)
    suite.eq("push through 5 cuts: digest", out.strip(), want)
    suite.eq("the proxy cut 5 times", st["cuts"], 5)
    blob_on_server(srv, "client/cuts", want, size)
    ok202, n416 = patch_counts(srv)
    suite.eq("server accepted each chunk exactly once (202 PATCHes)", ok202, size // chunk)
    suite.eq("server answered no 416 (never a byte twice)", n416, 0)
    # On the wire: the file once, plus at most the cut-off request of each
    # cut, plus headers.
    overhead = 5 * chunk + 64 * 1024
    suite.check("bytes sent %d <= size + 5 cut-off chunks" % st["up_bytes"],
                size <= st["up_bytes"] <= size + overhead, "extra %d" % (st["up_bytes"] - size))
    suite.eq("stderr tells each retry", err.count("berth: chunk at"), 5)
    srv.stop()


@suite.test
def push_through_stall_and_random_resets():
    srv, tmp, env = setup()
    size = 48 * MiB
    path = tmp.join("s.bin")
    want = write_random(path, size, seed=48)
    proxy = FaultProxy(srv.port, stall_at=[9 * MiB], stall_secs=6, reset_prob=0.3, seed=4, max_resets=4,
                       min_gap=4 * MiB).start()
    suite.add_cleanup(proxy.stop)
    rc, out, err = env.run(["push", "--chunk-size", "2MiB", "--timeout", "2", "--retries", "6", path,
                            reg(proxy.port, "client/stall")], label="push with stall")
    st = proxy.stats()
    suite.eq("push through a stall and resets: exit 0", rc, 0)
    suite.eq("push through a stall and resets: digest", out.strip(), want)
    suite.eq("the proxy stalled once", st["stalls"], 1)
    suite.check("the proxy reset at random (%d)" % st["resets"], st["resets"] >= 1, str(st["events"]))
    suite.check("stderr names the stall", "stalled: no byte moved for 2 s" in err, err[-1500:])
    blob_on_server(srv, "client/stall", want, size)
    proxy.stop()
    srv.stop()


@suite.test
def gives_up_after_retries_and_resumes_later():
    srv, tmp, env = setup()
    size = 8 * MiB
    path = tmp.join("r.bin")
    want = write_random(path, size, seed=88)
    # Every connection dies after 1.5 MiB: with 1 MiB chunks, progress is
    # slow but real; with --retries 0 the first cut is fatal.
    proxy = FaultProxy(srv.port, cut_at=[3 * MiB // 2]).start()
    suite.add_cleanup(proxy.stop)
    rc, out, err = env.run(["push", "--chunk-size", "1MiB", "--retries", "0", path, reg(proxy.port, "client/later")])
    suite.eq("push with --retries 0 through a cut: exit 1", rc, 1)
    suite.check("it says how to resume", "run the same command again" in err, err[-1000:])
    state = env.state()
    suite.require("a state file remains", state is not None and state.get("url"))
    suite.check("state offset is the acknowledged 1 MiB", state.get("offset") == MiB, str(state))
    rc, out, err = env.run(["push", "--chunk-size", "1MiB", path, reg(proxy.port, "client/later")])
    suite.eq("the same command again: exit 0", rc, 0)
    suite.eq("the same command again: digest", out.strip(), want)
    suite.check("it resumed the same session", "resuming session %s" % state["url"] in err, err[-1500:])
    suite.eq("state file removed after success", env.state_files(), [])
    blob_on_server(srv, "client/later", want, size)
    srv.stop()


def status_offset(srv, url):
    path = "/" + url.split("/", 3)[3]
    r = srv.client().get(path)
    if r.status != 204 or not r.h("range"):
        return None
    last = int(r.h("range").split("-")[1])
    return 0 if last == 0 else last + 1


@suite.test
def kill9_client_then_resume():
    srv, tmp, env = setup()
    size, chunk = 64 * MiB, 2 * MiB
    path = tmp.join("k.bin")
    want = write_random(path, size, seed=9)
    # Slow the first run down so that it can be killed half way.
    proxy = FaultProxy(srv.port, rate=16 * MiB).start()
    suite.add_cleanup(proxy.stop)
    args = ["push", "--chunk-size", "2MiB", path, reg(proxy.port, "client/kill")]
    errpath = tmp.join("first.stderr")
    with open(errpath, "wb") as ef:
        p = env.popen(args, stdout=subprocess.DEVNULL, stderr=ef)
    url, off = None, 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None:
        st = env.state()
        url = st.get("url") if st else None
        if url:
            off = status_offset(srv, url) or 0
            if off >= 16 * MiB:
                break
        time.sleep(0.05)
    suite.require("first run still going at >= 16 MiB", p.poll() is None and off >= 16 * MiB,
                  "rc %s off %d" % (p.poll(), off))
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    # The proxy may still hold bytes of the killed client: once it has
    # closed that connection, the server's offset is final.
    deadline = time.monotonic() + 60
    while proxy.active() and time.monotonic() < deadline:
        time.sleep(0.05)
    suite.check("proxy connection closed after the kill", not proxy.active())
    before = status_offset(srv, url)
    suite.check("after kill -9 the server holds %s bytes (> 0)" % before, before is not None and before > 0)
    suite.require("state file survives the kill", env.state() is not None and env.state()["url"] == url)
    proxy.set_faults(rate=None)
    proxy.reset_counters()
    rc, out, err = env.run(args, label="push after kill -9")
    suite.eq("rerun: exit 0", rc, 0)
    suite.eq("rerun: digest", out.strip(), want)
    # The server may still have been storing the last whole chunk when
    # `before` was read: the rerun resumes at the server's offset then, at
    # least `before`.
    m = re.search(r"resuming session (\S+) at (\d+) bytes", err)
    suite.check("rerun: continued session %s" % url, m is not None and m.group(1) == url, err[-1500:])
    resumed = int(m.group(2)) if m else 0
    suite.check("rerun: resumed at the server's offset %d >= %s" % (resumed, before),
                before is not None and resumed >= before > 0 and resumed % chunk == 0)
    sent = proxy.stats()["up_bytes"]
    suite.check("rerun sent %d bytes: the rest only (%d left)" % (sent, size - resumed),
                size - resumed <= sent <= size - resumed + 64 * 1024)
    blob_on_server(srv, "client/kill", want, size)
    with open(errpath, "rb") as f:
        rep = sanitizer_report(f.read().decode("utf-8", "replace"))
    suite.check("killed run: no sanitizer report", rep is None, rep or "")
    srv.stop()


@suite.test
def changed_file_does_not_reuse_state():
    srv, tmp, env = setup()
    path = tmp.join("c.bin")
    write_random(path, 4 * MiB, seed=1)
    proxy = FaultProxy(srv.port, cut_at=[3 * MiB // 2]).start()
    suite.add_cleanup(proxy.stop)
    rc, _, _ = env.run(["push", "--chunk-size", "1MiB", "--retries", "0", path, reg(proxy.port, "client/chg")])
    suite.eq("interrupted push: exit 1", rc, 1)
    suite.check("a state file remains", len(env.state_files()) == 1)
    want = write_random(path, 4 * MiB, seed=2)  # same size, new bytes and mtime
    os.utime(path, ns=(time.time_ns() + 5 * 10**9, time.time_ns() + 5 * 10**9))
    rc, out, err = env.run(["push", "--chunk-size", "1MiB", path, reg(srv.port, "client/chg")])
    suite.eq("push of the changed file: exit 0, its own digest", (rc, out.strip()), (0, want))
    suite.check("it did not resume the old session", "resuming" not in err, err)
    blob_on_server(srv, "client/chg", want, 4 * MiB)
    srv.stop()


@suite.test
def status_command():
    srv, tmp, env = setup()
    c = srv.client()
    r = c.post("/v2/client/st/blobs/uploads/")
    suite.require_eq("POST session", r.status, 202)
    url = srv.url(r.h("location"))
    rc, out, _ = env.run(["status", url])
    suite.eq("status of an empty session: exit 0", rc, 0)
    suite.check("status of an empty session: 0 bytes", "0 bytes received" in out, out)
    r = c.patch(r.h("location"), b"x" * 1000, {"Content-Range": "0-999", "Content-Type": "application/octet-stream"})
    suite.require_eq("PATCH", r.status, 202)
    rc, out, _ = env.run(["status", url])
    suite.check("status after 1000 bytes: in words", rc == 0 and "1000 bytes received" in out and "0-999" in out, out)
    rc, out, _ = env.run(["status", "--json", url])
    j = json.loads(out) if rc == 0 else None
    suite.eq("status --json", (j or {}).get("offset"), 1000)
    suite.eq("status --json type", (j or {}).get("type"), "oci")
    rc, out, _ = env.run(["status", srv.url("/v2/client/st/blobs/uploads/00000000-0000-4000-8000-000000000000")])
    suite.check("status of an unknown session: exit 1, says so", rc == 1 and "no such session" in out, out)
    rc, out, err = env.run(["status", "http://127.0.0.1:1/v2/a/blobs/uploads/x", "--retries", "0"])
    suite.check("status with nobody listening: exit 1", rc == 1 and err.strip() != "", err)
    srv.stop()


@suite.test
def pull_resume_and_verify():
    srv, tmp, env = setup()
    size = 24 * MiB
    path = tmp.join("p.bin")
    want = write_random(path, size, seed=24)
    rc, out, _ = env.run(["push", path, reg(srv.port, "client/pull")])
    suite.require_eq("push for pull: exit 0", rc, 0)
    ref = "%s@%s" % (reg(srv.port, "client/pull"), want)
    # a partial file: the first 10 MiB
    dst = tmp.join("p.out")
    with open(path, "rb") as a, open(dst, "wb") as b:
        b.write(a.read(10 * MiB))
    proxy = FaultProxy(srv.port).start()
    suite.add_cleanup(proxy.stop)
    rc, out, err = env.run(["pull", "%s@%s" % (reg(proxy.port, "client/pull"), want), dst])
    suite.eq("pull of a partial file: exit 0", rc, 0)
    suite.eq("pull of a partial file: digest", file_digest(dst), want)
    suite.check("pull resumed at 10 MiB", "resuming" in err and proxy.stats()["down_bytes"] < size - 10 * MiB + 65536,
                "down %d" % proxy.stats()["down_bytes"])
    os.unlink(dst)
    # a corrupt partial file: detected at the end, removed
    with open(path, "rb") as a, open(dst, "wb") as b:
        head = bytearray(a.read(MiB))
        head[100] ^= 0xFF
        b.write(head)
    rc, out, err = env.run(["pull", ref, dst])
    suite.eq("pull over a corrupt partial file: exit 1", rc, 1)
    suite.check("pull over a corrupt partial file: says so and removes it", "removed" in err and not os.path.exists(dst),
                err)
    rc, out, err = env.run(["pull", ref, dst])
    suite.eq("pull again: exit 0 and right", (rc, file_digest(dst) if rc == 0 else None), (0, want))
    rc, out, err = env.run(["pull", "%s@sha256:%s" % (reg(srv.port, "client/pull"), "1" * 64), tmp.join("none")])
    suite.check("pull of an unknown blob: exit 1, says so", rc == 1 and "has no blob" in err, err)
    srv.stop()


class CutDownProxy(FaultProxy):
    """Cuts the server->client stream after `every` bytes, `times` times."""

    def __init__(self, port, every, times):
        super().__init__(port)
        self.every, self.times = every, times

    def _pump_down(self, u, c, dead):
        sent = 0
        try:
            while not dead.is_set():
                data = u.recv(65536)
                if not data:
                    break
                with self.lock:
                    cut = self.cuts < self.times and sent + len(data) >= self.every
                    take = self.every - sent if cut else len(data)
                    self.down_bytes += take
                    if cut:
                        self.cuts += 1
                c.sendall(data[:take])
                sent += take
                if cut:
                    break
        except OSError:
            pass
        self._kill(c, u, dead)


@suite.test
def pull_through_cuts():
    srv, tmp, env = setup()
    size = 40 * MiB
    path = tmp.join("d.bin")
    want = write_random(path, size, seed=40)
    rc, _, _ = env.run(["push", path, reg(srv.port, "client/down")])
    suite.require_eq("push for pull: exit 0", rc, 0)
    proxy = CutDownProxy(srv.port, 7 * MiB, 5).start()
    suite.add_cleanup(proxy.stop)
    dst = tmp.join("d.out")
    rc, out, err = env.run(["pull", "%s@%s" % (reg(proxy.port, "client/down"), want), dst])
    suite.eq("pull through 5 cuts: exit 0", rc, 0)
    suite.eq("pull through 5 cuts: digest", file_digest(dst) if rc == 0 else None, want)
    suite.eq("the proxy cut 5 times", proxy.stats()["cuts"], 5)
    # A reset drops what sat unread in the client's socket buffer: at most
    # the kernel's receive buffer per cut comes again, never the whole blob.
    with open("/proc/sys/net/ipv4/tcp_rmem") as f:
        rmem = int(f.read().split()[2])
    down = proxy.stats()["down_bytes"]
    suite.check("downloaded the blob about once (%d, size %d, 5 x rmem %d)" % (down, size, 5 * rmem),
                size <= down <= size + 5 * rmem + 64 * 1024)
    srv.stop()


def run_on_pty(env, args, timeout=300):
    """Runs berth with stderr (and stdout) on a pty; returns (rc, output)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.clear()
        os.environ.update(env.env)
        os.environ["TERM"] = "xterm"
        os.execv(BERTH_BIN, [BERTH_BIN] + args)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 1.0)
        if r:
            try:
                b = os.read(fd, 65536)
            except OSError:
                break
            if not b:
                break
            out += b
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")


@suite.test
def progress_on_a_terminal_lines_and_quiet():
    srv, tmp, env = setup()
    path = tmp.join("t.bin")
    size = 32 * MiB
    want = write_random(path, size, seed=32)
    proxy = FaultProxy(srv.port, rate=32 * MiB, cut_at=[5 * MiB]).start()
    suite.add_cleanup(proxy.stop)
    env.env["BERTH_PROGRESS_INTERVAL_MS"] = "200"
    rc, out = run_on_pty(env, ["push", "--chunk-size", "1MiB", path, reg(proxy.port, "client/tty")])
    suite.eq("push on a pty: exit 0", rc, 0)
    suite.check("pty: the digest is printed", want in out, out[-500:])
    suite.check("pty: the bar is redrawn in place (\\r + erase)", out.count("\r") >= 3 and "\x1b[K" in out,
                repr(out[:300]))
    suite.check("pty: a bar with bytes, rate and ETA", re.search(r"\[#*>?\.*\] push [0-9.]+ \S+ / 32\.0 MiB .*/s ETA", out),
                repr(out[-600:]))
    suite.check("pty: the resumed-from offset and retries show", "resumed at" in out and "retries 1" in out,
                repr(out[-600:]))
    suite.check("pty: no sanitizer report", sanitizer_report(out) is None, sanitizer_report(out) or "")

    proxy.set_faults(rate=32 * MiB)
    rc, out, err = env.run(["push", "--chunk-size", "1MiB", path, reg(proxy.port, "client/lines")])
    suite.eq("push to a pipe: exit 0", rc, 0)
    suite.check("pipe: no carriage returns or escapes", "\r" not in err and "\x1b" not in err, repr(err[:300]))
    lines = [ln for ln in err.splitlines() if re.match(r"^berth: push [0-9.]+ \S+ / 32\.0 MiB", ln)]
    suite.check("pipe: periodic plain progress lines (%d)" % len(lines), len(lines) >= 2, err[-800:])
    suite.check("pipe: a summary line", "berth: pushed %s" % want in err, err[-500:])

    rc, out, err = env.run(["push", "--quiet", "--chunk-size", "1MiB", path, reg(srv.port, "client/quiet")])
    suite.eq("--quiet: exit 0, digest on stdout", (rc, out.strip()), (0, want))
    suite.eq("--quiet: nothing on stderr", err, "")
    srv.stop()


class FlakyFront:
    """An HTTP/1.1 front for berth that answers chosen PATCHes itself:
    plan maps the n-th PATCH (1-based) to "503-after" (forward it, so the
    chunk lands, then answer 503), "416" or "500" (answer without
    forwarding), "half-500" (forward the first half of the chunk, answer
    500). Everything else is forwarded."""

    def __init__(self, port, plan):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        front = self
        self.plan, self.patches, self.lock = plan, 0, threading.Lock()

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                action = None
                if self.command == "PATCH":
                    with front.lock:
                        front.patches += 1
                        action = front.plan.get(front.patches)
                status, hdrs, data = 0, [], b""
                if action == "half-500" and body:
                    # Store only the first half of the chunk, then fail: the
                    # session's offset is no longer on a chunk boundary.
                    first = int(self.headers["Content-Range"].split("-")[0])
                    half = len(body) // 2
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    c.request("PATCH", self.path, body=body[:half],
                              headers={"Content-Range": "%d-%d" % (first, first + half - 1),
                                       "Content-Type": "application/octet-stream"})
                    c.getresponse().read()
                    c.close()
                if action in (None, "503-after"):
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    fwd = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    c.request(self.command, self.path, body=body, headers=fwd)
                    r = c.getresponse()
                    data = r.read()
                    status, hdrs = r.status, [(k, v) for k, v in r.getheaders()
                                              if k.lower() not in ("content-length", "connection",
                                                                   "transfer-encoding")]
                    c.close()
                if action is not None:
                    code = 500 if action == "half-500" else int(action[:3])
                    status, hdrs, data = code, [], b'{"errors":[{"code":"X","message":"injected"}]}'
                self.send_response(status)
                for k, v in hdrs:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@suite.test
def server_errors_and_416_resume_from_status():
    srv, tmp, env = setup()
    size = 10 * MiB
    path = tmp.join("e.bin")
    want = write_random(path, size, seed=10)
    # PATCH 2 lands but answers 503; PATCH 4 gets 416 and PATCH 6 gets 500
    # without landing. The client must resync from the status each time:
    # adopt chunk 2 without sending it again, re-send the other two.
    front = FlakyFront(srv.port, {2: "503-after", 4: "416", 6: "500"})
    suite.add_cleanup(front.stop)
    rc, out, err = env.run(["push", "--chunk-size", "1MiB", path, reg(front.port, "client/flaky")], label="flaky")
    suite.eq("push through 503/416/500: exit 0", rc, 0)
    suite.eq("push through 503/416/500: digest", out.strip(), want)
    suite.check("stderr names the 416", "HTTP 416" in err, err[-1500:])
    suite.check("three retries", "3 retries" in err, err[-400:])
    # 10 chunks + 2 that did not land; the landed-then-503 one is not re-sent
    suite.eq("PATCHes sent: 10 chunks + the 2 that did not land", front.patches, 12)
    ok202, n416 = patch_counts(srv)
    suite.eq("server accepted each chunk once", (ok202, n416), (10, 0))
    blob_on_server(srv, "client/flaky", want, size)
    front.stop()
    srv.stop()


@suite.test
def resume_from_an_offset_inside_a_chunk():
    srv, tmp, env = setup()
    size = 6 * MiB + 333
    path = tmp.join("h.bin")
    want = write_random(path, size, seed=66)
    # PATCH 3 stores half of its chunk and answers 500: the status then says
    # 2.5 MiB, and the client must hash exactly up to there (re-reading the
    # half chunk from the file) and go on from that offset.
    front = FlakyFront(srv.port, {3: "half-500"})
    suite.add_cleanup(front.stop)
    rc, out, err = env.run(["push", "--chunk-size", "1MiB", path, reg(front.port, "client/half")], label="half")
    suite.eq("push resumed inside a chunk: exit 0", rc, 0)
    suite.eq("push resumed inside a chunk: digest", out.strip(), want)
    suite.check("it resumed at 2.5 MiB", "resumed at 2.5 MiB" in err, err[-1000:])
    blob_on_server(srv, "client/half", want, size)
    front.stop()
    srv.stop()


@suite.test
def tls_http2_insecure_and_credentials():
    srv = Berth(suite, tls=True).start()
    tmp = TempDir("berth-client-")
    suite.add_cleanup(tmp.cleanup)
    env = ClientEnv(suite, tmp.path)
    path = tmp.join("t.bin")
    want = write_random(path, 5 * MiB, seed=11)
    target = "https://127.0.0.1:%d/client/tls" % srv.port
    rc, out, err = env.run(["push", "--retries", "0", path, target], label="push TLS verified")
    suite.eq("push to a self-signed server without --insecure: exit 1", rc, 1)
    suite.check("it names the certificate problem", "certificate" in err.lower(), err[-600:])
    # credentials are sent (berth's OCI API ignores them without auth)
    env.env["BERTH_USER"], env.env["BERTH_PASSWORD"] = "u", "p"
    rc, out, err = env.run(["push", "--insecure", "--chunk-size", "1MiB", path, target], label="push TLS insecure")
    suite.eq("push --insecure over TLS: exit 0, digest", (rc, out.strip()), (0, want))
    suite.check("it used HTTP/2 (ALPN)", "(HTTP/2)" in err, err[-600:])
    rc, out, err = env.run(["pull", "-k", "%s@%s" % (target, want), tmp.join("t.out")], label="pull TLS")
    suite.eq("pull -k over TLS: exit 0, digest", (rc, file_digest(tmp.join("t.out")) if rc == 0 else None), (0, want))
    srv.stop()


if __name__ == "__main__":
    suite.main()
