#!/usr/bin/env python3
"""The command line, the configuration file and graceful shutdown."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from berthtest import (BERTH_BIN, SOURCE_DIR, Berth, Client, Suite, TempDir, berth_env, blob_url,  # noqa: E402
                       content_range, digest, parse_raw_response, port_free, run_berth, sanitizer_report,
                       start_upload)

suite = Suite("test_config")


def project_version():
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
        m = re.search(r"project\(\s*berth\s+VERSION\s+([0-9.]+)", f.read())
    return m.group(1) if m else None


@suite.test
def version_and_help():
    rc, out, err = run_berth(["version"])
    suite.eq("berth version exits 0", rc, 0)
    v = project_version()
    suite.check("berth version prints %s" % v, v and v in out, repr(out + err))
    suite.check("berth version: no sanitizer report", sanitizer_report(err) is None, err)
    rc, out, err = run_berth(["--help"])
    suite.eq("berth --help exits 0", rc, 0)
    suite.check("berth --help mentions serve and -c", "serve" in out + err and "-c" in out + err, repr(out + err))
    rc, out, err = run_berth(["no-such-command"])
    suite.check("unknown command exits non-zero", rc != 0, "rc %d" % rc)
    suite.check("unknown command says something", (out + err).strip() != "")


@suite.test
def version_names_h2o():
    """`berth version` names the libh2o it was built with, as CMake found it
    (ctest passes BERTH_H2O_VERSION, read from h2o's headers), and what this
    build does with request bodies."""
    rc, out, err = run_berth(["version"])
    m = re.search(r"^h2o (\S+) \((.+)\)$", out, re.M)
    suite.check("berth version names h2o: 'h2o <version> (<origin>)'", m is not None, repr(out))
    want = os.environ.get("BERTH_H2O_VERSION")
    if m and want:
        suite.eq("berth version names the h2o CMake chose", m.group(1), want)
    elif m:
        suite.check("berth version's h2o version looks like one", re.match(r"^2\.[0-9]+\.[0-9]+", m.group(1)),
                    m.group(1))
    suite.check("berth version says how request bodies arrive",
                re.search(r"^request bodies: buffered whole$", out, re.M) is not None, repr(out))


def expect_config_error(tmp, label, text, key=None, line=None, want_rc=2):
    """Runs `berth serve -c` on `text`; expects exit want_rc and a message
    "FILE:LINE: ..." naming `key`."""
    path = tmp.join("bad-%s.yaml" % re.sub(r"[^a-z0-9]+", "-", label.lower()))
    with open(path, "w") as f:
        f.write(text)
    rc, out, err = run_berth(["serve", "-c", path], timeout=60)
    msg = out + err
    suite.eq("%s: exit %d" % (label, want_rc), rc, want_rc)
    if key is not None:
        suite.check("%s: message names %s" % (label, key), key in msg, repr(msg[-500:]))
    if line is not None:
        suite.check("%s: message has FILE:%d:" % (label, line), "%s:%d:" % (path, line) in msg, repr(msg[-500:]))
    else:
        suite.check("%s: message names the file" % label, path in msg, repr(msg[-500:]))
    suite.check("%s: no sanitizer report" % label, sanitizer_report(err) is None, err[-2000:])


@suite.test
def config_errors():
    tmp = TempDir()
    suite.add_cleanup(tmp.cleanup)
    root = tmp.join("root")
    head = 'http:\n  addr: "127.0.0.1:1"\n  threads: 1\nstorage:\n  filesystem:\n    rootdirectory: "%s"\n' % root
    # head is 6 lines; appended text starts on line 7
    cases = [
        ("unknown key", head + "log:\n  level: info\n  bogusness: 3\n", "bogusness", 9),
        ("unknown top-level key", head + "frobnicate:\n  x: 1\n", "frobnicate", 7),
        ("unknown nested key", head + "    flavour: fast\n", "flavour", 7),
        ("unknown key after valid sections", head + "uploads:\n  ttl: 7d\n" +
         "log:\n  level: info\n" + "http2:\n  x: 1\n", "http2", 11),
        ("http.threads not an integer", 'http:\n  addr: "127.0.0.1:1"\n  threads: lots\n', "threads", 3),
        ("http.threads negative", 'http:\n  threads: -3\n', "threads", 2),
        ("storage.filesystem.sync", head + "    sync: sometimes\n", "sync", 7),
        ("log.level", head + "log:\n  level: loud\n", "level", 8),
        ("http.maxchunksize", 'http:\n  maxchunksize: 1XB\n', "maxchunksize", 2),
        ("http.timeout", 'http:\n  addr: "127.0.0.1:1"\n  timeout: soon\n', "timeout", 3),
        ("uploads.ttl", head + "uploads:\n  ttl: forever\n", "ttl", 8),
        ("uploads.purgeinterval", head + "uploads:\n  ttl: 1h\n  purgeinterval: -5s\n", "purgeinterval", 9),
        ("storage.workers", 'storage:\n  workers: many\n', "workers", 2),
        ("http.http2.maxconcurrentstreams", 'http:\n  http2:\n    maxconcurrentstreams: x\n',
         "maxconcurrentstreams", 3),
        ("duplicate key", 'http:\n  threads: 1\n  threads: 2\n', "threads", 3),
        ("malformed YAML", 'http:\n  addr: "127.0.0.1:1\n  threads: [\n', None, None),
        ("scalar for a section", 'http: 5\n', "http", 1),
        ("sequence for a scalar", 'log:\n  level: [info, debug]\n', "level", 2),
    ]
    for label, text, key, line in cases:
        expect_config_error(tmp, label, text, key, line)

    missing = tmp.join("does-not-exist.yaml")
    rc, out, err = run_berth(["serve", "-c", missing])
    suite.check("missing config file: non-zero exit", rc != 0, "rc %d" % rc)
    suite.check("missing config file: message names it", missing in out + err, repr((out + err)[-300:]))
    rc, out, err = run_berth(["serve", "-c"])
    suite.check("-c without a file: non-zero exit", rc != 0, "rc %d" % rc)
    # every documented key together is accepted and serves
    srv = Berth(suite, config={
        "http": {"threads": 1, "timeout": "300s", "maxchunksize": "1GiB", "shutdowntimeout": "10s",
                 "http2": {"maxconcurrentstreams": 100}},
        "storage": {"filesystem": {"sync": "commit"}, "workers": 2},
        "uploads": {"ttl": "7d", "purgeinterval": "1h"},
        "log": {"level": "debug", "accesslog": ""},
    }).start()
    suite.eq("a config with every key serves", srv.client().get("/v2/").status, 200)
    srv.stop(label="berth (every key)")


@suite.test
def example_config():
    """config.example.yaml as shipped (only the port and the paths moved)."""
    src = os.path.join(SOURCE_DIR, "config.example.yaml")
    if not os.path.exists(src):
        suite.fail("config.example.yaml exists", src)
        return
    with open(src) as f:
        text = f.read()
    srv = Berth(suite)
    text, n = re.subn(r"(?m)^(\s*addr:\s*).*$", lambda m: '%s"127.0.0.1:%d"' % (m.group(1), srv.port), text)
    suite.eq("config.example.yaml has one http.addr", n, 1)
    text = re.sub(r"(?m)^(\s*rootdirectory:\s*).*$", lambda m: '%s"%s"' % (m.group(1), srv.root), text)
    srv.write_config(text)
    srv.start()
    r = srv.client().get("/v2/")
    suite.eq("berth serves with config.example.yaml", r.status, 200)
    srv.stop(label="berth (config.example.yaml)")


@suite.test
def tls_and_bind_errors():
    tmp = TempDir()
    suite.add_cleanup(tmp.cleanup)
    path = tmp.join("tls.yaml")
    with open(path, "w") as f:
        f.write('http:\n  addr: "127.0.0.1:1"\n  tls:\n    certificate: "%s"\n    key: "%s"\nstorage:\n'
                '  filesystem:\n    rootdirectory: "%s"\n' % (tmp.join("nocert.pem"), tmp.join("nokey.pem"),
                                                              tmp.join("root")))
    rc, out, err = run_berth(["serve", "-c", path])
    suite.check("missing TLS certificate: non-zero exit", rc != 0, "rc %d" % rc)
    suite.check("missing TLS certificate: message names the file", "nocert.pem" in out + err,
                repr((out + err)[-300:]))
    # port already taken
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        path = tmp.join("busy.yaml")
        with open(path, "w") as f:
            f.write('http:\n  addr: "127.0.0.1:%d"\nstorage:\n  filesystem:\n    rootdirectory: "%s"\n' %
                    (port, tmp.join("root")))
        rc, out, err = run_berth(["serve", "-c", path])
        suite.check("address in use: non-zero exit", rc != 0, "rc %d" % rc)
        suite.check("address in use: says so", (out + err).strip() != "", repr(out + err))
    finally:
        s.close()


@suite.test
def sigterm_and_sigint():
    for sig in (signal.SIGTERM, signal.SIGINT):
        srv = Berth(suite).start()
        c = srv.client()
        r, loc, uuid = start_upload(c, "sig/test")
        suite.eq("%s: POST" % sig.name, r.status, 202)
        srv.stop(sig, label="berth (%s)" % sig.name)
        srv.cleanup()


@suite.test
def sigterm_with_upload_in_flight():
    srv = Berth(suite, config={"http": {"shutdowntimeout": "60s"}}).start()
    repo = "graceful/up"
    c = srv.client()
    r, loc, uuid = start_upload(c, repo)
    suite.require_eq("POST", r.status, 202)
    a = os.urandom(100000)
    suite.require_eq("first chunk", c.patch(loc, a, {"Content-Range": content_range(0, len(a))}).status, 202)

    big = os.urandom(24 << 20)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
    s.sendall(("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Range: %s\r\n"
               "Content-Length: %d\r\n\r\n" % (loc, content_range(len(a), len(big)), len(big))).encode())
    half = len(big) // 2
    s.sendall(big[:half])
    srv.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    outcome = None
    try:
        s.sendall(big[half:])
        buf = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
            resp = parse_raw_response(buf)
            if resp is not None:
                break
        resp = parse_raw_response(buf)
        outcome = resp.status if resp else "closed"
    except (BrokenPipeError, ConnectionResetError) as e:
        outcome = "reset: %r" % e
    finally:
        s.close()
    print("# in-flight PATCH outcome: %s" % outcome, flush=True)
    suite.check("in-flight PATCH completes with 202 or the connection closes", outcome in (202, "closed"),
                repr(outcome))
    rc = srv.wait_exit()
    suite.eq("berth exits 0 after SIGTERM with an upload in flight", rc, 0)
    srv.check_sanitizer()

    srv.start()
    r = srv.client().get(loc)
    want = len(a) + len(big) if outcome == 202 else len(a)
    suite.eq("after restart the session has what was acknowledged", (r.status, r.h("range")),
             (204, "0-%d" % (want - 1)))
    data = a + big
    rest = data[want:]
    r = srv.client().put("%s?digest=%s" % (loc, digest(data)), rest)
    suite.eq("the upload completes after restart", r.status, 201)
    suite.eq("blob bytes", digest(srv.client().get(blob_url(repo, digest(data))).body), digest(data))
    srv.stop()


@suite.test
def accesslog():
    srv = Berth(suite).start()
    srv.client().get("/v2/")
    srv.client().get("/v2/some/repo/blobs/uploads/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9")
    srv.stop()
    try:
        with open(srv.config["log"]["accesslog"]) as f:
            log = f.read()
    except OSError as e:
        log = repr(e)
    suite.check("access log has the requests", "/v2/some/repo/blobs/uploads/" in log, repr(log[-500:]))
    # accesslog "-" writes to stdout
    srv2 = Berth(suite, config={"log": {"accesslog": "-"}}).start()
    srv2.client().get("/v2/stdout/check/blobs/uploads/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9")
    srv2.stop()
    suite.check("accesslog '-' goes to stdout", "/v2/stdout/check/" in srv2.stdout(), repr(srv2.stdout()[-500:]))


@suite.test
def threads_zero_and_defaults():
    srv = Berth(suite, threads=0).start()
    suite.eq("http.threads 0 serves", srv.client().get("/v2/").status, 200)
    srv.stop(label="berth (threads 0)")


@suite.test
def default_startup():
    if not port_free(5000):
        suite.skip("default startup on 127.0.0.1:5000", "port 5000 is in use")
        return
    tmp = TempDir()
    suite.add_cleanup(tmp.cleanup)
    err_path = tmp.join("stderr")
    with open(err_path, "wb") as err, open(tmp.join("stdout"), "wb") as out:
        p = subprocess.Popen([BERTH_BIN, "serve"], cwd=tmp.path, env=berth_env(), stdin=subprocess.DEVNULL,
                             stdout=out, stderr=err)

    def kill():
        if p.poll() is None:
            p.kill()
            p.wait()
    suite.add_cleanup(kill)
    c = Client(5000, timeout=10)
    ok = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and p.poll() is None:
        try:
            ok = c.get("/v2/").status == 200
            if ok:
                break
        except OSError:
            pass
        time.sleep(0.1)
    suite.require("berth serve without -c answers on 127.0.0.1:5000", ok,
                  "rc %s" % p.poll() + open(err_path).read()[-1000:])
    r, loc, uuid = start_upload(c, "default/cfg")
    suite.eq("default config: POST", r.status, 202)
    if uuid:
        suite.check("default root is ./data", os.path.isdir(os.path.join(tmp.path, "data", "uploads", uuid)),
                    repr(os.listdir(tmp.path)))
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        rc = None
    suite.eq("default berth exits 0 after SIGTERM", rc, 0)
    with open(err_path) as f:
        rep = sanitizer_report(f.read())
    suite.check("default berth: no sanitizer report", rep is None, rep or "")


if __name__ == "__main__":
    suite.main()
