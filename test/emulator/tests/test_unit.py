"""Unit tests of the emulator's building blocks: state machine, job timelines and their faults,
recovery-point schedule and retention, token buckets, $filter parsing, time formatting."""
import json
import os
import unittest

from asremu import filters, jobs, recovery_points, statemachine, throttle, util
from asremu.clock import Clock
from asremu.engine import ArmError, Engine
from asremu.faults import FaultError, Faults
from asremu.world import World

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeVault:
    def job_id(self, name):
        return "/Subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v/replicationJobs/" + name


def make_job(scenario="CommitFailover", start=1000.0, crid="crid-1"):
    return jobs.Job(FakeVault(), "job-1", scenario, "Commit", start, crid, "vm1", "guid-1")


class StateMachineTests(unittest.TestCase):
    def test_allowed_operations_per_state(self):
        self.assertEqual(statemachine.allowed_operations("Protected", "None", False),
                         ["UnplannedFailover", "DisableProtection", "TestFailover"])
        self.assertEqual(statemachine.allowed_operations("UnplannedFailoverCommitPendingStatesBegin", "None", False),
                         ["CompleteMigration", "Commit", "DisableProtection", "ChangePit"])
        self.assertEqual(statemachine.allowed_operations("UnplannedFailoverCommitted", "None", False),
                         ["CompleteMigration", "DisableProtection", "SwitchProtection"])
        self.assertEqual(statemachine.allowed_operations("InitialReplicationInProgress", "None", False), ["DisableProtection"])
        self.assertEqual(statemachine.allowed_operations("Protected", "WaitingForCompletion", False), ["TestFailoverCleanup"])
        self.assertEqual(statemachine.allowed_operations("Protected", "None", True), [])

    def test_descriptions_and_location(self):
        self.assertEqual(statemachine.describe("UnplannedFailoverCommitted")[:2], ("Failover committed", "Recovery"))
        self.assertEqual(statemachine.describe("Protected")[:2], ("Protected", "Primary"))

    def test_a2a_never_allows_cancel_failover_or_reprotect(self):
        for st in statemachine.STATES:
            ops = statemachine.allowed_operations(st, "None", False)
            self.assertNotIn("CancelFailover", ops)
            self.assertNotIn("ReverseReplicate", ops)
            self.assertNotIn("PlannedFailover", ops)

    def test_transitions(self):
        self.assertEqual(statemachine.after("UnplannedFailover", "Protected"), "UnplannedFailoverCommitPendingStatesBegin")
        self.assertEqual(statemachine.after("CommitFailover", "UnplannedFailoverCommitPendingStatesBegin"), "UnplannedFailoverCommitted")
        self.assertEqual(statemachine.after("ApplyRecoveryPoint", "X"), "X")


class EngineStateMachineTests(unittest.TestCase):
    """The engine drives one item through section 9 with a manually advanced clock."""

    def setUp(self):
        import tempfile
        self.tmp = tempfile.mkdtemp()
        w = json.load(open(os.path.join(HERE, "worlds", "default.json")))
        for sp in w["service_principals"]:
            sp.pop("certificate", None)
        path = os.path.join(self.tmp, "w.json")
        json.dump(w, open(path, "w"))
        self.clock = Clock(0.000001)   # effectively frozen; we advance by hand
        self.engine = Engine(World(path, self.tmp), self.clock, Faults(), {"durations": {}, "ir_seconds": 600,
                                                                           "ir_pending_seconds": 60, "cancel_seconds": 10})
        self.vault = list(self.engine.vaults.values())[0]
        self.item = [i for i in self.vault.items if i.vm.name == "app-vm-01"][0]

    def run_job(self, op, seconds=3600):
        self.clock.advance(seconds)
        self.engine.tick()
        self.assertEqual(op.job.state, "Succeeded")

    def test_not_allowed_is_asr_400(self):
        with self.assertRaises(ArmError) as ctx:
            self.engine.item_action(self.vault, self.item, "failovercommit", {}, "c", "2022-10-01")
        e = ctx.exception
        self.assertEqual((e.status, e.code), (400, "BadRequest"))
        body = e.body("c")
        self.assertEqual(body["error"]["details"][0]["clientRequestId"], "c")
        for k in ("code", "message", "possibleCauses", "recommendedAction", "activityId"):
            self.assertIn(k, body["error"]["details"][0])

    def test_job_running_conflict_and_empty_allowed_ops(self):
        body = {"properties": {"failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": {"instanceType": "A2A"}}}
        op = self.engine.item_action(self.vault, self.item, "unplannedfailover", body, "c", "v")
        self.assertEqual(self.item.doc(self.clock.now())["properties"]["allowedOperations"], [])
        self.assertEqual(self.item.doc(self.clock.now())["properties"]["currentScenario"]["scenarioName"], "UnplannedFailover")
        with self.assertRaises(ArmError) as ctx:
            self.engine.item_action(self.vault, self.item, "unplannedfailover", body, "c", "v")
        self.assertEqual(ctx.exception.status, 409)
        self.run_job(op)
        d = self.item.doc(self.clock.now())["properties"]
        self.assertEqual(d["currentScenario"]["scenarioName"], "None")
        self.assertEqual(d["currentScenario"]["startTime"], "1753-01-01T01:01:01Z")
        self.assertEqual((d["protectionState"], d["activeLocation"]), ("UnplannedFailoverCommitPendingStatesBegin", "Recovery"))

    def test_full_section9_walk(self):
        e, v, it = self.engine, self.vault, self.item
        fo = {"properties": {"failoverDirection": "primarytorecovery", "providerSpecificDetails": {"instanceType": "A2A"}}}
        rpo_before = it.doc(self.clock.now())["properties"]["providerSpecificDetails"]["rpoInSeconds"]
        self.run_job(e.item_action(v, it, "unplannedfailover", fo, "c", "v"))
        self.assertTrue(it.rps)
        self.run_job(e.item_action(v, it, "failovercommit", {}, "c", "v"))
        self.assertEqual(it.rps, [])
        d = it.doc(self.clock.now())["properties"]
        self.assertEqual(d["protectionState"], "UnplannedFailoverCommitted")
        self.assertEqual(d["providerSpecificDetails"]["rpoInSeconds"], rpo_before)   # frozen
        disks = [{"diskId": x, "primaryStagingAzureStorageAccountId": "sa", "recoveryResourceGroupId": "/subscriptions/s/resourceGroups/contoso-app"}
                 for x in it.target_disk_ids()]
        sw = {"properties": {"replicationProtectedItemName": it.name, "providerSpecificDetails": {
            "instanceType": "A2A", "recoveryContainerId": it.primary().container_id(), "vmManagedDisks": disks}}}
        region_a = it.primary()
        op = e.switch_protection(v, region_a, sw, "c", "v")
        self.assertTrue(op.job.custom["newReplicationProtectedItemId"].startswith("/subscriptions/"))
        self.run_job(op, 600)
        self.assertEqual(it.state, "InitialReplicationInProgress")
        self.assertIsNot(it.primary(), region_a)
        self.assertIsNone(it.doc(self.clock.now())["properties"]["providerSpecificDetails"]["rpoInSeconds"])
        self.clock.advance(560)      # job took 539 s; IR 600 s, then 60 s pending
        e.tick()
        self.assertEqual(it.state, "InitialReplicationRecoveryCompletionPending")
        self.clock.advance(60)
        e.tick()
        self.assertEqual(it.state, "Protected")
        self.assertEqual(len(it.rps), 1)
        self.clock.advance(3600)
        e.tick()
        self.assertGreaterEqual(len(it.rps), 12)

    def test_switch_protection_validates_disks(self):
        e, v, it = self.engine, self.vault, self.item
        fo = {"properties": {"failoverDirection": "PrimaryToRecovery"}}
        self.run_job(e.item_action(v, it, "unplannedfailover", fo, "c", "v"))
        self.run_job(e.item_action(v, it, "failovercommit", None, "c", "v"))
        sw = {"properties": {"replicationProtectedItemName": it.name, "providerSpecificDetails": {"instanceType": "A2A"}}}
        with self.assertRaises(ArmError) as ctx:
            e.switch_protection(v, it.primary(), sw, "c", "v")
        self.assertEqual(ctx.exception.detail_code, "VMDisksMissing")
        sw["properties"]["providerSpecificDetails"]["vmManagedDisks"] = [
            {"diskId": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/disks/other",
             "primaryStagingAzureStorageAccountId": "sa", "recoveryResourceGroupId": "rg"}]
        with self.assertRaises(ArmError):
            e.switch_protection(v, it.primary(), sw, "c", "v")
        with self.assertRaises(ArmError) as ctx:   # wrong container: the item is not there
            e.switch_protection(v, it.recovery(), sw, "c", "v")
        self.assertEqual(ctx.exception.status, 404)

    def test_failover_to_unknown_point_and_wrong_direction(self):
        e, v, it = self.engine, self.vault, self.item
        bad = {"properties": {"failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": {
            "instanceType": "A2A", "recoveryPointId": it.arm_id() + "/recoveryPoints/00000000-0000-0000-0000-000000000000"}}}
        with self.assertRaises(ArmError) as ctx:
            e.item_action(v, it, "unplannedfailover", bad, "c", "v")
        self.assertEqual(ctx.exception.detail_code, "RecoveryPointNotFound")
        with self.assertRaises(ArmError):
            e.item_action(v, it, "unplannedfailover", {"properties": {"failoverDirection": "RecoveryToPrimary"}}, "c", "v")
        with self.assertRaises(ArmError):
            e.item_action(v, it, "unplannedfailover", {"properties": {"providerSpecificDetails": {"instanceType": "HyperVReplicaAzure"}}}, "c", "v")
        with self.assertRaises(ArmError):
            e.item_action(v, it, "unplannedfailover", {}, "c", "v")

    def test_failover_to_chosen_point_and_apply(self):
        e, v, it = self.engine, self.vault, self.item
        p1, p2 = it.rps[10], it.rps[20]
        fo = {"properties": {"failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": {
            "instanceType": "A2A", "recoveryPointId": it.arm_id() + "/recoveryPoints/" + p1.name}}}
        self.run_job(e.item_action(v, it, "unplannedfailover", fo, "c", "v"))
        self.assertTrue(it.failover_rp_id.endswith(p1.name))
        self.assertIn(it.primary().container_guid, it.failover_rp_id)   # the real service's GUID-container form
        ap = {"properties": {"recoveryPointId": it.arm_id() + "/recoveryPoints/" + p2.name,
                             "providerSpecificDetails": {"instanceType": "A2A"}}}
        self.run_job(e.item_action(v, it, "applyrecoverypoint", ap, "c", "v"))
        self.assertTrue(it.failover_rp_id.endswith(p2.name))

    def test_disable_protection_removes_item(self):
        op = self.engine.item_action(self.vault, self.item, "remove", {"properties": {"disableProtectionReason": "NotSpecified"}}, "c", "v")
        self.run_job(op)
        self.assertNotIn(self.item, self.vault.items)


class JobTimelineTests(unittest.TestCase):
    def test_tasks_run_in_sequence_and_job_doc_shape(self):
        j = make_job()
        j.advance(1001)
        d = j.doc()["properties"]
        self.assertEqual(d["state"], "InProgress")
        self.assertNotIn("endTime", d)
        self.assertEqual(d["allowedActions"], ["Cancel"])
        self.assertEqual([t["state"] for t in d["tasks"]], ["InProgress", "NotStarted"])
        self.assertEqual(d["tasks"][1]["startTime"], "0001-01-01T00:00:00")
        self.assertTrue(d["activityId"].startswith("crid-1 ActivityId: "))
        j.advance(1004)
        self.assertEqual([t.state for t in j.tasks], ["Succeeded", "InProgress"])
        self.assertEqual(j.percent(), 50)
        j.advance(1010)
        d = j.doc()["properties"]
        self.assertEqual((d["state"], d["stateDescription"]), ("Succeeded", "Completed"))
        self.assertEqual(d["endTime"], util.fmt_time(1008, 0))
        self.assertEqual(j.operation_status()["status"], "Succeeded")

    def test_fail_fault(self):
        j = make_job()
        j.apply_fault({"action": "job_fail", "task": "CommitFailoverTask", "code": "150261", "message": "boom"})
        j.advance(2000)
        self.assertEqual(j.state, "Failed")
        self.assertEqual(j.allowed_actions(), ["Restart"])
        e = j.errors[0]
        self.assertEqual((e["serviceErrorDetails"]["code"], e["serviceErrorDetails"]["message"], e["taskId"], e["errorLevel"]),
                         ("150261", "boom", "CommitFailoverTask", "Error"))
        st = j.operation_status()
        self.assertEqual((st["status"], st["error"]["code"]), ("Failed", "150261"))
        self.assertTrue(j.restart(2000))
        j.advance(2100)
        self.assertEqual(j.state, "Succeeded")

    def test_stuck_and_cancel(self):
        j = make_job()
        j.apply_fault({"action": "job_stuck", "task": 0})
        j.advance(10 ** 9)
        self.assertEqual(j.state, "InProgress")
        self.assertTrue(j.cancel(5000, 10))
        self.assertEqual(j.doc()["properties"]["state"], "Cancelling")
        self.assertEqual(j.operation_status()["status"], "InProgress")
        j.advance(5011)
        self.assertEqual(j.state, "Cancelled")
        self.assertEqual(j.operation_status()["status"], "Canceled")   # ARM spelling on the status URL
        self.assertFalse(j.cancel(6000, 10))

    def test_suspend_and_resume(self):
        j = make_job("TestFailover")
        j.apply_fault({"action": "job_suspend", "task": "StartTestVmTask"})
        j.advance(10 ** 6)
        self.assertEqual(j.state, "Suspended")
        self.assertEqual(j.desc, "WaitingForStopTestFailover")
        self.assertEqual(j.allowed_actions(), ["Cancel", "Resume"])
        self.assertTrue(j.resume(10 ** 6))
        j.advance(10 ** 6 + 100)
        self.assertEqual(j.state, "Succeeded")

    def test_skipped_tasks_are_other(self):
        j = jobs.Job(FakeVault(), "j", "UnplannedFailover", "Failover", 0, None, "vm", "g", skip=("ShutdownPrimaryVmTask",))
        j.advance(10 ** 6)
        t = [x for x in j.tasks if x.task_id == "ShutdownPrimaryVmTask"][0]
        self.assertEqual((t.state, t.desc), ("Other", "Skipped"))


class RecoveryPointTests(unittest.TestCase):
    def test_schedule_crash_every_5_minutes_app_hourly(self):
        slots = recovery_points.schedule(0, 7230, 300, 3600, "seed")
        self.assertEqual(len(slots), 24)
        apps = [t for t, k in slots if k == "ApplicationConsistent"]
        self.assertEqual(len(apps), 2)
        gaps = [b[0] - a[0] for a, b in zip(slots, slots[1:])]
        self.assertTrue(all(280 < g < 320 for g in gaps))

    def test_retention_and_disk_coverage(self):
        class It:
            name, direction = "n", "AB"
            policy = {"crash_consistent_frequency_minutes": 5, "app_consistent_frequency_minutes": 60,
                      "recovery_point_history_minutes": 60}
            rps, rp_cursor = [], 0.0

            def replicating(self):
                return True

            def disk_ids_at(self, t):
                return ["os"] + (["data"] if t >= 1800 else [])
        it = It()
        recovery_points.catch_up(it, 3630)
        self.assertEqual(len(it.rps), 12)
        self.assertEqual(it.rps[0].disks, ["os"])
        self.assertEqual(it.rps[-1].disks, ["os", "data"])
        recovery_points.catch_up(it, 7230)
        self.assertTrue(all(p.time >= 3630 for p in it.rps))
        self.assertLessEqual(len(it.rps), 12)


class ThrottleTests(unittest.TestCase):
    def test_bucket_defaults_and_refill(self):
        now = [0.0]
        t = throttle.Throttle(clock=lambda: now[0])
        for i in range(250):
            ok, kind, rem, grem, _ = t.take("sub", "p1", "GET")
            self.assertTrue(ok)
        self.assertEqual((kind, rem), ("reads", 0))
        ok, kind, rem, grem, retry = t.take("sub", "p1", "GET")
        self.assertFalse(ok)
        self.assertEqual(retry, 1)
        self.assertTrue(t.take("sub", "p2", "GET")[0])        # per principal
        self.assertTrue(t.take("sub", "p1", "POST")[0])       # writes are separate
        now[0] = 1.0
        self.assertEqual(t.take("sub", "p1", "GET")[2], 24)   # refilled 25/s
        ok, kind, rem, _, _ = t.take("sub", "p1", "DELETE")
        self.assertEqual((kind, rem), ("deletes", 199))

    def test_writes_default_and_scaling(self):
        now = [0.0]
        t = throttle.Throttle({"writes": [2, 0.5]}, clock=lambda: now[0])
        self.assertEqual(t.take("s", "p", "POST")[2], 1)
        self.assertEqual(t.take("s", "p", "POST")[2], 0)
        ok, _, _, _, retry = t.take("s", "p", "POST")
        self.assertFalse(ok)
        self.assertEqual(retry, 2)
        t.configure(enabled=False)
        self.assertTrue(t.take("s", "p", "POST")[0])

    def test_global_bucket_header_value(self):
        t = throttle.Throttle(clock=lambda: 0.0)
        ok, kind, rem, grem, _ = t.take("s", "p", "GET")
        self.assertEqual((rem, grem), (249, 3749))


class FilterTests(unittest.TestCase):
    def test_powershell_style(self):
        recs = [{"s": "InProgress", "t": 5}, {"s": "Failed", "t": 10}, {"s": "Succeeded", "t": 20}]

        def term(r, f, op, v):
            if f.lower() == "jobstatus":
                return filters.compare(r["s"].lower(), op, v.lower())
            if f.lower() == "starttime":
                return r["t"] >= int(v)
            return None
        pred = filters.compile_filter("( JobStatus eq 'InProgress' or JobStatus eq 'Failed' ) and StartTime eq '6'", term)
        self.assertEqual([r["s"] for r in recs if pred(r)], ["Failed"])
        pred = filters.compile_filter("Unknown eq 'x'", term)
        self.assertEqual(len([r for r in recs if pred(r)]), 3)
        with self.assertRaises(filters.FilterError):
            filters.compile_filter("JobStatus eq", term)
        pred = filters.compile_filter("jobstatus eq 'it''s'", term)
        self.assertFalse(pred(recs[0]))


class UtilAndFaultTests(unittest.TestCase):
    def test_time_format(self):
        self.assertEqual(util.fmt_time(1744188560.5), "2025-04-09T08:49:20.5000000Z")
        self.assertEqual(util.fmt_time(1744188560, 0), "2025-04-09T08:49:20Z")
        self.assertAlmostEqual(util.parse_time("2025-04-09T08:49:20.8930892Z"), 1744188560.8930892, places=5)
        self.assertEqual(util.ps_request_id_time(1744188541), "4/9/2025 8:49:01 AM")

    def test_fault_rule_counting(self):
        f = Faults()
        f.add({"action": "status", "status": 500, "match": {"path": "replicationJobs"}, "count": 2, "skip": 1})
        hits = [bool(f.match_http("arm", "GET", "/x/replicationJobs", "", None)) for _ in range(5)]
        self.assertEqual(hits, [False, True, True, False, False])
        self.assertEqual(f.list(), [])
        with self.assertRaises(FaultError):
            f.add({"action": "explode"})
        with self.assertRaises(FaultError):
            f.add({"action": "lro", "pattern": "nope"})
        f.add({"action": "job_fail", "match": {"scenario": "CommitFailover", "item": "db-vm-01"}})
        self.assertEqual(f.match_job("CommitFailover", "app-vm-01"), [])
        self.assertEqual(len(f.match_job("commitfailover", "DB-VM-01")), 1)
        self.assertEqual(f.match_job("CommitFailover", "db-vm-01"), [])


if __name__ == "__main__":
    unittest.main()
