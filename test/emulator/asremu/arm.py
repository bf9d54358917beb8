"""Azure Resource Manager front end for Microsoft.RecoveryServices (ASR, A2A).

Routing of every ARM path the extension and the SDK use (asr-rest.md section 11), ARM's own
behaviour around it (api-version required, bearer token check with ARM's 401 bodies, tenant and
subscription checks, per-principal throttling buckets with `x-ms-ratelimit-remaining-*` headers,
x-ms-request-id / correlation / routing ids, echoed x-ms-client-request-id), list paging with
`nextLink`/`skipToken`, `$filter`, and the LRO answers of actions (202 + Location +
Azure-AsyncOperation + Retry-After + x-ms-request-id = job id), shaped by the LRO patterns of
lro.py and the URL faults (long signed-looking URLs, foreign hosts).
"""
import base64
import email.utils
import re
import time
import urllib.parse

from . import filters, lro, recovery_points, util
from .engine import ArmError
from .httpcore import Response

API_VERSION_MISSING = ("MissingApiVersionParameter",
                       "The api-version query parameter (?api-version=) is required for all requests.")


class Arm:
    def __init__(self, world, engine, identity, throttle, config, urls):
        self.world = world
        self.engine = engine
        self.identity = identity
        self.throttle = throttle
        self.config = config
        self.urls = urls                # dict: arm_endpoint, foreign hosts...

    # ------------------------------------------------------------------ entry point
    def handle(self, req):
        started = time.time()
        crid = req.headers.get("x-ms-client-request-id")
        corr = req.headers.get("x-ms-correlation-request-id") or util.new_guid()
        ctx = {"crid": crid, "corr": corr, "principal": None, "sub": None, "ratelimit": []}
        try:
            resp = self._handle(req, ctx)
        except ArmError as e:
            resp = Response(e.status, e.body(crid))
        except ValueError as e:
            resp = Response(400, {"error": {"code": "InvalidRequestContent",
                                            "message": "The request content was invalid and could not be deserialized: '%s'." % e}})
        # ARM's response headers
        rid = resp.header("x-ms-request-id")
        if rid is None:
            resp.set_header("x-ms-request-id", "%s %s" % (crid or util.new_guid(), util.ps_request_id_time(started)))
        if crid:
            resp.set_header("x-ms-client-request-id", crid)
        resp.set_header("x-ms-correlation-request-id", corr)
        resp.set_header("x-ms-routing-request-id", "EASTUS:%s:%s" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), corr))
        for k, v in ctx["ratelimit"]:
            resp.set_header(k, v)
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("Pragma", "no-cache")
        resp.set_header("Expires", "-1")
        resp.set_header("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        resp.set_header("X-Content-Type-Options", "nosniff")
        return resp

    def _handle(self, req, ctx):
        segs = [urllib.parse.unquote(s) for s in req.path.strip("/").split("/")]
        low = [s.lower() for s in segs]
        if not low or low[0] != "subscriptions" or len(segs) < 2:
            raise ArmError(404, "NotFound", "No HTTP resource was found that matches the request URI '%s'." % req.path)
        if not req.q("api-version"):
            raise ArmError(400, *API_VERSION_MISSING)
        # authentication before anything else
        claims, err = self.identity.check_bearer(req.headers.get("Authorization"))
        if err:
            status, code, msg = err
            r = Response(status, {"error": {"code": code, "message": msg}})
            r.set_header("WWW-Authenticate", 'Bearer authorization_uri="%s/%s", error="invalid_token", '
                         'error_description="The access token is missing or invalid."'
                         % (self.urls["login_endpoint"], self.world.tenants[0]["id"]))
            return r
        ctx["principal"] = claims.get("oid")
        sub = self.world.subscription(segs[1])
        if sub is None:
            raise ArmError(404, "SubscriptionNotFound", "The subscription '%s' could not be found." % segs[1])
        if not util.ieq(claims.get("tid"), sub["tenant"]):
            r = Response(401, {"error": {"code": "InvalidAuthenticationTokenTenant",
                                         "message": "The access token is from the wrong issuer 'https://sts.windows.net/%s/'. "
                                                    "It must match the tenant 'https://sts.windows.net/%s/' associated with this "
                                                    "subscription." % (claims.get("tid"), sub["tenant"])}})
            r.set_header("WWW-Authenticate", 'Bearer authorization_uri="%s/%s", error="invalid_token"'
                         % (self.urls["login_endpoint"], sub["tenant"]))
            return r
        allowed = sub.get("principals")
        if allowed is not None and not any(util.ieq(claims.get("oid"), p) or util.ieq(claims.get("appid"), p) for p in allowed):
            raise ArmError(403, "AuthorizationFailed",
                           "The client '%s' with object id '%s' does not have authorization to perform action "
                           "'Microsoft.RecoveryServices/vaults/read' over scope '/subscriptions/%s' or the scope is invalid."
                           % (claims.get("appid"), claims.get("oid"), sub["id"]))
        ok, kind, remaining, gremaining, retry = self.throttle.take(sub["id"], claims.get("oid"), req.method)
        ctx["ratelimit"] = [("x-ms-ratelimit-remaining-subscription-%s" % kind, str(remaining)),
                            ("x-ms-ratelimit-remaining-subscription-global-%s" % kind, str(gremaining))]
        if not ok:
            r = Response(429, {"error": {"code": "SubscriptionRequestsThrottled",
                                         "message": "Number of '%s' requests for subscription '%s' actor '%s' exceeded. "
                                                    "Please try again after '%d' seconds after additional tokens are available. "
                                                    "Refer to https://aka.ms/arm-throttling for additional information."
                                                    % (kind[:-1], sub["id"], claims.get("oid"), retry)}})
            r.set_header("Retry-After", str(retry))
            return r
        if len(low) < 8 or low[2] != "resourcegroups" or low[4] != "providers" or \
                low[5] != "microsoft.recoveryservices" or low[6] != "vaults":
            raise ArmError(404, "NotFound", "No HTTP resource was found that matches the request URI '%s'." % req.path)
        vault = self.engine.vault(segs[1], segs[3], segs[7])
        if vault is None:
            raise ArmError(404, "ResourceNotFound",
                           "The Resource 'Microsoft.RecoveryServices/vaults/%s' under resource group '%s' was not found. "
                           "For more details please go to https://aka.ms/ARMResourceNotFoundFix" % (segs[7], segs[3]))
        with self.engine.lock:
            now = self.engine.tick()
            return self._vault(req, ctx, vault, segs[8:], low[8:], now)

    # ------------------------------------------------------------------ vault routes
    def _vault(self, req, ctx, vault, segs, low, now):
        m, n = req.method.upper(), len(low)
        if n == 0 and m == "GET":
            return Response(200, vault.vault_doc())
        head = low[0]
        if head == "replicationprotecteditems" and n == 1 and m == "GET":
            return self._list(req, [i for i in vault.items], lambda i: i.doc(now), self._item_term)
        if head == "replicationprotectioncontainermappings" and n == 1 and m == "GET":
            return self._list(req, vault.mappings, vault.mapping_doc)
        if head == "replicationpolicies" and m == "GET":
            if n == 1:
                return self._list(req, list(vault.policies.values()), lambda p: vault.policy_doc(p["name"]))
            if n == 2:
                if segs[1].lower() not in vault.policies:
                    raise self._nf("replication policy", segs[1])
                return Response(200, vault.policy_doc(segs[1]))
        if head == "replicationrecoveryplans" and n == 1 and m == "GET":
            return Response(200, {"value": [], "nextLink": None})
        if head == "replicationoperationstatus" and n == 2 and m == "GET":
            return self._op_status(req, vault, segs[1])
        if head == "replicationjobs":
            return self._jobs(req, ctx, vault, segs, low, now)
        if head == "replicationfabrics":
            return self._fabrics(req, ctx, vault, segs, low, now)
        raise ArmError(404, "NotFound", "No HTTP resource was found that matches the request URI '%s'." % req.path)

    @staticmethod
    def _nf(what, name, detail="NotFound"):
        return ArmError(404, "NotFound", "The %s '%s' was not found." % (what, name), detail,
                        "The resource does not exist.", "Check the name and retry.")

    def _fabrics(self, req, ctx, vault, segs, low, now):
        m, n = req.method.upper(), len(low)
        regions = list(vault.regions.values())
        if n == 1 and m == "GET":
            return self._list(req, regions, lambda r: r.fabric_doc())
        region = vault.region_by_fabric(segs[1])
        if region is None:
            raise ArmError(400, "BadRequest", "The fabric '%s' was not found in the vault." % segs[1], "FabricNotFound",
                           "The replication fabric does not exist.", "Check the fabric name.")
        if n == 2 and m == "GET":
            return Response(200, region.fabric_doc())
        if low[2] != "replicationprotectioncontainers":
            raise ArmError(404, "NotFound", "No HTTP resource was found that matches the request URI '%s'." % req.path)
        if n == 3 and m == "GET":
            return self._list(req, [region], lambda r: r.container_doc())
        if not util.ieq(segs[3], region.container):
            raise ArmError(400, "BadRequest", "The protection container '%s' was not found." % segs[3],
                           "ProtectionContainerNotFound", "The container does not exist.", "Check the container name.")
        if n == 4 and m == "GET":
            return Response(200, region.container_doc())
        sub = low[4]
        if sub == "switchprotection" and n == 5 and m == "POST":
            return self._action(req, ctx, vault, lambda sync: self.engine.switch_protection(
                vault, region, self._body(req), ctx["crid"], req.q("api-version"), sync=sync))
        if sub == "operationresults" and n == 6 and m == "GET":
            return self._op_result(req, vault, segs[5], now)
        if sub == "replicationprotectioncontainermappings" and m == "GET":
            maps = [mp for mp in vault.mappings if mp["source"] is region]
            if n == 5:
                return self._list(req, maps, vault.mapping_doc)
            if n == 6:
                for mp in maps:
                    if util.ieq(mp["name"], segs[5]):
                        return Response(200, vault.mapping_doc(mp))
                raise self._nf("protection container mapping", segs[5])
        if sub == "replicationprotecteditems":
            items = [i for i in vault.items if i.primary() is region]
            if n == 5 and m == "GET":
                return self._list(req, items, lambda i: i.doc(now), self._item_term)
            if n == 8 and low[6] == "operationresults" and m == "GET":
                return self._op_result(req, vault, segs[7], now)
            item = vault.find_item(region.fabric, region.container, segs[5])
            if item is None:
                raise self._nf("replicated item", segs[5], "ReplicationProtectedItemNotFound")
            if n == 6 and m == "GET":
                return Response(200, item.doc(now))
            if n == 6 and m == "DELETE":     # purge (force delete)
                return self._action(req, ctx, vault, lambda sync: self.engine.item_action(
                    vault, item, "purge", None, ctx["crid"], req.q("api-version"), sync=sync))
            act = low[6]
            if act == "recoverypoints" and m == "GET":
                pts = sorted(item.rps, key=lambda p: p.time)
                if n == 7:
                    return self._list(req, pts, lambda p: recovery_points.doc(item, p))
                if n == 8:
                    p = recovery_points.find(item, segs[7])
                    if p is None:
                        raise self._nf("recovery point", segs[7], "RecoveryPointNotFound")
                    return Response(200, recovery_points.doc(item, p))
            if act == "operationresults" and n == 8 and m == "GET":
                return self._op_result(req, vault, segs[7], now)
            if n == 7 and m == "POST":
                return self._action(req, ctx, vault, lambda sync: self.engine.item_action(
                    vault, item, act, self._body(req), ctx["crid"], req.q("api-version"), sync=sync))
        raise ArmError(404, "NotFound", "No HTTP resource was found that matches the request URI '%s'." % req.path)

    def _jobs(self, req, ctx, vault, segs, low, now):
        m, n = req.method.upper(), len(low)
        if n == 1 and m == "GET":
            jobs = sorted(vault.jobs.values(), key=lambda j: j.start, reverse=True)
            return self._list(req, jobs, lambda j: j.doc(), self._job_term)
        job = vault.jobs.get(segs[1]) or next((j for k, j in vault.jobs.items() if util.ieq(k, segs[1])), None)
        if job is None:
            raise self._nf("job", segs[1], "JobNotFound")
        if n == 2 and m == "GET":
            return Response(200, job.doc())
        if n == 3 and m == "POST" and low[2] in ("cancel", "restart", "resume"):
            return self._action(req, ctx, vault, lambda sync: self.engine.job_action(
                vault, job, low[2], self._body(req), ctx["crid"], req.q("api-version"), sync=sync))
        if n == 4 and low[2] == "operationresults" and m == "GET":
            return self._op_result(req, vault, segs[3], now)
        raise ArmError(404, "NotFound", "No HTTP resource was found that matches the request URI '%s'." % req.path)

    @staticmethod
    def _body(req):
        try:
            return req.json() or {}
        except ValueError:
            raise ArmError(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.")

    # ------------------------------------------------------------------ lists
    def _list(self, req, records, render, term=None):
        f = req.q("$filter")
        if f and term:
            try:
                pred = filters.compile_filter(f, term)
            except filters.FilterError as e:
                raise ArmError(400, "BadRequest", "The $filter '%s' is not valid: %s." % (f, e), "InvalidFilter",
                               "The filter expression could not be parsed.", "Correct the filter.")
            records = [r for r in records if pred(r)]
        size = int(self.config.get("page_size") or 1000)
        tok = req.q("skipToken") or req.q("$skipToken")
        start = 0
        if tok:
            try:
                start = int(base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)).decode().split(":")[1])
            except Exception:
                raise ArmError(400, "BadRequest", "The skip token is not valid.", "InvalidSkipToken", "", "")
        page = records[start:start + size]
        nxt = None
        if start + size < len(records):
            q = [(k, v) for k, v in req.query.items() if k.lower() not in ("skiptoken", "$skiptoken")]
            q.append(("skipToken", base64.urlsafe_b64encode(("offset:%d" % (start + size)).encode()).decode().rstrip("=")))
            nxt = self.urls["arm_endpoint"] + req.path + "?" + urllib.parse.urlencode(q, quote_via=urllib.parse.quote)
        return Response(200, {"value": [render(r) for r in page], "nextLink": nxt})

    @staticmethod
    def _item_term(item, field, op, value):
        f = field.lower()
        p = item.primary()
        if f == "sourcefabricname":
            actual = p.fabric.lower()
        elif f == "sourcefabriclocation":
            actual = p.location.lower()
        elif f == "fabricobjectid":
            actual = item.vm.vm_id(item.side("primary")).lower()
        elif f == "instancetype":
            actual = "a2a"
        elif f == "recoveryplanname":
            actual = None
        elif f == "friendlyname":
            actual = item.vm.name.lower()
        else:
            return None
        return filters.compare(actual, op, value.lower()) if actual is not None else False

    @staticmethod
    def _job_term(job, field, op, value):
        f = field.lower()
        if f == "starttime":
            # "jobs from" this time: StartTime eq 'T' selects jobs started at or after T
            t = util.parse_time(value)
            return job.start >= t if op == "eq" else filters.compare(job.start, op, t)
        if f == "endtime":
            t = util.parse_time(value)
            return job.start <= t if op == "eq" else filters.compare(job.start, op, t)
        if f == "jobstatus":
            return filters.compare(job.state.lower(), op, value.lower())
        if f == "jobname":
            return filters.compare(job.scenario.lower(), op, value.lower()) or util.ieq(job.name, value)
        if f == "affectedobjecttypes":
            return None
        return None

    # ------------------------------------------------------------------ actions & LRO
    def _action(self, req, ctx, vault, run):
        sync = any(f["action"] == "sync_200" for f in req.faults)
        op = run(sync)
        op.client_request_id = ctx["crid"]
        for f in req.faults:
            if f["action"] == "lro":
                op.pattern = f["pattern"]
            if f["action"] in ("long_urls", "foreign_async"):
                op.fault_params[f["action"]] = f
        if sync:
            return Response(200, op.result(self.engine.clock.now()),
                            [("x-ms-request-id", vault.job_id(op.job.name))])
        base = self.urls["arm_endpoint"]
        v = urllib.parse.quote(op.api_version or "", safe="")
        ao = base + vault.prefix() + "/replicationOperationStatus/" + op.name + "?api-version=" + v
        loc = base + op.target_path + "/operationresults/" + op.name + "?api-version=" + v
        ao, loc = self._decorate(op, ao, loc)
        op.ao_url, op.loc_url = ao, loc
        pat = op.pattern
        status = 202
        body = None
        if pat in ("201-ao-body", "location-201"):
            status = 201
        if pat in ("201-ao-body", "202-ao-body", "location-only"):
            body = lro.PROVISIONING_BODY
        headers = []
        if pat not in lro.LOC_ONLY and pat != "no-headers":
            headers.append(("Azure-AsyncOperation", ao))
        if pat not in lro.AO_ONLY and pat != "no-headers":
            headers.append(("Location", loc))
        headers.append(("Retry-After", self._retry_after(op, initial=True)))
        headers.append(("x-ms-request-id", vault.job_id(op.name)))
        r = Response(status, body, headers)
        if body is None:
            r.raw = b""
        return r

    def _retry_after(self, op, initial=False):
        if op.pattern == "retry-after-10":
            return "10"
        if op.pattern == "retry-after-httpdate":
            return email.utils.formatdate(time.time() + 3600, usegmt=True)
        if op.pattern == "location-chain" and initial:
            return "60"
        return str(self.engine.retry_after())

    def _decorate(self, op, ao, loc):
        pat = op.pattern
        if pat == "relative-urls":
            ao = ao[len(self.urls["arm_endpoint"]):]
            loc = loc[len(self.urls["arm_endpoint"]):]
        if pat in ("ao-unreachable", "location-unreachable"):
            port = self.urls["arm_endpoint"].rsplit(":", 1)[1]
            ao = ao.replace(self.urls["arm_endpoint"], "https://127.0.0.2:" + port, 1)
            loc = loc.replace(self.urls["arm_endpoint"], "https://127.0.0.2:" + port, 1)
        fa = op.fault_params.get("foreign_async")
        if fa:
            port = self.urls["arm_endpoint"].rsplit(":", 1)[1]
            host = fa.get("host", "localhost")
            scheme = fa.get("scheme", "https")
            if scheme == "http":
                port = self.urls["imds_endpoint"].rsplit(":", 1)[1]
            if ":" not in host:
                host = host + ":" + port
            userinfo = (fa["userinfo"] + "@") if fa.get("userinfo") else ""
            which = fa.get("which") or ["Azure-AsyncOperation", "Location"]
            new_base = "%s://%s%s" % (scheme, userinfo, host)
            if "Azure-AsyncOperation" in which:
                ao = ao.replace(self.urls["arm_endpoint"], new_base, 1)
            if "Location" in which:
                loc = loc.replace(self.urls["arm_endpoint"], new_base, 1)
        lu = op.fault_params.get("long_urls")
        if lu:
            size = int(lu.get("size_bytes", 4096))
            ao = ao + signed_query(size, op.name + "ao")
            loc = loc + signed_query(size, op.name + "loc")
        return ao, loc

    def _find_op(self, vault, name):
        op = vault.ops.get(name)
        if op is None:
            for k, o in vault.ops.items():
                if util.ieq(k, name):
                    return o
            raise ArmError(404, "NotFound", "The operation '%s' was not found." % name, "OperationNotFound",
                           "The operation id is not known.", "Check the operation id.")
        return op

    def _op_status(self, req, vault, name):
        op = self._find_op(vault, name)
        op.ao_polls += 1
        pat = op.pattern
        ra = [("Retry-After", self._retry_after(op))] if pat in ("ao-running", "retry-after-10", "retry-after-httpdate") else []
        if pat == "ao-500x3" and op.ao_polls <= 3 or pat == "ao-500x4" and op.ao_polls <= 4:
            return Response(500, {"error": {"code": "InternalServerError", "message": "Encountered internal server error."}})
        if pat == "ao-429" and op.ao_polls == 1:
            return Response(429, {"error": {"code": "TooManyRequests", "message": "Too many requests."}},
                            [("Retry-After", "1")])
        if pat == "ao-404":
            raise ArmError(404, "NotFound", "The operation '%s' was not found." % name)
        if pat == "ao-empty-body":
            return Response(200, None, [("Content-Type", "application/json; charset=utf-8")] + ra)
        if pat == "ao-no-status":
            return Response(200, {"percentComplete": 50}, ra)
        doc = op.status_doc()
        if op.done():
            if pat == "ao-failed":
                doc["status"] = "Failed"
                doc["error"] = {"code": "X", "message": "m", "details": None}
            elif pat == "ao-canceled":
                doc["status"] = "Canceled"
                doc["error"] = {"code": "OperationCanceled", "message": "The operation was canceled.", "details": None}
            elif pat == "ao-resource-location" and doc["status"] == "Succeeded":
                doc["resourceLocation"] = self.urls["arm_endpoint"] + self._target_now(op) + \
                    "?api-version=" + urllib.parse.quote(op.api_version or "", safe="")
        elif pat == "ao-running":
            doc["status"] = "Running"
        if pat == "ao-lowercase":
            doc["status"] = doc["status"].lower()
        return Response(200, doc, ra)

    @staticmethod
    def _target_now(op):
        job = op.job
        if op.kind == "job" and job.item is not None and "/replicationProtectedItems/" in op.target_path:
            return job.item.arm_id()
        return op.target_path

    def _op_result(self, req, vault, name, now):
        op = self._find_op(vault, name)
        op.loc_polls += 1
        pat = op.pattern
        if pat == "location-201" and req.headers.get("x-ms-client-request-id") != getattr(op, "client_request_id", None):
            # arm-client.md scenario 25: the test server asserts the poll re-sends the action's request id
            raise ArmError(400, "ClientRequestIdMismatch",
                           "The poll must carry the x-ms-client-request-id of the operation's initial request.")
        if pat == "location-chain":
            if req.q("hop") != "2":
                nxt = op.loc_url + ("&" if "?" in op.loc_url else "?") + "hop=2"
                return Response(202, None, [("Location", nxt), ("Retry-After", "10")])
            if not op.done():
                return Response(202, None, [("Location", req.path + "?" + req.query_string),
                                            ("Retry-After", self._retry_after(op))])
            return Response(204, None)
        if not op.done():
            return Response(202, None, [("Location", op.loc_url), ("Retry-After", self._retry_after(op))])
        if pat == "location-empty-final":
            return Response(200, None)
        if pat == "location-bad-json":
            return Response(200, raw=b"{", headers=[("Content-Type", "application/json; charset=utf-8")])
        if pat == "location-bad-json-2":
            return Response(200, raw=b"{'\"}", headers=[("Content-Type", "application/json; charset=utf-8")])
        doc = op.result(now)
        if doc is None:
            return Response(204, None)
        if pat == "location-203":
            return Response(203, doc)
        return Response(200, doc)


def signed_query(size, seed):
    """`&t=...&c=<base64url cert-like blob>&s=...&h=...` of about `size` bytes (ARM's signed URLs)."""
    import hashlib
    blob = b""
    i = 0
    while len(blob) * 4 // 3 < size:
        blob += hashlib.sha512(("%s/%d" % (seed, i)).encode()).digest()
        i += 1
    c = base64.urlsafe_b64encode(b"\x30\x82\x07\xa5" + blob).decode().rstrip("=")[:size]
    s = base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest() * 8).decode().rstrip("=")
    h = base64.urlsafe_b64encode(hashlib.sha256((seed + "h").encode()).digest()).decode().rstrip("=")
    return "&t=%d&c=%s&s=%s&h=%s" % (int(time.time() * 10 ** 7) + 621355968000000000, c, s, h)
