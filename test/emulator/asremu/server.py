"""HTTP(S) listeners and the per-request pipeline.

Listeners: the HTTPS listener (ARM + Entra login, TLS with the emulator CA's server certificate,
handshake done in the worker thread so a slow client cannot block accept), the plain-http IMDS
listener and the plain-http control listener.  Each request goes through: read body -> request log
entry -> HTTP fault rules (delay, status, drop...) -> configured latency -> the application
(login / imds / arm / control) -> response faults (missing headers, malformed/truncated/huge/slow
bodies, drop after processing) -> write.  Every response carries Content-Length (HTTP/1.1
keep-alive, as the SDK's connection pool expects).
"""
import json
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .httpcore import Request, Response

STATUS_BODIES = {
    429: ("TooManyRequests", "The request is being throttled."),
    500: ("InternalServerError", "Encountered internal server error. Diagnostic information: timestamp '%s'."),
    502: ("BadGateway", "The gateway did not receive a response from 'Microsoft.RecoveryServices' within the specified time period."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please try again later."),
    504: ("GatewayTimeout", "The gateway did not receive a response from 'Microsoft.RecoveryServices' within the specified time period."),
}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, app, name, ssl_context=None):
        self.app = app
        self.listener_name = name
        self.ssl_context = ssl_context
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request, client_address):
        if self.ssl_context is not None:
            try:
                request.settimeout(10)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError):
                try:
                    request.close()
                except OSError:
                    pass
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        pass  # clients hanging up (drop/truncate faults, killed pollers) are normal here


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if te == "chunked":
            data = b""
            while True:
                line = self.rfile.readline()
                size = int(line.strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _handle(self):
        emu = self.server.app
        started = time.time()
        body = self._read_body()
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        listener = self.server.listener_name
        if listener == "https":
            listener = "login" if emu.is_login_path(path) else "arm"
        req = Request(listener, self.command, path, url.query, query, self.headers, body, self.headers.get("Host"))
        if listener == "control":
            resp = emu.control.handle(req)
            self._write(resp)
            return
        entry = emu.reqlog.start(listener, self, self.command, self.path, body, emu.clock.now())
        done = [False]

        def log(status):
            # the log entry is complete before the client can see any answer (tests read it right after)
            if not done[0]:
                done[0] = True
                emu.reqlog.finish(entry, status, started)
        try:
            rules = emu.faults.match_http(listener, self.command, path, url.query, self.headers.get("x-ms-client-request-id"))
            req.faults = rules
            entry["faults"] = [r["id"] for r in rules]
            for r in rules:
                if r["action"] == "delay":
                    time.sleep(float(r.get("delay_ms", 1000)) / 1000.0)
            latency = float(emu.config.get("latency_ms") or 0)
            if latency:
                time.sleep(latency / 1000.0)
            drop = next((r for r in rules if r["action"] == "drop"), None)
            if drop and not drop.get("after"):
                log("dropped")
                self._drop()
                return
            forced = next((r for r in rules if r["action"] == "status"), None)
            if not forced or forced.get("after"):
                try:
                    resp = emu.dispatch(req)
                    # what carrying the request out answered (202: a POST's action ran), whatever the
                    # client is answered in the end
                    entry["executed"] = resp.status
                except Exception:
                    # an emulator bug: say so loudly instead of looking like a dropped connection
                    traceback.print_exc(file=sys.stderr)
                    resp = Response(500, {"error": {"code": "EmulatorInternalError",
                                                    "message": traceback.format_exc().splitlines()[-1]}})
            if forced:
                resp = self._forced(forced, req)
            if drop:
                log("dropped-after")
                self._drop()
                return
            log(resp.status)
            self._apply_and_write(resp, rules)
        finally:
            log("error")

    def _forced(self, rule, req):
        st = int(rule.get("status", 500))
        body = rule.get("body")
        if body is None:
            code, msg = STATUS_BODIES.get(st, ("Error", "Injected error."))
            if "%s" in msg:
                msg = msg % time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime())
            if req.listener == "login":
                body = {"error": "temporarily_unavailable", "error_description": "AADSTS50196: The server is busy.",
                        "error_codes": [50196]}
            else:
                body = {"error": {"code": code, "message": msg}}
        resp = Response(st, body)
        ra = rule.get("retry_after")
        if ra is None and st in (429, 503):
            ra = 1
        if ra is not None:
            resp.set_header("Retry-After", str(ra))
        for k, v in (rule.get("headers") or {}).items():
            resp.set_header(k, v)
        if req.listener == "arm":
            resp.set_header("x-ms-request-id", self.server.app.new_guid())
            if req.headers.get("x-ms-client-request-id"):
                resp.set_header("x-ms-client-request-id", req.headers.get("x-ms-client-request-id"))
        return resp

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _apply_and_write(self, resp, rules):
        raw = resp.raw
        truncate = None
        slow = None
        for r in rules:
            a = r["action"]
            if a == "missing_headers":
                for h in r.get("headers") or []:
                    resp.set_header(h, None)
            elif a == "malformed":
                raw = r.get("body", '{"value": [').encode()
            elif a == "huge":
                size = int(r.get("size_bytes", 5 * 1024 * 1024))
                doc = resp.doc if isinstance(resp.doc, dict) else {"value": resp.doc}
                doc = dict(doc)
                doc["x-emulator-padding"] = "x" * size
                raw = json.dumps(doc).encode()
                if resp.header("Content-Type") is None:
                    resp.set_header("Content-Type", "application/json; charset=utf-8")
            elif a == "truncate":
                truncate = float(r.get("fraction", 0.5))
            elif a == "slow_body":
                slow = r
        self._write(resp, raw, truncate, slow)

    def _write(self, resp, raw=None, truncate=None, slow=None):
        if raw is None:
            raw = resp.raw
        self.send_response(resp.status)
        for k, v in resp.headers:
            if k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            if truncate is not None:
                self.wfile.write(raw[: int(len(raw) * truncate)])
                self.wfile.flush()
                self._drop()
                return
            if slow is not None:
                chunk = max(1, int(slow.get("chunk_bytes", 64)))
                delay = float(slow.get("chunk_delay_ms", 200)) / 1000.0
                for i in range(0, len(raw), chunk):
                    self.wfile.write(raw[i:i + chunk])
                    self.wfile.flush()
                    time.sleep(delay)
                return
            self.wfile.write(raw)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


def start(host, port, app, name, ssl_context=None):
    srv = Server((host, port), Handler, app, name, ssl_context)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True)
    t.start()
    return srv


def tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx
