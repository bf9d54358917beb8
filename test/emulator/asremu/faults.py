"""Fault rules: the ways Azure misbehaves, switched on by tests through the control API.

A rule is a JSON object `{"action": ..., "match": {...}, "count": N, "skip": M, ...params}`.
HTTP rules match a request by `listener` (arm|login|imds), `method`, `path` (regex, searched,
case-insensitive), `query` (regex on the raw query) and `client_request_id`; `skip` lets the first M
matching requests through, `count` (default 1, null = unlimited) bounds how often it fires.
Job rules (`job_fail`, `job_stuck`, `job_suspend`) match the next ASR job created by `scenario`
(e.g. UnplannedFailover) and optional `item` (VM friendly name).

HTTP actions (params):
  delay        delay_ms                       wait, then answer normally
  status       status, retry_after, body, headers, after   answer this status instead of executing
               (429 -> TooManyRequests body, 5xx -> ARM error body by default); with after=true
               the request is executed first (a 500 from ARM after ASR acted)
  drop         after (bool)                   close the connection without an answer; with
                                              after=true the request is executed first (lost 202)
  malformed    body (text, default '{"value": [')   replace the body with invalid JSON
  truncate     fraction (0.5)                 send Content-Length of the full body, then close early
  huge         size_bytes (5 MiB)             valid JSON padded with a giant string field
  slow_body    chunk_bytes, chunk_delay_ms    dribble the body out
  sync_200     -                              an action completes synchronously: 200 + resource body
  missing_headers  headers [..]               drop these response headers
  long_urls    size_bytes (4096)              signed-looking AO/Location URLs (t=, c=, s=, h=)
  foreign_async    host, scheme, userinfo, which [..]  AO/Location on another host
  lro          pattern                        answer the action following one LRO pattern (lro.py)
Job actions (params): job_fail (task, code, message, possible_causes, recommended_action),
  job_stuck (task), job_suspend (task, description).  `task` is a taskId or an index.
"""
import re
import threading

from . import util

HTTP_ACTIONS = ("delay", "status", "drop", "malformed", "truncate", "huge", "slow_body", "sync_200",
                "missing_headers", "long_urls", "foreign_async", "lro")
JOB_ACTIONS = ("job_fail", "job_stuck", "job_suspend")


class FaultError(ValueError):
    pass


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._rules = []
        self._next = 1

    def add(self, rule):
        if not isinstance(rule, dict):
            raise FaultError("a fault rule is a JSON object")
        action = rule.get("action")
        if action not in HTTP_ACTIONS + JOB_ACTIONS:
            raise FaultError("unknown action %r; known: %s" % (action, ", ".join(HTTP_ACTIONS + JOB_ACTIONS)))
        match = rule.get("match") or {}
        if not isinstance(match, dict):
            raise FaultError("match must be an object")
        for k in ("path", "query"):
            if match.get(k):
                try:
                    re.compile(match[k])
                except re.error as e:
                    raise FaultError("bad %s regex: %s" % (k, e))
        if action == "lro":
            from . import lro
            if rule.get("pattern") not in lro.PATTERNS:
                raise FaultError("unknown lro pattern %r; known: %s" % (rule.get("pattern"), ", ".join(sorted(lro.PATTERNS))))
        r = dict(rule)
        r["match"] = match
        r.setdefault("count", 1)
        r.setdefault("skip", 0)
        with self._lock:
            r["id"] = self._next
            self._next += 1
            r["fired"] = 0
            r["seen"] = 0
            self._rules.append(r)
        return r

    def list(self):
        with self._lock:
            return [dict(r) for r in self._rules]

    def remove(self, rid=None):
        with self._lock:
            if rid is None:
                self._rules.clear()
            else:
                self._rules = [r for r in self._rules if r["id"] != rid]

    @staticmethod
    def _http_match(r, listener, method, path, query, crid):
        m = r["match"]
        if m.get("listener") and m["listener"] != listener:
            return False
        if m.get("method") and m["method"].upper() != method.upper():
            return False
        if m.get("path") and not re.search(m["path"], path, re.I):
            return False
        if m.get("query") and not re.search(m["query"], query or "", re.I):
            return False
        if m.get("client_request_id") and m["client_request_id"] != crid:
            return False
        return True

    def _consume(self, r):
        r["seen"] += 1
        if r["seen"] <= int(r.get("skip") or 0):
            return False
        if r["count"] is not None and r["fired"] >= int(r["count"]):
            return False
        r["fired"] += 1
        return True

    def match_http(self, listener, method, path, query, crid):
        """All HTTP rules that fire for this request (consumed)."""
        out = []
        with self._lock:
            for r in self._rules:
                if r["action"] in HTTP_ACTIONS and self._http_match(r, listener, method, path, query, crid):
                    if self._consume(r):
                        out.append(dict(r))
            self._rules = [r for r in self._rules if r["count"] is None or r["fired"] < int(r["count"])]
        return out

    def match_job(self, scenario, item_name):
        out = []
        with self._lock:
            for r in self._rules:
                if r["action"] not in JOB_ACTIONS:
                    continue
                m = r["match"]
                sc = m.get("scenario") or r.get("scenario")
                it = m.get("item") or r.get("item")
                if sc and not util.ieq(sc, scenario):
                    continue
                if it and not util.ieq(it, item_name):
                    continue
                if self._consume(r):
                    out.append(dict(r))
            self._rules = [r for r in self._rules if r["count"] is None or r["fired"] < int(r["count"])]
        return out
