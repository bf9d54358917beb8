"""ARM behaviour around ASR: headers, errors, paging, $filter, action answers and job documents,
recovery-point cadence and disk coverage, throttling buckets, latency."""
import re
import time
import unittest
import urllib.parse

from .harness import Emulator, new_id, parts

TIME7 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")
FO = {"properties": {"failoverDirection": "PrimaryToRecovery", "sourceSiteOperations": "NotRequired",
                     "providerSpecificDetails": {"instanceType": "A2A"}}}


class Arm(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator(scale=60)
        cls.tok = cls.emu.token()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def setUp(self):
        self.emu.reset()

    def arm(self, method, path, body=None, **kw):
        kw.setdefault("token", self.tok)
        return self.emu.arm(method, path, body, **kw)

    def items(self):
        st, _, doc = self.arm("GET", self.emu.vault_path + "/replicationProtectedItems")
        return {i["properties"]["friendlyName"]: i for i in doc["value"]}

    def test_read_headers(self):
        crid = new_id()
        corr = new_id()
        self.emu.control("POST", "/throttle", {"reads": [250, 0.001]})
        st, h, doc = self.arm("GET", self.emu.vault_path + "/replicationProtectedItems",
                              headers={"x-ms-client-request-id": crid, "x-ms-correlation-request-id": corr})
        self.assertEqual(st, 200)
        self.assertEqual(h["x-ms-client-request-id"], crid)
        self.assertEqual(h["x-ms-correlation-request-id"], corr)
        self.assertRegex(h["x-ms-request-id"], "^%s \\d+/\\d+/\\d{4} \\d+:\\d\\d:\\d\\d [AP]M$" % crid)
        self.assertRegex(h["x-ms-routing-request-id"], "^[A-Z0-9]+:\\d{8}T\\d{6}Z:" + corr)
        self.assertTrue(h["content-type"].startswith("application/json"))
        r1 = int(h["x-ms-ratelimit-remaining-subscription-reads"])
        _, h2, _ = self.arm("GET", self.emu.vault_path + "/replicationPolicies")
        self.assertEqual(int(h2["x-ms-ratelimit-remaining-subscription-reads"]), r1 - 1)
        self.assertIn("x-ms-ratelimit-remaining-subscription-global-reads", h2)
        self.assertIsNone(doc["nextLink"])
        self.emu.control("POST", "/throttle", {"scale": 1})

    def test_errors(self):
        st, _, doc = self.arm("GET", self.emu.vault_path + "/replicationProtectedItems", api_version=None)
        self.assertEqual((st, doc["error"]["code"]), (400, "MissingApiVersionParameter"))
        st, _, doc = self.arm("GET", self.emu.vault_path.replace("contoso-dr-vault", "nope"))
        self.assertEqual((st, doc["error"]["code"]), (404, "ResourceNotFound"))
        st, _, doc = self.arm("GET", "/subscriptions/%s/resourceGroups/x/providers/Microsoft.RecoveryServices/vaults/y" % new_id())
        self.assertEqual((st, doc["error"]["code"]), (404, "SubscriptionNotFound"))
        st, _, doc = self.arm("GET", self.emu.vault_path + "/replicationFabrics/nofabric")
        self.assertEqual(st, 400)   # ASR answers 400 for a missing parent
        app = self.items()["app-vm-01"]
        st, h, doc = self.arm("POST", app["id"] + "/failoverCommit", headers={"x-ms-client-request-id": "abc"})
        self.assertEqual((st, doc["error"]["code"]), (400, "BadRequest"))
        d = doc["error"]["details"][0]
        self.assertEqual(d["clientRequestId"], "abc")
        for k in ("code", "message", "possibleCauses", "recommendedAction", "activityId"):
            self.assertIn(k, d)
        st, _, doc = self.arm("POST", app["id"] + "/reProtect", {"properties": {}})
        self.assertEqual(st, 400)
        st, _, doc = self.arm("POST", app["id"] + "/failoverCancel")
        self.assertEqual(st, 400)

    def test_case_insensitive_paths(self):
        app = self.items()["app-vm-01"]
        st, _, doc = self.arm("GET", app["id"].upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"))
        self.assertEqual(st, 200)
        self.assertEqual(doc["name"], app["name"])

    def test_action_answer_job_and_operation_documents(self):
        app = self.items()["app-vm-01"]
        crid = new_id()
        st, h, body = self.arm("POST", app["id"] + "/unplannedFailover", FO, api_version="2024-10-01",
                               headers={"x-ms-client-request-id": crid})
        self.assertEqual(st, 202)
        self.assertIsNone(body)
        self.assertEqual(h["content-length"], "0")
        job = h["x-ms-request-id"].rsplit("/", 1)[1]
        self.assertTrue(h["x-ms-request-id"].startswith("/Subscriptions/"))
        self.assertIn("/replicationJobs/" + job, h["x-ms-request-id"])
        self.assertEqual(h["azure-asyncoperation"],
                         "%s/Subscriptions/%s/resourceGroups/contoso-dr/providers/Microsoft.RecoveryServices/vaults/contoso-dr-vault"
                         "/replicationOperationStatus/%s?api-version=2024-10-01" % (self.emu.ready["arm_endpoint"],
                                                                                   self.emu.ready["subscription_id"], job))
        self.assertEqual(h["location"], self.emu.ready["arm_endpoint"] + app["id"] + "/operationresults/%s?api-version=2024-10-01" % job)
        self.assertEqual(h["retry-after"], "1")
        # job while running
        st, _, jd = self.arm("GET", self.emu.vault_path + "/replicationJobs/" + job)
        p = jd["properties"]
        self.assertEqual(jd["id"], h["x-ms-request-id"])
        self.assertEqual(jd["type"], "Microsoft.RecoveryServices/vaults/replicationJobs")
        self.assertEqual(p["state"], "InProgress")
        self.assertNotIn("endTime", p)
        self.assertTrue(p["activityId"].startswith(crid + " ActivityId: "))
        self.assertRegex(p["startTime"], TIME7)
        self.assertEqual(p["targetObjectName"], "app-vm-01")
        self.assertEqual(p["targetInstanceType"], "ProtectionEntity")
        self.assertGreaterEqual(len(p["tasks"]), 3)
        self.assertEqual(p["customDetails"]["instanceType"], "FailoverJobDetails")
        item = self.arm("GET", app["id"])[2]["properties"]
        self.assertEqual(item["currentScenario"]["jobId"], jd["id"])
        self.assertEqual(item["allowedOperations"], [])
        # operation status and result while running
        st, _, ao = self.emu.arm("GET", urllib.parse.urlsplit(h["azure-asyncoperation"]).path, token=self.tok,
                                 api_version="2024-10-01")
        self.assertEqual(ao, {"error": None, "id": None, "name": job, "properties": None, "status": "InProgress",
                              "startTime": p["startTime"], "endTime": None, "percentComplete": None})
        loc_path = urllib.parse.urlsplit(h["location"]).path
        st, lh, _ = self.arm("GET", loc_path)
        self.assertEqual(st, 202)
        self.assertIn("location", lh)
        self.assertIn("retry-after", lh)
        self.emu.control("POST", "/clock", {"advance_seconds": 600})
        st, _, ao = self.arm("GET", urllib.parse.urlsplit(h["azure-asyncoperation"]).path)
        self.assertEqual(ao["status"], "Succeeded")
        self.assertRegex(ao["endTime"], TIME7)
        st, _, res = self.arm("GET", loc_path)
        self.assertEqual(st, 200)
        self.assertEqual(res["properties"]["protectionState"], "UnplannedFailoverCommitPendingStatesBegin")
        st, _, jd = self.arm("GET", self.emu.vault_path + "/replicationJobs/" + job)
        self.assertEqual(jd["properties"]["state"], "Succeeded")
        self.assertRegex(jd["properties"]["endTime"], r"Z$")
        self.assertTrue(all(t["state"] in ("Succeeded", "Other") for t in jd["properties"]["tasks"]))

    def test_paging_and_filters(self):
        self.emu.control("POST", "/config", {"page_size": 2})
        st, _, doc = self.arm("GET", self.emu.vault_path + "/replicationProtectedItems")
        self.assertEqual(len(doc["value"]), 2)
        nxt = urllib.parse.urlsplit(doc["nextLink"])
        self.assertIn("skipToken=", nxt.query)
        self.assertEqual(doc["nextLink"].split("/Subscriptions")[0].split("/subscriptions")[0], self.emu.ready["arm_endpoint"])
        st, _, doc2 = self.emu.arm("GET", nxt.path + "?" + nxt.query, token=self.tok, api_version=None)
        self.assertEqual(len(doc2["value"]), 1)
        self.assertIsNone(doc2["nextLink"])
        # the SDK follows nextLink itself
        self.assertEqual(len(list(self.emu.sdk().replication_protected_items.list())), 3)
        f = urllib.parse.quote("sourceFabricName eq 'asr-a2a-default-eastus'")
        self.emu.control("POST", "/config", {"page_size": 1000})
        self.assertEqual(len(self.arm("GET", self.emu.vault_path + "/replicationProtectedItems?$filter=" + f)[2]["value"]), 3)
        f = urllib.parse.quote("sourceFabricName eq 'asr-a2a-default-westus2'")
        self.assertEqual(self.arm("GET", self.emu.vault_path + "/replicationProtectedItems?$filter=" + f)[2]["value"], [])
        st, _, doc = self.arm("GET", self.emu.vault_path + "/replicationProtectedItems?$filter=" + urllib.parse.quote("x eq"))
        self.assertEqual(st, 400)

    def test_recovery_point_cadence_coverage_and_added_disk(self):
        db = self.items()["db-vm-01"]
        pts = self.arm("GET", db["id"] + "/recoveryPoints")[2]["value"]
        times = sorted((p["properties"]["recoveryPointTime"], p["properties"]["recoveryPointType"],
                        len(p["properties"]["providerSpecificDetails"]["disks"])) for p in pts)
        self.assertTrue(280 <= len(times) <= 290)
        from asremu.util import parse_time
        ts = [parse_time(t[0]) for t in times]
        self.assertLessEqual(ts[-1] - ts[0], 24 * 3600)
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        self.assertTrue(all(270 <= g <= 330 for g in gaps), gaps[:5])
        apps = [parse_time(t[0]) for t in times if t[1] == "ApplicationConsistent"]
        self.assertTrue(23 <= len(apps) <= 25)
        self.assertTrue(all(3500 <= b - a <= 3700 for a, b in zip(apps, apps[1:])))
        covered = [t[2] for t in times]
        self.assertEqual(covered[0], 1)
        self.assertEqual(covered[-1], 2)
        self.assertEqual(covered, sorted(covered))       # 1 of 2 until the data disk was added, then 2 of 2
        first_two = ts[covered.index(2)]
        now = self.emu.control("GET", "/clock")["now"]
        self.assertLess(abs((now - first_two) - 150 * 60), 600)   # the world says: added 150 minutes ago
        self.assertRegex(pts[0]["properties"]["recoveryPointTime"], TIME7)
        self.assertEqual(pts[0]["properties"]["providerSpecificDetails"]["recoveryPointSyncType"], "PerVmRecoveryPoint")
        # add a third disk: new points cover 3 disks, old ones keep their lists
        self.emu.control("POST", "/vms/db-vm-01/disks", {"name": "db-vm-01_DataDisk_1", "size_gb": 256})
        self.emu.control("POST", "/clock", {"advance_seconds": 900})
        pts2 = self.arm("GET", db["id"] + "/recoveryPoints")[2]["value"]
        newest = max(pts2, key=lambda p: p["properties"]["recoveryPointTime"])
        self.assertEqual(len(newest["properties"]["providerSpecificDetails"]["disks"]), 3)
        self.assertEqual(len(self.arm("GET", db["id"])[2]["properties"]["providerSpecificDetails"]["protectedManagedDisks"]), 3)
        st, _, one = self.arm("GET", db["id"] + "/recoveryPoints/" + newest["name"])
        self.assertEqual(one, newest)

    def test_item_document_shape(self):
        app = self.items()["app-vm-01"]
        p = app["properties"]
        self.assertTrue(app["id"].startswith("/Subscriptions/"))
        self.assertEqual(app["type"], "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems")
        self.assertEqual(p["currentScenario"]["scenarioName"], "None")
        self.assertTrue(p["currentScenario"]["jobId"].endswith("/replicationJobs/None"))
        self.assertEqual(p["primaryFabricProvider"], "AzureFabric")
        self.assertEqual(p["protectedItemType"], "")
        psd = p["providerSpecificDetails"]
        self.assertEqual(psd["instanceType"], "A2A")
        self.assertEqual(psd["fabricObjectId"], psd["fabricObjectId"].lower())
        d = psd["protectedManagedDisks"][0]
        self.assertEqual(d["diskId"], d["diskId"].lower())
        self.assertIsNone(d["recoveryTargetDiskId"])
        self.assertTrue(d["recoveryReplicaDiskId"].endswith("-ASRReplica"))
        self.assertIsInstance(psd["rpoInSeconds"], int)
        self.assertRegex(psd["lastRpoCalculatedTime"], TIME7)
        self.assertEqual(p["replicationHealth"], "Normal")
        self.emu.control("POST", "/items/app-vm-01", {"replicationHealth": "Critical", "rpoInSeconds": 4000})
        p = self.arm("GET", app["id"])[2]["properties"]
        self.assertEqual((p["replicationHealth"], p["providerSpecificDetails"]["rpoInSeconds"]), ("Critical", 4000))

    def test_throttling(self):
        self.emu.control("POST", "/throttle", {"reads": [3, 0.5], "writes": [1, 0.1]})
        seen = []
        for _ in range(3):
            st, h, _ = self.arm("GET", self.emu.vault_path + "/replicationPolicies")
            seen.append((st, h["x-ms-ratelimit-remaining-subscription-reads"]))
        self.assertEqual(seen, [(200, "2"), (200, "1"), (200, "0")])
        st, h, doc = self.arm("GET", self.emu.vault_path + "/replicationPolicies")
        self.assertEqual((st, doc["error"]["code"]), (429, "SubscriptionRequestsThrottled"))
        self.assertIn(h["retry-after"], ("1", "2"))   # (1 - tokens left) / 0.5 per second, rounded up
        # another principal has its own bucket; writes have theirs
        cert_tok = self.emu.sdk("pem")   # warm a certificate credential
        other = self.emu.credential("pem").get_token("https://management.azure.com/.default").token
        self.assertEqual(self.arm("GET", self.emu.vault_path + "/replicationPolicies", token=other)[0], 200)
        app = self.items  # noqa - reads are exhausted for self.tok, use the other principal
        st, h, _ = self.arm("POST", self.emu.vault_path + "/replicationJobs/%s/cancel" % new_id())
        self.assertEqual(h["x-ms-ratelimit-remaining-subscription-writes"], "0")
        time.sleep(2.1)
        self.assertEqual(self.arm("GET", self.emu.vault_path + "/replicationPolicies")[0], 200)
        self.emu.control("POST", "/throttle", {"scale": 1})

    def test_latency(self):
        self.emu.control("POST", "/config", {"latency_ms": 300})
        t = time.time()
        self.arm("GET", self.emu.vault_path + "/replicationPolicies")
        self.assertGreaterEqual(time.time() - t, 0.3)


if __name__ == "__main__":
    unittest.main()
