"""Every fault control of the control API, observed both on the wire (raw HTTPS) and, where it
matters, through Microsoft's SDK; plus each LRO pattern of arm-client.md section 2."""
import http.client
import json
import time
import unittest
import urllib.parse

from azure.core.exceptions import (DecodeError, HttpResponseError, ServiceRequestError,
                                   ServiceResponseError)
from azure.mgmt.recoveryservicessiterecovery import models as M

from .harness import Emulator, parts

FO = {"properties": {"failoverDirection": "PrimaryToRecovery", "sourceSiteOperations": "NotRequired",
                     "providerSpecificDetails": {"instanceType": "A2A"}}}
ITEMS = "/replicationProtectedItems$"


def fo_input():
    return M.UnplannedFailoverInput(properties=M.UnplannedFailoverInputProperties(
        failover_direction="PrimaryToRecovery", source_site_operations="NotRequired",
        provider_specific_details=M.A2AUnplannedFailoverInput()))


class Faults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator(scale=3000)
        cls.tok = cls.emu.token()
        cls.c = cls.emu.sdk(retry_backoff_factor=0.01)

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def setUp(self):
        self.emu.reset()
        st, _, doc = self.emu.arm("GET", self.emu.vault_path + "/replicationProtectedItems", token=self.tok)
        self.app = [i for i in doc["value"] if i["properties"]["friendlyName"] == "app-vm-01"][0]

    def arm(self, method, path, body=None, **kw):
        return self.emu.arm(method, path, body, token=self.tok, **kw)

    def list_path(self):
        return self.emu.vault_path + "/replicationProtectedItems"

    def failover_posts(self):
        return [r for r in self.emu.requests(listener="arm", method="POST") if r["path"].endswith("/unplannedFailover")]

    # ------------------------------------------------------------------ HTTP faults
    def test_delay(self):
        self.emu.fault(action="delay", delay_ms=600, match={"path": ITEMS})
        t = time.time()
        self.assertEqual(self.arm("GET", self.list_path())[0], 200)
        self.assertGreaterEqual(time.time() - t, 0.6)
        t = time.time()
        self.arm("GET", self.list_path())
        self.assertLess(time.time() - t, 0.5)     # count 1 by default

    def test_status_429_500_503(self):
        for st_code, code in ((429, "TooManyRequests"), (500, "InternalServerError"), (503, "ServiceUnavailable")):
            self.emu.fault(action="status", status=st_code, match={"method": "GET", "path": ITEMS})
            st, h, doc = self.arm("GET", self.list_path())
            self.assertEqual((st, doc["error"]["code"]), (st_code, code))
            if st_code in (429, 503):
                self.assertEqual(h["retry-after"], "1")
            self.assertEqual(self.arm("GET", self.list_path())[0], 200)
        # the SDK retries them
        self.emu.fault(action="status", status=503, match={"path": ITEMS}, count=2)
        self.assertEqual(len(list(self.c.replication_protected_items.list())), 3)
        self.emu.fault(action="status", status=500, match={"path": ITEMS}, count=None)
        with self.assertRaises(HttpResponseError):
            list(self.c.replication_protected_items.list())
        self.emu.control("DELETE", "/faults")
        self.emu.fault(action="status", status=429, retry_after=1, match={"path": ITEMS}, body={"error": {"code": "X", "message": "y"}})
        st, h, doc = self.arm("GET", self.list_path())
        self.assertEqual(doc["error"]["code"], "X")

    def test_drop(self):
        self.emu.fault(action="drop", match={"path": ITEMS})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine)):
            self.arm("GET", self.list_path())
        log = self.emu.requests(path=ITEMS)
        self.assertEqual(log[-1]["status"], "dropped")

    def test_drop_after_processing_loses_the_202(self):
        self.emu.fault(action="drop", after=True, match={"method": "POST", "path": "unplannedFailover"})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine)):
            self.arm("POST", self.app["id"] + "/unplannedFailover", FO, headers={"x-ms-client-request-id": "lost-1"})
        self.assertEqual(len(self.failover_posts()), 1)
        # it did happen: the vault's job list has the job (the item's currentScenario may already
        # be back to None: at this time scale the job can end before the next request)
        jobs = self.jobs_of("lost-1")
        self.assertEqual(len(jobs), 1)
        self.assertEqual(jobs[0]["properties"]["scenarioName"], "UnplannedFailover")

    def jobs_of(self, crid):
        """The vault's jobs whose activityId carries this client request id (how a client reconciles)."""
        st, _, doc = self.arm("GET", self.emu.vault_path + "/replicationJobs")
        self.assertEqual(st, 200)
        return [j for j in doc["value"] if j["properties"]["activityId"].startswith(crid + " ")]

    def post_failover(self, crid):
        return self.arm("POST", self.app["id"] + "/unplannedFailover", FO, headers={"x-ms-client-request-id": crid})

    def failed_over(self):
        """Whether the item went through an unplanned failover (its job may be over already)."""
        return self.arm("GET", self.app["id"])[2]["properties"]["protectionState"].startswith("UnplannedFailover")

    def test_status_after_executes_then_answers(self):
        rule = self.emu.fault(action="status", status=500, after=True, match={"method": "POST", "path": "unplannedFailover"})
        st, h, doc = self.post_failover("after-1")
        self.assertEqual((st, doc["error"]["code"]), (500, "InternalServerError"))
        self.assertEqual(h["x-ms-client-request-id"], "after-1")
        self.assertNotIn("azure-asyncoperation", h)
        # ASR acted all the same: the item is failing over and the vault lists the job
        self.assertTrue(self.failed_over())
        self.assertEqual(len(self.jobs_of("after-1")), 1)
        posts = self.failover_posts()
        self.assertEqual([(p["status"], p["executed"], p["faults"]) for p in posts], [(500, 202, [rule])])

    def test_status_without_after_does_not_execute(self):
        rule = self.emu.fault(action="status", status=500, match={"method": "POST", "path": "unplannedFailover"})
        st, _, doc = self.post_failover("plain-1")
        self.assertEqual(st, 500)
        self.assertFalse(self.failed_over())
        self.assertEqual(self.jobs_of("plain-1"), [])
        # without a fault the same POST runs: executed is what carrying it out answered
        self.assertEqual(self.post_failover("plain-2")[0], 202)
        self.assertEqual(len(self.jobs_of("plain-2")), 1)
        self.assertEqual([(p["client_request_id"], p["status"], p["executed"], p["faults"]) for p in self.failover_posts()],
                         [("plain-1", 500, None, [rule]), ("plain-2", 202, 202, [])])

    def test_drop_executed_only_after(self):
        lost = (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine)
        self.emu.fault(action="drop", match={"method": "POST", "path": "unplannedFailover"})
        with self.assertRaises(lost):
            self.post_failover("drop-1")
        self.assertEqual(self.jobs_of("drop-1"), [])
        self.emu.fault(action="drop", after=True, match={"method": "POST", "path": "unplannedFailover"})
        with self.assertRaises(lost):
            self.post_failover("drop-2")
        self.assertEqual(len(self.jobs_of("drop-2")), 1)
        self.assertEqual([(p["client_request_id"], p["status"], p["executed"]) for p in self.failover_posts()],
                         [("drop-1", "dropped", None), ("drop-2", "dropped-after", 202)])

    def test_status_and_drop_after_on_one_request(self):
        # both rules fire on one POST: the forced status (not after) wins over executing it, so the
        # connection is dropped "after" nothing -- logged dropped-after, but never executed
        lost = (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine)
        r1 = self.emu.fault(action="status", status=502, match={"method": "POST", "path": "unplannedFailover"})
        r2 = self.emu.fault(action="drop", after=True, match={"method": "POST", "path": "unplannedFailover"})
        with self.assertRaises(lost):
            self.post_failover("pair-1")
        self.assertEqual(self.jobs_of("pair-1"), [])
        self.assertFalse(self.failed_over())
        # a status rule with after=true plus a drop after: executed, then dropped
        r3 = self.emu.fault(action="status", status=502, after=True, match={"method": "POST", "path": "unplannedFailover"})
        r4 = self.emu.fault(action="drop", after=True, match={"method": "POST", "path": "unplannedFailover"})
        with self.assertRaises(lost):
            self.post_failover("pair-2")
        self.assertEqual(len(self.jobs_of("pair-2")), 1)
        self.assertEqual([(p["client_request_id"], p["status"], p["executed"], sorted(p["faults"]))
                          for p in self.failover_posts()],
                         [("pair-1", "dropped-after", None, sorted([r1, r2])),
                          ("pair-2", "dropped-after", 202, sorted([r3, r4]))])

    def test_sdk_sees_status_after_as_an_error(self):
        # 502 after ASR acted: Microsoft's SDK raises, yet the vault's job list has the job
        self.emu.fault(action="status", status=502, after=True, match={"method": "POST", "path": "unplannedFailover"})
        with self.assertRaises(HttpResponseError) as cm:
            self.c.replication_protected_items.begin_unplanned_failover(*parts(self.app["id"]), fo_input())
        self.assertEqual(cm.exception.status_code, 502)
        posts = self.failover_posts()
        self.assertEqual([(p["status"], p["executed"]) for p in posts], [(502, 202)])
        crid = posts[0]["client_request_id"]
        self.assertTrue(crid)
        jobs = [j for j in self.c.replication_jobs.list() if j.properties.activity_id.startswith(crid + " ")]
        self.assertEqual([j.properties.scenario_name for j in jobs], ["UnplannedFailover"])
        # 500 after: azure-core re-sends a POST answered 500/503/504; ASR refuses the second one (the
        # item is already failing over), so the caller sees an error although its failover runs --
        # exactly what a worker must reconcile instead of re-sending
        self.emu.reset()
        self.emu.fault(action="status", status=500, after=True, match={"method": "POST", "path": "unplannedFailover"})
        with self.assertRaises(HttpResponseError) as cm:
            self.c.replication_protected_items.begin_unplanned_failover(*parts(self.app["id"]), fo_input())
        self.assertEqual(cm.exception.status_code, 400)
        self.assertEqual([(p["status"], p["executed"]) for p in self.failover_posts()], [(500, 202), (400, 400)])
        self.assertTrue(self.failed_over())

    def test_malformed_truncated_huge_slow(self):
        self.emu.fault(action="malformed", match={"path": ITEMS})
        st, h, body = self.emu.https("GET", self.list_path() + "?api-version=x", headers={"Authorization": "Bearer " + self.tok})
        self.assertEqual((st, body), (200, b'{"value": ['))
        self.emu.fault(action="malformed", match={"path": ITEMS})
        with self.assertRaises(DecodeError):
            list(self.c.replication_protected_items.list())
        self.emu.fault(action="truncate", match={"path": ITEMS})
        with self.assertRaises(http.client.IncompleteRead):
            self.emu.https("GET", self.list_path() + "?api-version=x", headers={"Authorization": "Bearer " + self.tok})
        self.emu.fault(action="huge", size_bytes=6 * 1024 * 1024, match={"path": ITEMS})
        st, h, body = self.emu.https("GET", self.list_path() + "?api-version=x", headers={"Authorization": "Bearer " + self.tok})
        self.assertGreater(len(body), 6 * 1024 * 1024)
        self.assertEqual(len(json.loads(body)["value"]), 3)
        self.emu.fault(action="slow_body", chunk_bytes=2048, chunk_delay_ms=50, match={"path": ITEMS})
        t = time.time()
        st, h, body = self.emu.https("GET", self.list_path() + "?api-version=x", headers={"Authorization": "Bearer " + self.tok})
        self.assertGreaterEqual(time.time() - t, 0.05 * (len(body) // 2048))
        self.assertEqual(len(json.loads(body)["value"]), 3)

    def test_sync_200(self):
        self.emu.fault(action="sync_200", match={"path": "unplannedFailover"})
        st, h, doc = self.arm("POST", self.app["id"] + "/unplannedFailover", FO)
        self.assertEqual(st, 200)
        self.assertNotIn("azure-asyncoperation", h)
        self.assertNotIn("location", h)
        self.assertEqual(doc["properties"]["protectionState"], "UnplannedFailoverCommitPendingStatesBegin")
        self.emu.fault(action="sync_200", match={"path": "failoverCommit"})
        res = self.c.replication_protected_items.begin_failover_commit(*parts(self.app["id"])).result()
        self.assertEqual(res.properties.protection_state, "UnplannedFailoverCommitted")

    def test_missing_headers(self):
        self.emu.fault(action="missing_headers", headers=["Location", "Retry-After"], match={"path": "unplannedFailover"})
        st, h, _ = self.arm("POST", self.app["id"] + "/unplannedFailover", FO)
        self.assertEqual(st, 202)
        self.assertNotIn("location", h)
        self.assertNotIn("retry-after", h)
        self.assertIn("azure-asyncoperation", h)
        self.emu.reset()
        self.emu.fault(action="missing_headers", headers=["Location"], match={"path": "unplannedFailover"})
        self.c.replication_protected_items.begin_unplanned_failover(*parts(self.app["id"]), fo_input()).result()
        self.assertEqual([r for r in self.emu.requests() if "/operationresults/" in r["path"]], [])

    def test_long_urls(self):
        self.emu.fault(action="long_urls", size_bytes=6000, match={"path": "unplannedFailover"})
        st, h, _ = self.arm("POST", self.app["id"] + "/unplannedFailover", FO)
        for k in ("location", "azure-asyncoperation"):
            self.assertGreater(len(h[k]), 6000)
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(h[k]).query)
            self.assertEqual(set(q), {"api-version", "t", "c", "s", "h"})
        self.emu.reset()
        self.emu.fault(action="long_urls", size_bytes=6000, match={"path": "unplannedFailover"})
        res = self.c.replication_protected_items.begin_unplanned_failover(*parts(self.app["id"]), fo_input()).result()
        self.assertEqual(res.properties.protection_state, "UnplannedFailoverCommitPendingStatesBegin")
        polls = [r for r in self.emu.requests() if "replicationOperationStatus" in r["path"]]
        self.assertTrue(polls and all(len(r["query"]["c"]) >= 6000 for r in polls))

    def test_foreign_async_hosts(self):
        port = self.emu.ready["arm_endpoint"].rsplit(":", 1)[1]
        self.emu.fault(action="foreign_async", host="localhost", match={"path": "unplannedFailover"})
        st, h, _ = self.arm("POST", self.app["id"] + "/unplannedFailover", FO)
        self.assertTrue(h["azure-asyncoperation"].startswith("https://localhost:%s/" % port))
        self.assertTrue(h["location"].startswith("https://localhost:%s/" % port))
        # the SDK follows it and sends its token there (the request log shows it)
        self.emu.reset()
        self.emu.fault(action="foreign_async", host="localhost", match={"path": "unplannedFailover"})
        self.c.replication_protected_items.begin_unplanned_failover(*parts(self.app["id"]), fo_input()).result()
        foreign = [r for r in self.emu.requests() if r["host"] == "localhost:%s" % port]
        self.assertTrue(foreign)
        self.assertTrue(all(r["authorization"] for r in foreign))
        # 127.0.0.2: nothing listens there
        self.emu.reset()
        self.emu.fault(action="foreign_async", host="127.0.0.2", match={"path": "unplannedFailover"})
        with self.assertRaises(ServiceRequestError):
            self.c.replication_protected_items.begin_unplanned_failover(*parts(self.app["id"]), fo_input()).result()
        # plain http on another port: the SDK refuses to send its token
        self.emu.reset()
        self.emu.fault(action="foreign_async", scheme="http", host="127.0.0.1", match={"path": "unplannedFailover"})
        with self.assertRaises(ServiceRequestError):
            self.c.replication_protected_items.begin_unplanned_failover(*parts(self.app["id"]), fo_input()).result()
        self.assertEqual(self.emu.requests(listener="imds"), [])
        # userinfo in the URL
        self.emu.reset()
        self.emu.fault(action="foreign_async", userinfo="evil", host="127.0.0.1", match={"path": "unplannedFailover"})
        st, h, _ = self.arm("POST", self.app["id"] + "/unplannedFailover", FO)
        self.assertTrue(h["azure-asyncoperation"].startswith("https://evil@127.0.0.1:%s/" % port))

    # ------------------------------------------------------------------ job faults (raw view)
    def test_job_fail_status_document(self):
        self.emu.fault(action="job_fail", match={"scenario": "UnplannedFailover"}, task="StartReplicaVmTask",
                       code="70094", message="Failover failed.", possible_causes="pc", recommended_action="ra",
                       provider_code=31389)
        st, h, _ = self.arm("POST", self.app["id"] + "/unplannedFailover", FO)
        self.emu.control("POST", "/clock", {"advance_seconds": 600})
        ao = self.arm("GET", urllib.parse.urlsplit(h["azure-asyncoperation"]).path)[2]
        self.assertEqual(ao["status"], "Failed")
        self.assertEqual(ao["error"], {"code": "70094", "message": "Failover failed.", "details": None})
        job = self.arm("GET", h["x-ms-request-id"])[2]["properties"]
        e = job["errors"][0]
        self.assertEqual((e["serviceErrorDetails"]["possibleCauses"], e["serviceErrorDetails"]["recommendedAction"]), ("pc", "ra"))
        self.assertEqual(e["providerErrorDetails"]["errorCode"], 31389)
        failed_task = [t for t in job["tasks"] if t["taskId"] == "StartReplicaVmTask"][0]
        self.assertEqual(failed_task["state"], "Failed")
        item = self.arm("GET", self.app["id"])[2]["properties"]
        self.assertEqual(item["protectionState"], "Protected")
        self.assertIn("UnplannedFailover", item["allowedOperations"])

    def test_job_stuck_and_suspend_raw(self):
        self.emu.control("POST", "/config", {"cancel_seconds": 36000})
        self.emu.fault(action="job_stuck", match={"scenario": "UnplannedFailover"})
        st, h, _ = self.arm("POST", self.app["id"] + "/unplannedFailover", FO)
        self.emu.control("POST", "/clock", {"advance_seconds": 86400})
        self.assertEqual(self.arm("GET", h["x-ms-request-id"])[2]["properties"]["state"], "InProgress")
        job_name = h["x-ms-request-id"].rsplit("/", 1)[1]
        st, ch, _ = self.arm("POST", self.emu.vault_path + "/replicationJobs/%s/cancel" % job_name)
        self.assertEqual(st, 202)
        self.assertIn("azure-asyncoperation", ch)
        self.assertEqual(self.arm("GET", h["x-ms-request-id"])[2]["properties"]["state"], "Cancelling")
        self.emu.control("POST", "/clock", {"advance_seconds": 36001})
        self.assertEqual(self.arm("GET", h["x-ms-request-id"])[2]["properties"]["state"], "Cancelled")
        self.assertEqual(self.arm("GET", urllib.parse.urlsplit(h["azure-asyncoperation"]).path)[2]["status"], "Canceled")
        st, _, doc = self.arm("POST", self.emu.vault_path + "/replicationJobs/%s/resume" % job_name, {"properties": {"comments": "x"}})
        self.assertEqual(st, 400)

    # ------------------------------------------------------------------ LRO patterns
    def run_pattern(self, pattern):
        self.emu.reset()
        self.emu.fault(action="lro", pattern=pattern, match={"path": "unplannedFailover"})
        return self.c.replication_protected_items.begin_unplanned_failover(*parts(self.app["id"]), fo_input()).result()

    def op_requests(self, kind):
        return [r for r in self.emu.requests(listener="arm") if kind in r["path"]]

    def test_lro_patterns_that_succeed(self):
        for pattern in ("ao+location", "ao-running", "ao-lowercase", "ao-500x3", "ao-429", "relative-urls",
                        "location-only", "ao-resource-location"):
            res = self.run_pattern(pattern)
            self.assertEqual(res.properties.protection_state, "UnplannedFailoverCommitPendingStatesBegin", pattern)
        self.assertEqual(self.op_requests("/operationresults/"), [])          # AO + resourceLocation
        self.assertEqual(len([r for r in self.emu.requests(method="GET") if r["path"] == self.app["id"]]), 1)
        for pattern in ("location-empty-final", "location-chain"):
            self.assertIsNone(self.run_pattern(pattern), pattern)
        self.assertTrue(any(r["query"].get("hop") == "2" for r in self.op_requests("/operationresults/")))
        self.assertIsNone(self.run_pattern("no-headers"))
        self.assertEqual(self.op_requests("replicationOperationStatus") + self.op_requests("/operationresults/"), [])

    def test_lro_patterns_that_fail(self):
        for pattern, exc in (("ao-500x4", HttpResponseError), ("ao-404", HttpResponseError),
                             ("ao-failed", HttpResponseError), ("ao-canceled", HttpResponseError),
                             ("ao-empty-body", Exception), ("ao-no-status", Exception),
                             ("ao-unreachable", ServiceRequestError), ("location-unreachable", ServiceRequestError),
                             ("location-bad-json", Exception), ("location-bad-json-2", Exception),
                             ("location-203", HttpResponseError),
                             ("201-ao-body", HttpResponseError), ("location-201", HttpResponseError)):
            with self.assertRaises(exc, msg=pattern):
                self.run_pattern(pattern)

    def test_lro_patterns_on_the_wire(self):
        def post(pattern):
            self.emu.reset()
            self.emu.fault(action="lro", pattern=pattern, match={"path": "unplannedFailover"})
            return self.arm("POST", self.app["id"] + "/unplannedFailover", FO)
        st, h, body = post("201-ao-body")
        self.assertEqual((st, body), (201, {"properties": {"provisioningState": "Succeeded"}}))
        self.assertNotIn("location", h)
        st, h, body = post("location-only")
        self.assertEqual(st, 202)
        self.assertNotIn("azure-asyncoperation", h)
        st, h, _ = post("retry-after-10")
        self.assertEqual(h["retry-after"], "10")
        self.assertEqual(self.arm("GET", urllib.parse.urlsplit(h["azure-asyncoperation"]).path)[1]["retry-after"], "10")
        st, h, _ = post("retry-after-httpdate")
        self.assertTrue(h["retry-after"].endswith("GMT"))
        st, h, _ = post("relative-urls")
        self.assertTrue(h["location"].startswith("/Subscriptions/"))
        st, h, _ = post("location-chain")
        self.assertEqual(h["retry-after"], "60")
        st2, h2, _ = self.arm("GET", urllib.parse.urlsplit(h["location"]).path)
        self.assertEqual((st2, h2["retry-after"]), (202, "10"))
        self.assertIn("hop=2", h2["location"])
        st, h, _ = post("location-201")
        self.assertEqual(st, 201)
        loc = urllib.parse.urlsplit(h["location"])
        self.assertEqual(self.arm("GET", loc.path, headers={"x-ms-client-request-id": "other"})[0], 400)
        self.emu.reset()
        self.emu.fault(action="lro", pattern="location-201", match={"path": "unplannedFailover"})
        st, h, _ = self.arm("POST", self.app["id"] + "/unplannedFailover", FO, headers={"x-ms-client-request-id": "same-1"})
        self.assertIn(self.arm("GET", urllib.parse.urlsplit(h["location"]).path,
                               headers={"x-ms-client-request-id": "same-1"})[0], (200, 202))
        st, h, _ = post("no-headers")
        self.assertEqual(st, 202)
        self.assertFalse({"location", "azure-asyncoperation"} & set(h))
        self.assertIn("/replicationJobs/", h["x-ms-request-id"])
        patterns = self.emu.control("GET", "/lro-patterns")
        self.assertGreaterEqual(len(patterns), 25)


if __name__ == "__main__":
    unittest.main()
