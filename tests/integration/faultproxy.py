"""A fault-injecting TCP proxy for the client tests and benchmarks.

    p = FaultProxy(upstream_port, cut_at=[40 << 20, 80 << 20]).start()
    ... point the client at 127.0.0.1:p.port ...
    p.stats()   # {'up_bytes':..., 'down_bytes':..., 'connections':..., 'cuts':..., ...}
    p.stop()

Faults are placed on the client->server byte stream, counted across all
connections (so "cut at 40 MiB" means: when the 40 MiB-th byte the clients
sent passes through, that connection dies):

- cut_at: offsets where the connection carrying that byte is reset (RST to
  both sides) after forwarding exactly the bytes before it;
- stall_at: offsets where forwarding stops for stall_secs on that
  connection (the client should time out and retry); the connection is
  then reset;
- reset_prob (with seed, max_resets): each forwarded client read of
  min_gap bytes or more past the last fault resets its connection with
  this probability;
- rate: a bandwidth cap for client->server bytes (bytes/s), to make
  transfers last long enough to be interrupted.

Also a command line, for manual runs:
    faultproxy.py --listen PORT --upstream HOST:PORT [--cut-every BYTES --cuts N]
"""

import argparse
import random
import socket
import struct
import threading
import time

BUF = 65536


def _abort(sock):
    """Close with RST (SO_LINGER 0), waking any thread blocked on it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FaultProxy:
    def __init__(self, upstream_port, upstream_host="127.0.0.1", cut_at=(), stall_at=(), stall_secs=5.0,
                 reset_prob=0.0, seed=None, max_resets=None, min_gap=1 << 20, rate=None):
        self.upstream = (upstream_host, upstream_port)
        self.cut_at = sorted(cut_at)
        self.stall_at = sorted(stall_at)
        self.stall_secs = stall_secs
        self.reset_prob = reset_prob
        self.rng = random.Random(seed)
        self.max_resets = max_resets
        self.min_gap = min_gap
        self.rate = rate
        self.lock = threading.Lock()
        self.up_bytes = 0
        self.down_bytes = 0
        self.connections = 0
        self.cuts = 0
        self.stalls = 0
        self.resets = 0
        self.last_fault = 0
        self.events = []          # (kind, up_bytes offset)
        self.listener = None
        self.port = None
        self.closed = False
        self.socks = set()
        self.threads = []
        self.t0 = None

    # -- control
    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        self.listener = s
        self.port = s.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        self.closed = True
        if self.listener is not None:
            _abort(self.listener)
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            _abort(s)

    def stats(self):
        with self.lock:
            return {"up_bytes": self.up_bytes, "down_bytes": self.down_bytes, "connections": self.connections,
                    "cuts": self.cuts, "stalls": self.stalls, "resets": self.resets,
                    "faults": self.cuts + self.stalls + self.resets, "events": list(self.events)}

    def active(self):
        """Number of sockets (both sides) still open."""
        with self.lock:
            return len(self.socks)

    def reset_counters(self):
        with self.lock:
            self.up_bytes = self.down_bytes = self.connections = 0
            self.cuts = self.stalls = self.resets = 0
            self.last_fault = 0
            self.events = []

    def set_faults(self, cut_at=None, stall_at=None, reset_prob=None, rate=None):
        """Replace the plan (offsets count from the current up_bytes)."""
        with self.lock:
            base = self.up_bytes
            if cut_at is not None:
                self.cut_at = sorted(base + x for x in cut_at)
            if stall_at is not None:
                self.stall_at = sorted(base + x for x in stall_at)
            if reset_prob is not None:
                self.reset_prob = reset_prob
            self.rate = rate

    # -- plumbing
    def _accept_loop(self):
        while not self.closed:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.upstream, timeout=10)
                u.settimeout(None)
            except OSError:
                _abort(c)
                continue
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.connections += 1
                self.socks.update((c, u))
            dead = threading.Event()
            threading.Thread(target=self._pump_up, args=(c, u, dead), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(u, c, dead), daemon=True).start()

    def _kill(self, c, u, dead):
        dead.set()
        _abort(c)
        _abort(u)
        with self.lock:
            self.socks.discard(c)
            self.socks.discard(u)

    def _plan(self, n):
        """Decide what happens to the next n client bytes: returns
        (bytes to forward, fault or None). Called with the lock held."""
        start = self.up_bytes
        while self.cut_at and self.cut_at[0] < start:
            self.cut_at.pop(0)
        while self.stall_at and self.stall_at[0] < start:
            self.stall_at.pop(0)
        if self.cut_at and self.cut_at[0] < start + n:
            at = self.cut_at.pop(0)
            return at - start, "cut"
        if self.stall_at and self.stall_at[0] < start + n:
            at = self.stall_at.pop(0)
            return at - start, "stall"
        if (self.reset_prob > 0 and start - self.last_fault >= self.min_gap and
                (self.max_resets is None or self.resets < self.max_resets) and
                self.rng.random() < self.reset_prob):
            return self.rng.randint(0, n), "reset"
        return n, None

    def _pump_up(self, c, u, dead):
        try:
            while not dead.is_set():
                data = c.recv(BUF)
                if not data:
                    break
                with self.lock:
                    fwd, fault = self._plan(len(data))
                    self.up_bytes += fwd
                    if fault is not None:
                        self.last_fault = self.up_bytes
                        self.events.append((fault, self.up_bytes))
                        if fault == "cut":
                            self.cuts += 1
                        elif fault == "stall":
                            self.stalls += 1
                        else:
                            self.resets += 1
                    rate = self.rate
                if fwd:
                    u.sendall(data[:fwd])
                if rate:
                    if self.t0 is None:
                        self.t0 = time.monotonic()
                    time.sleep(fwd / float(rate))
                if fault == "stall":
                    # Hold the connection open, forwarding nothing; the
                    # client times out (or the stall ends): then reset.
                    dead.wait(self.stall_secs)
                    break
                if fault is not None:
                    break
        except OSError:
            pass
        self._kill(c, u, dead)

    def _pump_down(self, u, c, dead):
        try:
            while not dead.is_set():
                data = u.recv(BUF)
                if not data:
                    break
                with self.lock:
                    self.down_bytes += len(data)
                c.sendall(data)
        except OSError:
            pass
        self._kill(c, u, dead)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", type=int, default=0)
    ap.add_argument("--upstream", required=True, help="HOST:PORT")
    ap.add_argument("--cut-every", type=int, default=0, help="bytes between cuts")
    ap.add_argument("--cuts", type=int, default=0)
    ap.add_argument("--reset-prob", type=float, default=0.0)
    args = ap.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    cuts = [args.cut_every * (i + 1) for i in range(args.cuts)] if args.cut_every else []
    p = FaultProxy(int(port), host, cut_at=cuts, reset_prob=args.reset_prob)
    if args.listen:
        # bind the asked port instead of an ephemeral one
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", args.listen))
        s.listen(64)
        p.listener, p.port = s, args.listen
        threading.Thread(target=p._accept_loop, daemon=True).start()
    else:
        p.start()
    print("listening on 127.0.0.1:%d -> %s" % (p.port, args.upstream), flush=True)
    try:
        while True:
            time.sleep(5)
            print(p.stats(), flush=True)
    except KeyboardInterrupt:
        p.stop()


if __name__ == "__main__":
    main()
