"""Request log: what tests read to assert on client behaviour.

One entry per request on any listener (arm/login share the HTTPS listener, imds, control requests are
not logged): sequence number, real and emulated time, listener, Host header, local address, method,
path, query (raw and parsed), names of the headers present (never the value of Authorization or any
other secret), the x-ms-client-request-id value, whether a bearer token was present, the body
(JSON-parsed when possible; form bodies parsed with client_secret/client_assertion masked), the
response status, the fault rules applied and the duration.  Also appended to `requests.jsonl` in the
state directory.
"""
import json
import threading
import time
import urllib.parse

SECRET_FIELDS = ("client_secret", "client_assertion", "password", "access_token")


def parse_body(raw, content_type):
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    if "application/x-www-form-urlencoded" in (content_type or ""):
        form = dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
        return {k: ("***" if k in SECRET_FIELDS else v) for k, v in form.items()}
    try:
        return json.loads(text)
    except ValueError:
        return text[:4096]


class RequestLog:
    def __init__(self, path=None, max_entries=100000):
        self._lock = threading.Lock()
        self._entries = []
        self._seq = 0
        self._path = path
        self._max = max_entries

    def start(self, listener, handler, method, raw_path, body, emulated_now):
        url = urllib.parse.urlsplit(raw_path)
        headers = handler.headers
        names = []
        for k in headers.keys():
            if k not in names:
                names.append(k)
        auth = headers.get("Authorization")
        with self._lock:
            self._seq += 1
            seq = self._seq
        return {
            "seq": seq,
            "time": time.time(),
            "emulated_time": emulated_now,
            "listener": listener,
            "host": headers.get("Host"),
            "local_address": "%s:%s" % handler.connection.getsockname()[:2] if handler.connection else None,
            "method": method,
            "path": urllib.parse.unquote(url.path),
            "query_string": url.query,
            "query": dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True)),
            "headers": names,
            "client_request_id": headers.get("x-ms-client-request-id"),
            "authorization": bool(auth),
            "authorization_scheme": auth.split(None, 1)[0] if auth else None,
            "body": parse_body(body, headers.get("Content-Type")),
            "body_length": len(body or b""),
            "status": None,
            "faults": [],
            "executed": None,
        }

    def finish(self, entry, status, started):
        entry["status"] = status
        entry["duration_ms"] = int((time.time() - started) * 1000)
        with self._lock:
            self._entries.append(entry)
            if len(self._entries) > self._max:
                del self._entries[: len(self._entries) - self._max]
            if self._path:
                try:
                    with open(self._path, "a") as f:
                        f.write(json.dumps(entry, default=str) + "\n")
                except OSError:
                    pass

    def entries(self, since=0, listener=None, method=None, path=None):
        import re
        rx = re.compile(path, re.I) if path else None
        with self._lock:
            out = list(self._entries)
        return [e for e in out if e["seq"] > since
                and (listener is None or e["listener"] == listener)
                and (method is None or e["method"].upper() == method.upper())
                and (rx is None or rx.search(e["path"]))]

    def clear(self):
        with self._lock:
            self._entries.clear()

    def last_seq(self):
        with self._lock:
            return self._seq
