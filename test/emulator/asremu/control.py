"""Control API (plain HTTP JSON on its own loopback port) used by tests to steer the emulator.

  GET    /health                      {"ok": true}
  GET    /state                       dump: clock, config, items (state, location, job, points), jobs, faults
  POST   /reset                       rebuild the world's ASR state, clear faults, log, buckets, config
  GET    /faults                      list rules       POST /faults  add a rule (or a list of rules)
  DELETE /faults                      remove all       DELETE /faults/{id}  remove one
  GET    /lro-patterns                the LRO pattern catalogue (lro.py)
  GET    /requests                    request log (?since=SEQ&listener=arm&method=POST&path=REGEX)
  DELETE /requests                    clear the log
  GET    /clock                       {"now": emulated epoch, "time": ISO, "scale": F}
  POST   /clock                       {"advance_seconds": N} and/or {"scale": F}
  POST   /config                      {"latency_ms", "page_size", "retry_after", "durations", "ir_seconds",
                                       "ir_pending_seconds", "cancel_seconds"} (merged)
  POST   /throttle                    {"reads": [capacity, rate], "writes": [...], "deletes": [...],
                                       "scale": F, "enabled": bool}   (buckets reset)
  POST   /tokens                      {"lifetime_seconds": N} for tokens issued from now on
  POST   /tokens/revoke               every token issued so far is rejected (401)
  POST   /vms/{vm}/disks              {"name", "size_gb", "type"} add a managed disk to a replicated VM
  POST   /items/{vm}                  {"replicationHealth", "rpoInSeconds"} override health fields
  GET    /jobs                        compact job list
"""
import json
import time
import urllib.parse

from . import lro, util
from .faults import FaultError
from .httpcore import Response


class Control:
    def __init__(self, emu):
        self.emu = emu

    def handle(self, req):
        try:
            return self._handle(req)
        except (FaultError, ValueError, KeyError, TypeError) as e:
            return Response(400, {"error": str(e)})

    def _handle(self, req):
        emu = self.emu
        m = req.method.upper()
        segs = [urllib.parse.unquote(s) for s in req.path.strip("/").split("/") if s]
        body = req.json() if req.body.strip() else {}
        head = segs[0] if segs else ""
        if head == "health":
            return Response(200, {"ok": True, "pid": emu.pid})
        if head == "state" and m == "GET":
            return Response(200, emu.state_dump())
        if head == "reset" and m == "POST":
            emu.reset()
            return Response(200, {"ok": True})
        if head == "faults":
            if m == "GET":
                return Response(200, {"faults": emu.faults.list()})
            if m == "POST":
                rules = body if isinstance(body, list) else [body]
                added = [emu.faults.add(r) for r in rules]
                return Response(201, {"ids": [r["id"] for r in added], "id": added[0]["id"], "faults": added})
            if m == "DELETE":
                emu.faults.remove(int(segs[1]) if len(segs) > 1 else None)
                return Response(200, {"ok": True})
        if head == "lro-patterns":
            return Response(200, lro.PATTERNS)
        if head == "requests":
            if m == "GET":
                q = req.query
                return Response(200, {"requests": emu.reqlog.entries(int(q.get("since", 0)), q.get("listener"),
                                                                     q.get("method"), q.get("path")),
                                      "last_seq": emu.reqlog.last_seq()})
            if m == "DELETE":
                emu.reqlog.clear()
                return Response(200, {"ok": True})
        if head == "clock":
            if m == "POST":
                if "scale" in body:
                    emu.clock.set_scale(float(body["scale"]))
                if "advance_seconds" in body:
                    emu.clock.advance(float(body["advance_seconds"]))
                emu.engine.tick()
            now = emu.clock.now()
            return Response(200, {"now": now, "time": util.fmt_time(now), "scale": emu.clock.scale})
        if head == "config" and m == "POST":
            for k, v in body.items():
                if k == "durations":
                    d = emu.config.setdefault("durations", {})
                    for sc, tasks in v.items():
                        d.setdefault(sc, {}).update(tasks)
                else:
                    emu.config[k] = v
            return Response(200, {"config": emu.config})
        if head == "config" and m == "GET":
            return Response(200, {"config": emu.config})
        if head == "throttle" and m == "POST":
            limits = {k: body[k] for k in ("reads", "writes", "deletes") if k in body}
            if "scale" in body:
                s = float(body["scale"])
                from .throttle import DEFAULTS
                limits = {k: (c * s, r * s) for k, (c, r) in DEFAULTS.items()}
            emu.throttle.configure(limits, body.get("enabled"))
            return Response(200, {"limits": emu.throttle.limits, "enabled": emu.throttle.enabled})
        if head == "tokens" and m == "POST":
            if len(segs) > 1 and segs[1] == "revoke":
                emu.identity.revoke_all()
                return Response(200, {"ok": True})
            if "lifetime_seconds" in body:
                emu.identity.lifetime = int(body["lifetime_seconds"])
            return Response(200, {"lifetime_seconds": emu.identity.lifetime, "issued": emu.identity.issued})
        if head == "vms" and len(segs) == 3 and segs[2] == "disks" and m == "POST":
            if not body.get("name"):
                raise ValueError("disk name required")
            d = emu.engine.add_disk(segs[1], body)
            if d is None:
                return Response(404, {"error": "no such VM"})
            return Response(201, {"disk": d.name, "added_at": util.fmt_time(d.added_at)})
        if head == "items" and len(segs) == 2 and m == "POST":
            with emu.engine.lock:
                it = emu.engine.find_item_by_vm(segs[1])
                if it is None:
                    return Response(404, {"error": "no such item"})
                it.health_override.update(body)
            return Response(200, {"ok": True})
        if head == "jobs" and m == "GET":
            return Response(200, {"jobs": emu.jobs_dump()})
        return Response(404, {"error": "unknown control endpoint %s %s" % (m, req.path)})
