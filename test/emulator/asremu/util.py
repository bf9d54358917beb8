"""Small shared helpers: ASR time formatting, ids, GUIDs, JSON encoding.

ASR writes times as ISO-8601 UTC with 7 fractional digits and a `Z`
(`2025-04-09T08:49:20.8930892Z`), unset task times as `0001-01-01T00:00:00` and the idle
`currentScenario` start as `1753-01-01T01:01:01Z`; these helpers keep that formatting in one place.
"""
import datetime
import hashlib
import json
import uuid

UNSET_TIME = "0001-01-01T00:00:00"
SENTINEL_TIME = "1753-01-01T01:01:01Z"
NS = uuid.UUID("6f1c2a5e-8b7d-4c1e-9a3f-0d2b4e6f8a10")


def fmt_time(epoch, digits=7):
    """Epoch seconds (float) -> '2025-04-09T08:49:20.8930892Z'."""
    if epoch is None:
        return None
    dt = datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if digits == 0:
        return base + "Z"
    frac = epoch - int(epoch)
    ticks = int(round(frac * 10 ** 7))
    if ticks >= 10 ** 7:
        ticks = 10 ** 7 - 1
    return "%s.%07dZ" % (base, ticks)


def parse_time(text):
    """Parse an ISO-8601 time as ASR clients send it (7 digits, Z, or offset) -> epoch float."""
    s = text.strip()
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    frac = 0.0
    if "." in s:
        head, rest = s.split(".", 1)
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        tail = rest[i:]
        frac = float("0." + digits) if digits else 0.0
        s = head + tail
    dt = datetime.datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp() + frac


def ps_request_id_time(epoch):
    """The '4/9/2025 8:49:01 AM' form ARM appends to x-ms-request-id on reads."""
    dt = datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc)
    hour = dt.hour % 12 or 12
    return "%d/%d/%d %d:%02d:%02d %s" % (dt.month, dt.day, dt.year, hour, dt.minute, dt.second,
                                          "AM" if dt.hour < 12 else "PM")


def stable_guid(*parts):
    """Deterministic GUID for world objects (VM ids, container internal ids...)."""
    return str(uuid.uuid5(NS, "/".join(str(p) for p in parts)))


def new_guid():
    return str(uuid.uuid4())


def jitter(seed, span):
    """Deterministic pseudo-random float in [0, span) derived from seed."""
    h = hashlib.sha256(str(seed).encode()).digest()
    return (int.from_bytes(h[:8], "big") / 2 ** 64) * span


def dumps(obj):
    return json.dumps(obj, indent=None, separators=(",", ":")).encode()


def ieq(a, b):
    return (a or "").lower() == (b or "").lower()
