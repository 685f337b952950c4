#!/usr/bin/env python3
"""A strict AWS SigV4 (S3 flavour) verifying reverse proxy, stdlib only.

moto accepts any signature, so the S3 tests put this in front of it: every
header-signed request is recomputed the way S3 does it, a mismatch answers
403 SignatureDoesNotMatch (400 XAmzContentSHA256Mismatch for a wrong payload
hash) and is counted in `rejected`; good requests are forwarded unchanged.
It also counts requests and bytes by S3 operation, for the benchmark.

    srv = start(upstream_port, access, secret)   # srv.port, srv.stats
    srv.shutdown()

or as a program: s3sigv4.py LISTEN_PORT UPSTREAM_PORT ACCESS SECRET [REGION]
"""
import collections
import datetime
import hashlib
import hmac
import http.client
import http.server
import socketserver
import sys
import threading
import urllib.parse

HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "te",
       "proxy-connection", "upgrade"}


def uri_encode(s, slash_ok):
    return urllib.parse.quote(s, safe="-_.~" + ("/" if slash_ok else ""))


def canonical_query(raw):
    pairs = []
    for item in (raw or "").split("&"):
        if item == "":
            continue
        k, _, v = item.partition("=")
        pairs.append((uri_encode(urllib.parse.unquote(k), False),
                      uri_encode(urllib.parse.unquote(v), False)))
    pairs.sort()
    return "&".join(k + "=" + v for k, v in pairs)


def operation(method, path, query, headers=None):
    """A short S3 operation name, for counting."""
    q = urllib.parse.parse_qs(query, keep_blank_values=True)
    copy = headers is not None and headers.get("x-amz-copy-source") is not None
    if method == "PUT" and "partNumber" in q and copy:
        return "UploadPartCopy"
    if method == "PUT" and copy:
        return "CopyObject"
    if method == "PUT" and "partNumber" in q:
        return "UploadPart"
    if method == "POST" and "uploads" in q:
        return "CreateMultipartUpload"
    if method == "POST" and "uploadId" in q:
        return "CompleteMultipartUpload"
    if method == "DELETE" and "uploadId" in q:
        return "AbortMultipartUpload"
    if method == "GET" and "uploadId" in q:
        return "ListParts"
    if method == "GET" and "uploads" in q:
        return "ListMultipartUploads"
    if method == "POST" and "delete" in q:
        return "DeleteObjects"
    if method == "GET" and ("list-type" in q or path.rstrip("/").count("/") <= 1):
        return "ListObjects"
    return {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject",
            "DELETE": "DeleteObject", "POST": "Post"}.get(method, method)


def xml_error(code, msg, extra=""):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
            '<Message>%s</Message>%s</Error>' % (code, msg, extra)).encode()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = collections.Counter()
        self.requests = 0
        self.bytes_in = 0   # request bodies (client -> S3)
        self.bytes_out = 0  # response bodies (S3 -> client)
        self.bytes_copied = 0  # server-side copies asked for (UploadPartCopy ranges)
        self.rejected = 0
        self.rejected_by_key = collections.Counter()
        self.last_reject = ""

    def snapshot(self):
        with self.lock:
            return {"requests": self.requests, "bytes_in": self.bytes_in,
                    "bytes_out": self.bytes_out, "bytes_copied": self.bytes_copied,
                    "rejected": self.rejected,
                    "rejected_by_key": dict(self.rejected_by_key),
                    "ops": dict(self.ops)}

    def reset(self):
        with self.lock:
            self.ops.clear()
            self.requests = self.bytes_in = self.bytes_out = self.rejected = self.bytes_copied = 0
            self.rejected_by_key.clear()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out), True
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0") or 0)
        return (self.rfile.read(n) if n else b""), False

    def fail(self, status, code, msg, extra=""):
        body = xml_error(code, msg, extra)
        st = self.server.stats
        with st.lock:
            st.rejected += 1
            st.rejected_by_key[getattr(self, "access_key", "")] += 1
            st.last_reject = "%s %s: %s %s" % (self.command, self.path, code, msg)
        sys.stderr.write("s3sigv4: REJECT %s\n" % st.last_reject)
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def verify(self, body):
        srv = self.server
        auth = self.headers.get("Authorization")
        raw_path, _, raw_query = self.path.partition("?")
        if auth is None and "X-Amz-Signature=" in raw_query:
            return self.verify_presigned(raw_path, raw_query)
        if auth is None:
            if srv.require_auth:
                return (403, "AccessDenied", "anonymous request")
            return None
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return (400, "InvalidArgument", "only AWS4-HMAC-SHA256 accepted")
        comps = {}
        for part in auth[len("AWS4-HMAC-SHA256 "):].split(","):
            k, _, v = part.strip().partition("=")
            comps[k] = v
        try:
            cred = comps["Credential"].split("/")
            signed = comps["SignedHeaders"].split(";")
            sig = comps["Signature"]
        except KeyError:
            return (400, "AuthorizationHeaderMalformed", "missing component")
        if len(cred) != 5 or cred[0] not in srv.creds:
            return (403, "InvalidAccessKeyId", "bad credential")
        self.access_key = cred[0]
        secret = srv.creds[cred[0]]
        amzdates = self.headers.get_all("x-amz-date") or []
        if len(amzdates) != 1:
            return (403, "AccessDenied", "x-amz-date missing or repeated")
        amzdate = amzdates[0]
        if cred[1] != amzdate[:8] or cred[2] != srv.region or cred[3] != "s3" \
                or cred[4] != "aws4_request":
            return (403, "SignatureDoesNotMatch", "bad scope " + comps["Credential"])
        try:
            t = datetime.datetime.strptime(amzdate, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc)
        except ValueError:
            return (403, "AccessDenied", "bad x-amz-date")
        if abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()) > 900:
            return (403, "RequestTimeTooSkewed", "skew")
        if signed != sorted(signed) or "host" not in signed:
            return (403, "SignatureDoesNotMatch", "SignedHeaders unsorted or without host")
        payload = self.headers.get("x-amz-content-sha256")
        if payload is None:
            return (400, "InvalidRequest", "Missing required header x-amz-content-sha256")
        if payload != "UNSIGNED-PAYLOAD":
            if len(payload) != 64:
                return (400, "InvalidArgument", "bad x-amz-content-sha256")
            if hashlib.sha256(body).hexdigest() != payload.lower():
                return (400, "XAmzContentSHA256Mismatch", "payload hash mismatch")
        raw_path, _, raw_query = self.path.partition("?")
        canon_uri = uri_encode(urllib.parse.unquote(raw_path), True)
        lines = []
        for name in signed:
            vals = self.headers.get_all(name)
            if vals is None:
                return (403, "SignatureDoesNotMatch", "signed header not sent: " + name)
            lines.append(name + ":" + ",".join(" ".join(x.split()) for x in vals) + "\n")
        creq = "\n".join([self.command, canon_uri, canonical_query(raw_query),
                          "".join(lines), ";".join(signed), payload])
        sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, "/".join(cred[1:]),
                         hashlib.sha256(creq.encode()).hexdigest()])
        k = ("AWS4" + secret).encode()
        for m in cred[1:]:
            k = hmac.new(k, m.encode(), hashlib.sha256).digest()
        want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            return (403, "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the "
                    "signature you provided.")
        return None

    def verify_presigned(self, raw_path, raw_query):
        """SigV4 query authentication (presigned URLs)."""
        srv = self.server
        q = dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True))
        if q.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            return (400, "AuthorizationQueryParametersError", "bad X-Amz-Algorithm")
        cred = q.get("X-Amz-Credential", "").split("/")
        if len(cred) != 5 or cred[0] not in srv.creds:
            return (403, "InvalidAccessKeyId", "bad credential")
        self.access_key = cred[0]
        amzdate = q.get("X-Amz-Date", "")
        try:
            t = datetime.datetime.strptime(amzdate, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
            expires = int(q.get("X-Amz-Expires", ""))
        except ValueError:
            return (403, "AccessDenied", "bad X-Amz-Date or X-Amz-Expires")
        if (datetime.datetime.now(datetime.timezone.utc) - t).total_seconds() > expires or expires > 604800:
            return (403, "AccessDenied", "Request has expired")
        if cred[1] != amzdate[:8] or cred[2] != srv.region or cred[3] != "s3" or cred[4] != "aws4_request":
            return (403, "SignatureDoesNotMatch", "bad scope")
        signed = q.get("X-Amz-SignedHeaders", "").split(";")
        lines = []
        for name in signed:
            vals = self.headers.get_all(name)
            if vals is None:
                return (403, "SignatureDoesNotMatch", "signed header not sent: " + name)
            lines.append(name + ":" + ",".join(" ".join(x.split()) for x in vals) + "\n")
        query = "&".join(p for p in raw_query.split("&") if not p.startswith("X-Amz-Signature="))
        creq = "\n".join([self.command, uri_encode(urllib.parse.unquote(raw_path), True),
                          canonical_query(query), "".join(lines), ";".join(signed), "UNSIGNED-PAYLOAD"])
        sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, "/".join(cred[1:]),
                         hashlib.sha256(creq.encode()).hexdigest()])
        k = ("AWS4" + srv.creds[cred[0]]).encode()
        for m in cred[1:]:
            k = hmac.new(k, m.encode(), hashlib.sha256).digest()
        want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, q.get("X-Amz-Signature", "")):
            return (403, "SignatureDoesNotMatch", "presigned URL signature does not match")
        return None

    def source_size(self, source):
        """Size of a whole-object copy's source (asked of the upstream with
        boto3, which moto depends on); 0 when unknown."""
        try:
            import boto3
            bucket, _, key = urllib.parse.unquote(source).lstrip("/").partition("/")
            c = boto3.client("s3", endpoint_url="http://127.0.0.1:%d" % self.server.upstream,
                             region_name=self.server.region, aws_access_key_id="x", aws_secret_access_key="x")
            return c.head_object(Bucket=bucket, Key=key)["ContentLength"]
        except Exception:
            return 0

    def handle_any(self):
        body, chunked = self.read_body()
        raw_path, _, raw_query = self.path.partition("?")
        st = self.server.stats
        with st.lock:
            st.requests += 1
            st.bytes_in += len(body)
            st.ops[operation(self.command, raw_path, raw_query, self.headers)] += 1
            rng = self.headers.get("x-amz-copy-source-range", "")
            if rng.startswith("bytes="):
                a, _, b = rng[6:].partition("-")
                st.bytes_copied += int(b) - int(a) + 1
            elif self.headers.get("x-amz-copy-source"):
                st.bytes_copied += self.source_size(self.headers["x-amz-copy-source"])
        err = self.verify(body)
        if err:
            self.fail(*err)
            return
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream, timeout=300)
            hdrs = {k: v for k, v in self.headers.items()
                    if k.lower() not in HOP and k.lower() != "content-length"}
            if body or self.command in ("PUT", "POST") or chunked:
                hdrs["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
        except OSError:
            # Upstream down: drop the connection, as an unreachable S3 would.
            self.close_connection = True
            return
        with st.lock:
            st.bytes_out += len(data)
        self.send_response(resp.status, resp.reason)
        has_len = False
        for k, v in resp.getheaders():
            if k.lower() in HOP:
                continue
            has_len |= k.lower() == "content-length"
            self.send_header(k, v)
        if not has_len and self.command != "HEAD" and resp.status not in (204, 304):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client that went away mid-answer (the tests cut connections on
        # purpose) is not worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def start(upstream_port, access, secret, region="us-east-1", port=0, require_auth=True, creds=None):
    """Starts the proxy on a thread; returns the server (.port, .stats).
    `creds` adds more access key -> secret pairs."""
    srv = Server(("127.0.0.1", port), Handler)
    srv.upstream = upstream_port
    srv.creds = dict(creds or {})
    srv.creds[access] = secret
    srv.region = region
    srv.require_auth = require_auth
    srv.stats = Stats()
    srv.port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


if __name__ == "__main__":
    s = start(int(sys.argv[2]), sys.argv[3], sys.argv[4],
              sys.argv[5] if len(sys.argv) > 5 else "us-east-1", port=int(sys.argv[1]))
    sys.stderr.write("s3sigv4 listening on 127.0.0.1:%d -> %s\n" % (s.port, sys.argv[2]))
    threading.Event().wait()
