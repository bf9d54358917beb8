"""ARM request throttling: token buckets per (subscription, principal, operation kind).

Azure's current model (2024+): each bucket holds `capacity` requests and refills `rate` per second;
defaults reads 250 + 25/s, writes 200 + 10/s, deletes 200 + 10/s.  A request takes one token; when
the bucket is empty the caller gets 429 + Retry-After + `SubscriptionRequestsThrottled`.  The
remaining count is reported in `x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}` (and a
`global` variant at 15x).  Buckets run on real time.  `scale` multiplies capacity and rate so tests
can make throttling happen after a handful of requests.
"""
import math
import threading
import time

DEFAULTS = {"reads": (250, 25), "writes": (200, 10), "deletes": (200, 10)}


def kind_of(method):
    m = method.upper()
    if m in ("GET", "HEAD", "OPTIONS"):
        return "reads"
    if m == "DELETE":
        return "deletes"
    return "writes"


class Bucket:
    def __init__(self, capacity, rate, now):
        self.capacity = float(capacity)
        self.rate = float(rate)
        self.tokens = float(capacity)
        self.stamp = now

    def refill(self, now):
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now):
        """Returns (allowed, remaining_int, retry_after_seconds)."""
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True, int(math.floor(self.tokens)), 0
        wait = (1.0 - self.tokens) / self.rate if self.rate > 0 else 3600
        return False, 0, max(1, int(math.ceil(wait)))


class Throttle:
    def __init__(self, limits=None, clock=time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self.enabled = True
        self.limits = dict(DEFAULTS)
        for k, v in (limits or {}).items():
            self.limits[k] = (float(v[0]), float(v[1]))
        self._buckets = {}

    def configure(self, limits=None, enabled=None, reset=True):
        with self._lock:
            if limits:
                for k, v in limits.items():
                    self.limits[k] = (float(v[0]), float(v[1]))
            if enabled is not None:
                self.enabled = bool(enabled)
            if reset:
                self._buckets.clear()

    def take(self, subscription, principal, method):
        kind = kind_of(method)
        key = ((subscription or "").lower(), (principal or "").lower(), kind)
        gkey = ((subscription or "").lower(), "*global*", kind)
        with self._lock:
            now = self._clock()
            cap, rate = self.limits[kind]
            b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = Bucket(cap, rate, now)
            g = self._buckets.get(gkey)
            if g is None:
                g = self._buckets[gkey] = Bucket(cap * 15, rate * 15, now)
            if not self.enabled:
                return True, kind, int(cap) - 1, int(cap * 15) - 1, 0
            ok, remaining, retry = b.take(now)
            if ok:
                gok, gremaining, gretry = g.take(now)
                if not gok:
                    b.tokens += 1.0
                    return False, kind, remaining, 0, gretry
                return True, kind, remaining, gremaining, 0
            g.refill(now)
            return False, kind, 0, int(g.tokens), retry
