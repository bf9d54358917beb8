"""The tiny request/response types shared by the listeners and the applications."""
import json


class Request:
    def __init__(self, listener, method, path, query_string, query, headers, body, host):
        self.listener = listener
        self.method = method
        self.path = path
        self.query_string = query_string
        self.query = query              # dict (last value wins), keys as sent
        self.headers = headers          # email.message.Message (case-insensitive get)
        self.body = body or b""
        self.host = host
        self.faults = []                # fault rules that fired for this request

    def json(self):
        if not self.body.strip():
            return None
        return json.loads(self.body.decode("utf-8"))

    def q(self, name):
        for k, v in self.query.items():
            if k.lower() == name.lower():
                return v
        return None


class Response:
    def __init__(self, status=200, body=None, headers=None, raw=None):
        self.status = status
        self.headers = list(headers or [])
        self.doc = body
        if raw is not None:
            self.raw = raw
        elif body is None:
            self.raw = b""
        else:
            self.raw = json.dumps(body).encode()
            if not any(k.lower() == "content-type" for k, _ in self.headers):
                self.headers.append(("Content-Type", "application/json; charset=utf-8"))

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def set_header(self, name, value):
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        if value is not None:
            self.headers.append((name, value))
