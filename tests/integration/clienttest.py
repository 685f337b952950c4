"""Helpers for the client tests: run `berth push/status/pull` as a
subprocess (checking its stderr for sanitizer reports), with its own
XDG_CACHE_HOME, and find its resume state."""

import glob
import json
import os
import subprocess

from berthtest import BERTH_BIN, berth_env, sanitizer_report


class ClientEnv:
    """One client environment: a cache dir (resume state) and env vars."""

    def __init__(self, suite, tmpdir, **extra):
        self.suite = suite
        self.cache = os.path.join(tmpdir, "cache")
        os.makedirs(self.cache, exist_ok=True)
        self.env = berth_env()
        self.env["XDG_CACHE_HOME"] = self.cache
        self.env["BERTH_RETRY_BASE_MS"] = "50"
        self.env.pop("BERTH_USER", None)
        self.env.pop("BERTH_PASSWORD", None)
        self.env.update(extra)

    def run(self, args, timeout=600, label=None, check_sanitizer=True, stdin=subprocess.DEVNULL):
        """(rc, stdout, stderr) of `berth ARGS`; stderr is checked for
        sanitizer reports (LeakSanitizer also makes rc non-zero)."""
        p = subprocess.run([BERTH_BIN] + list(args), env=self.env, stdin=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
        if check_sanitizer:
            rep = sanitizer_report(err)
            self.suite.check("%s: no sanitizer report" % (label or " ".join(args[:1])), rep is None, rep or "")
        return p.returncode, out, err

    def popen(self, args, **kw):
        return subprocess.Popen([BERTH_BIN] + list(args), env=self.env, stdin=subprocess.DEVNULL, **kw)

    def state_files(self):
        return glob.glob(os.path.join(self.cache, "berth", "uploads", "*.json"))

    def state(self):
        """The single state file's content, or None."""
        files = self.state_files()
        if len(files) != 1:
            return None
        try:
            with open(files[0]) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None


def write_random(path, size, seed=1):
    """Writes size pseudo-random bytes (fast, reproducible); returns sha256 digest."""
    import hashlib
    import random
    rng = random.Random(seed)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 8 << 20)
            b = rng.randbytes(n)
            h.update(b)
            f.write(b)
            left -= n
    return "sha256:" + h.hexdigest()


def file_digest(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(8 << 20)
            if not b:
                break
            h.update(b)
    return "sha256:" + h.hexdigest()
