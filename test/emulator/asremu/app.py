"""The emulator object: wires world, clock, identity, throttling, faults, request log, ASR engine,
ARM front end and control API together and dispatches requests by listener.
"""
import copy
import os
import urllib.parse

from . import util
from .arm import Arm
from .clock import Clock
from .control import Control
from .engine import Engine
from .faults import Faults
from .httpcore import Response
from .identity import Identity
from .reqlog import RequestLog
from .throttle import DEFAULTS, Throttle


class Emulator:
    def __init__(self, world, state_dir, scale, urls, login_hosts, latency_ms=0, retry_after=None):
        self.pid = os.getpid()
        self.world = world
        self.state_dir = state_dir
        self.urls = urls
        self.clock = Clock(scale)
        self.base_config = {"latency_ms": latency_ms, "page_size": world.settings.get("page_size", 1000),
                            "retry_after": retry_after, "durations": {},
                            "ir_seconds": world.settings.get("ir_seconds", 2820),
                            "ir_pending_seconds": world.settings.get("ir_pending_seconds", 120),
                            "cancel_seconds": world.settings.get("cancel_seconds", 10)}
        self.config = copy.deepcopy(self.base_config)
        self.faults = Faults()
        self.reqlog = RequestLog(os.path.join(state_dir, "requests.jsonl"))
        self.identity = Identity(world, login_hosts)
        lim = world.settings.get("throttling") or {}
        self.throttle = Throttle(lim)
        self.engine = Engine(world, self.clock, self.faults, self.config)
        self.arm = Arm(world, self.engine, self.identity, self.throttle, self.config, urls)
        self.control = Control(self)

    @staticmethod
    def new_guid():
        return util.new_guid()

    @staticmethod
    def is_login_path(path):
        return not path.lower().startswith("/subscriptions")

    def reset(self):
        self.faults.remove()
        self.reqlog.clear()
        self.config.clear()
        self.config.update(copy.deepcopy(self.base_config))
        limits = dict(DEFAULTS)
        limits.update(self.world.settings.get("throttling") or {})
        self.throttle.configure(limits, True)
        self.identity.lifetime = int(self.world.settings.get("token_lifetime_seconds", 3599))
        with self.engine.lock:
            self.engine.build()

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, req):
        if req.listener == "arm":
            return self.arm.handle(req)
        if req.listener == "login":
            return self._login(req)
        if req.listener == "imds":
            return self._imds(req)
        return Response(404, {"error": "not found"})

    def _login(self, req):
        segs = [s for s in req.path.split("/") if s]
        base = self.urls["login_endpoint"]
        crid = req.headers.get("client-request-id")
        hdrs = [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache"),
                ("x-ms-request-id", util.new_guid()), ("x-ms-ests-server", "2.1.99999.1 - asr-emulator")]
        if crid:
            hdrs.append(("client-request-id", crid))
        if len(segs) == 4 and segs[1:] == ["oauth2", "v2.0", "token"] and req.method == "POST":
            form = dict(urllib.parse.parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
            status, body = self.identity.token(segs[0], form, req.headers.get("Authorization"), req.host)
            return Response(status, body, hdrs)
        if len(segs) == 4 and segs[1:] == ["v2.0", ".well-known", "openid-configuration"] and req.method == "GET":
            status, body = self.identity.openid_configuration(base, segs[0])
            return Response(status, body, hdrs)
        if segs[:3] == ["common", "discovery", "instance"]:
            host = urllib.parse.urlsplit(base).netloc
            return Response(200, {"tenant_discovery_endpoint": "%s/common/v2.0/.well-known/openid-configuration" % base,
                                  "api-version": "1.1", "metadata": [{"preferred_network": host, "preferred_cache": host,
                                                                      "aliases": [host]}]}, hdrs)
        return Response(404, {"error": "invalid_request",
                              "error_description": "AADSTS900561: The endpoint only accepts POST requests.",
                              "error_codes": [900561]}, hdrs)

    def _imds(self, req):
        if req.path.rstrip("/") == "/metadata/identity/oauth2/token" and req.method == "GET":
            status, body = self.identity.imds_token(req.headers, req.query)
            return Response(status, body, [("Server", "IMDS/150.870.65.1854")])
        return Response(404, {"error": "not_found", "error_description": "The requested URI was not found."})

    # ------------------------------------------------------------------ dumps
    def state_dump(self):
        with self.engine.lock:
            now = self.engine.tick()
            items = []
            jobs = []
            for vault in self.engine.vaults.values():
                for it in vault.items:
                    items.append({"vault": vault.name, "name": it.name, "vm": it.vm.name, "id": it.arm_id(),
                                  "fabric": it.primary().fabric, "container": it.primary().container,
                                  "direction": it.direction, "protectionState": it.state,
                                  "testFailoverState": it.tfo_state,
                                  "job": it.job.name if it.job is not None and it.job.running else None,
                                  "recovery_points": len(it.rps), "failoverRecoveryPointId": it.failover_rp_id,
                                  "disks": [d.name for d in it.vm.disks]})
            jobs = self.jobs_dump()
            return {"now": now, "time": util.fmt_time(now), "scale": self.clock.scale, "config": self.config,
                    "items": items, "jobs": jobs, "faults": self.faults.list(),
                    "tokens_issued": self.identity.issued}

    def jobs_dump(self):
        out = []
        with self.engine.lock:
            self.engine.tick()
            for vault in self.engine.vaults.values():
                for j in sorted(vault.jobs.values(), key=lambda j: j.start):
                    out.append({"name": j.name, "scenario": j.scenario, "state": j.state, "target": j.target_name,
                                "percent": j.percent(), "activityId": j.activity_id,
                                "start": util.fmt_time(j.start), "end": util.fmt_time(j.end) if j.end else None})
        return out
