"""Fidelity: Microsoft's own SDK (Debian python3-azure), unpatched and verifying TLS against the
emulator's CA, runs the whole A2A disaster-recovery cycle through its own LRO pollers."""
import time
import unittest

from azure.core.exceptions import HttpResponseError
from azure.mgmt.recoveryservicessiterecovery import models as M

from .harness import Emulator, parts


def failover_input(rp_id=None, shutdown=False):
    return M.UnplannedFailoverInput(properties=M.UnplannedFailoverInputProperties(
        failover_direction="PrimaryToRecovery", source_site_operations="Required" if shutdown else "NotRequired",
        provider_specific_details=M.A2AUnplannedFailoverInput(recovery_point_id=rp_id)))


class SdkCycle(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator(scale=3000)
        cls.c = cls.emu.sdk("secret")

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def setUp(self):
        self.emu.reset()

    # ------------------------------------------------------------------ helpers
    def item(self, name):
        for it in self.c.replication_protected_items.list():
            if it.properties.friendly_name == name:
                return it
        self.fail("item %s not listed" % name)

    def get(self, it):
        return self.c.replication_protected_items.get(*parts(it.id))

    def points(self, it):
        return list(self.c.recovery_points.list_by_replication_protected_items(*parts(it.id)))

    def wait_state(self, fabric, container, name, state, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            it = self.c.replication_protected_items.get(fabric, container, name)
            if it.properties.protection_state == state:
                return it
            time.sleep(0.1)
        self.fail("item never reached %s (last %s)" % (state, it.properties.protection_state))

    def reverse_mapping(self, it):
        """The container mapping from the item's recovery container back to its primary one."""
        p = it.properties
        rec = p.recovery_container_id.split("/")
        prim_container = parts(it.id)[1]
        for m in self.c.replication_protection_container_mappings.list_by_replication_protection_containers(rec[-3], rec[-1]):
            if m.properties.target_protection_container_id.lower().endswith("/" + prim_container.lower()):
                return m
        self.fail("no reverse mapping")

    def switch_input(self, it):
        p = it.properties
        psd = p.provider_specific_details
        m = self.reverse_mapping(it)
        prim_container_id = m.properties.target_protection_container_id
        orig_rg = "/".join(psd.fabric_object_id.split("/")[:5])
        disks = [M.A2AVmManagedDiskInputDetails(
            disk_id=d.recovery_target_disk_id,
            primary_staging_azure_storage_account_id="/subscriptions/%s/resourceGroups/contoso-dr/providers/"
                                                     "Microsoft.Storage/storageAccounts/cache%s" % (
                                                         self.emu.ready["subscription_id"], psd.recovery_fabric_location),
            recovery_resource_group_id=orig_rg,
            recovery_replica_disk_account_type=d.recovery_replica_disk_account_type,
            recovery_target_disk_account_type=d.recovery_target_disk_account_type) for d in psd.protected_managed_disks]
        return M.SwitchProtectionInput(properties=M.SwitchProtectionInputProperties(
            replication_protected_item_name=it.name,
            provider_specific_details=M.A2ASwitchProtectionInput(
                recovery_container_id=prim_container_id, policy_id=m.properties.policy_id,
                recovery_resource_group_id=orig_rg, vm_managed_disks=disks)))

    def jobs_since(self, t_iso, scenario=None):
        jobs = list(self.c.replication_jobs.list(filter="StartTime eq '%s'" % t_iso))
        return [j for j in jobs if scenario is None or j.properties.scenario_name == scenario]

    def now_iso(self):
        return self.emu.control("GET", "/clock")["time"]

    # ------------------------------------------------------------------ the cycle
    def test_list_items_and_points(self):
        items = list(self.c.replication_protected_items.list())
        self.assertEqual(sorted(i.properties.friendly_name for i in items), ["app-vm-01", "db-vm-01", "web-vm-01"])
        for i in items:
            self.assertEqual(len(i.name), 43)
            self.assertTrue(i.id.startswith("/Subscriptions/"))
            self.assertEqual(i.properties.protection_state, "Protected")
            self.assertEqual(i.properties.active_location, "Primary")
            self.assertEqual(i.properties.allowed_operations, ["UnplannedFailover", "DisableProtection", "TestFailover"])
            self.assertEqual(i.properties.current_scenario.scenario_name, "None")
            self.assertIsInstance(i.properties.provider_specific_details, M.A2AReplicationDetails)
        db = self.item("db-vm-01")
        self.assertEqual(len(db.properties.provider_specific_details.protected_managed_disks), 2)
        pts = sorted(self.points(db), key=lambda p: p.properties.recovery_point_time)
        self.assertGreater(len(pts), 250)   # 24 h of 5-minute points
        self.assertEqual(len(pts[0].properties.provider_specific_details.disks), 1)
        self.assertEqual(len(pts[-1].properties.provider_specific_details.disks), 2)
        kinds = {p.properties.recovery_point_type for p in pts}
        self.assertEqual(kinds, {"CrashConsistent", "ApplicationConsistent"})
        one = self.c.recovery_points.get(*parts(db.id), pts[5].name)
        self.assertEqual(one.id, pts[5].id)
        # container-level list and fabrics / containers / policies
        f, cont, _ = parts(db.id)
        self.assertEqual(len(list(self.c.replication_protected_items.list_by_replication_protection_containers(f, cont))), 3)
        self.assertEqual(len(list(self.c.replication_fabrics.list())), 2)
        self.assertEqual([x.name for x in self.c.replication_protection_containers.list_by_replication_fabrics(f)], [cont])
        self.assertEqual(len(list(self.c.replication_policies.list())), 1)
        self.assertEqual(len(list(self.c.replication_protection_container_mappings.list())), 2)

    def test_certificate_credentials_list_items(self):
        for kind in ("pem", "pfx"):
            c = self.emu.sdk(kind)
            self.assertEqual(len(list(c.replication_protected_items.list())), 3, kind)
        reqs = self.emu.requests(listener="login", method="POST")
        self.assertTrue(any(r["body"].get("client_assertion") == "***" for r in reqs))

    def test_failover_commit_reprotect_failback_cycle(self):
        c = self.c
        t0 = self.now_iso()
        # 1. unplanned failover of app-vm-01 to the latest point
        app = self.item("app-vm-01")
        res = c.replication_protected_items.begin_unplanned_failover(*parts(app.id), failover_input()).result()
        self.assertEqual(res.properties.protection_state, "UnplannedFailoverCommitPendingStatesBegin")
        self.assertEqual(res.properties.active_location, "Recovery")
        self.assertIn("ChangePit", res.properties.allowed_operations)
        self.assertIsNotNone(res.properties.failover_recovery_point_id)
        newest = max(self.points(app), key=lambda p: p.properties.recovery_point_time)
        self.assertTrue(res.properties.failover_recovery_point_id.endswith(newest.name))

        # 2. db-vm-01: failover to a chosen (old, 1-of-2-disk) point, then apply another one
        db = self.item("db-vm-01")
        pts = sorted(self.points(db), key=lambda p: p.properties.recovery_point_time)
        chosen, other = pts[3], pts[-2]
        res = c.replication_protected_items.begin_unplanned_failover(*parts(db.id), failover_input(chosen.id)).result()
        self.assertTrue(res.properties.failover_recovery_point_id.endswith("/" + chosen.name))
        res = c.replication_protected_items.begin_apply_recovery_point(*parts(db.id), M.ApplyRecoveryPointInput(
            properties=M.ApplyRecoveryPointInputProperties(recovery_point_id=other.id,
                                                           provider_specific_details=M.A2AApplyRecoveryPointInput()))).result()
        self.assertTrue(res.properties.failover_recovery_point_id.endswith("/" + other.name))
        self.assertEqual(res.properties.protection_state, "UnplannedFailoverCommitPendingStatesBegin")

        # 3. commit deletes every recovery point
        res = c.replication_protected_items.begin_failover_commit(*parts(db.id)).result()
        self.assertEqual(res.properties.protection_state, "UnplannedFailoverCommitted")
        self.assertEqual(res.properties.allowed_operations, ["CompleteMigration", "DisableProtection", "SwitchProtection"])
        self.assertEqual(self.points(db), [])

        # 4. switch protection (A2A reprotect) on the container that holds the item
        db = self.get(db)
        fa, ca, name = parts(db.id)
        t_sw = self.now_iso()
        cont = c.replication_protection_containers.begin_switch_protection(fa, ca, self.switch_input(db)).result()
        self.assertEqual(cont.name, ca)
        job = self.jobs_since(t_sw, "SwitchReplicationGroupProtection")[0]
        self.assertEqual(job.properties.state, "Succeeded")
        self.assertEqual(job.properties.friendly_name, "Reprotect")
        new_id = job.properties.custom_details.new_replication_protected_item_id
        self.assertTrue(new_id.startswith("/subscriptions/"))
        fb, cb, nb = parts(new_id)
        self.assertEqual((fb, cb, nb), ("asr-a2a-default-westus2", "asr-a2a-default-westus2-container", name))
        rev = c.replication_protected_items.get(fb, cb, nb)
        self.assertTrue(rev.properties.protection_state.startswith("InitialReplication"))
        self.assertEqual(rev.properties.allowed_operations, ["DisableProtection"])
        with self.assertRaises(HttpResponseError):
            c.replication_protected_items.get(fa, ca, name)      # the old path is gone
        rev = self.wait_state(fb, cb, nb, "Protected")
        self.assertEqual(rev.properties.active_location, "Primary")
        self.assertEqual(rev.properties.provider_specific_details.primary_fabric_location, "westus2")
        self.assertEqual(rev.properties.provider_specific_details.initial_primary_fabric_location, "eastus")
        self.assertIsNotNone(rev.properties.provider_specific_details.rpo_in_seconds)

        # 5. failback = unplanned failover (PrimaryToRecovery) of the reprotected item, then commit
        res = c.replication_protected_items.begin_unplanned_failover(fb, cb, nb, failover_input(shutdown=True)).result()
        self.assertEqual(res.properties.protection_state, "UnplannedFailoverCommitPendingStatesBegin")
        self.assertEqual(res.properties.provider_specific_details.recovery_fabric_location, "eastus")
        res = c.replication_protected_items.begin_failover_commit(fb, cb, nb).result()
        self.assertEqual(res.properties.protection_state, "UnplannedFailoverCommitted")

        # 6. switch protection back: the item returns to East US and replicates to West US 2 again
        back = c.replication_protected_items.get(fb, cb, nb)
        # the VM now runs in East US on its original disks
        self.assertEqual(sorted(d.recovery_target_disk_id.lower() for d in back.properties.provider_specific_details.protected_managed_disks),
                         sorted(d.disk_id.lower() for d in db.properties.provider_specific_details.protected_managed_disks))
        c.replication_protection_containers.begin_switch_protection(fb, cb, self.switch_input(back)).result()
        home = self.wait_state(fa, ca, name, "Protected")
        self.assertEqual(home.properties.active_location, "Primary")
        self.assertEqual(home.properties.provider_specific_details.primary_fabric_location, "eastus")
        self.assertEqual(home.properties.allowed_operations, ["UnplannedFailover", "DisableProtection", "TestFailover"])
        self.assertTrue(self.points(home))

        # the request log: exactly one POST per action, and no token sent anywhere but the ARM host
        posts = [r for r in self.emu.requests(listener="arm", method="POST") if r["path"].endswith("/unplannedFailover")]
        self.assertEqual(len(posts), 3)
        arm_host = self.emu.ready["arm_endpoint"].split("//")[1]
        for r in self.emu.requests(listener="arm"):
            self.assertEqual(r["host"], arm_host)
        jobs = self.jobs_since(t0)
        self.assertTrue(all(j.properties.state == "Succeeded" for j in jobs), [(j.properties.scenario_name, j.properties.state) for j in jobs])

    def test_test_failover_and_cleanup(self):
        c = self.c
        web = self.item("web-vm-01")
        self.assertEqual(web.properties.failover_health, "Warning")   # 161011: no test failover yet
        net = "/subscriptions/%s/resourceGroups/contoso-web-asr/providers/Microsoft.Network/virtualNetworks/dr-test-vnet" % \
            self.emu.ready["subscription_id"]
        res = c.replication_protected_items.begin_test_failover(*parts(web.id), M.TestFailoverInput(
            properties=M.TestFailoverInputProperties(failover_direction="PrimaryToRecovery", network_type="VmNetworkAsInput",
                                                     network_id=net, provider_specific_details=M.A2ATestFailoverInput()))).result()
        self.assertEqual(res.properties.protection_state, "Protected")
        self.assertEqual(res.properties.test_failover_state, "WaitingForCompletion")
        self.assertEqual(res.properties.allowed_operations, ["TestFailoverCleanup"])
        with self.assertRaises(HttpResponseError) as ctx:     # not allowed now: ASR's 400
            c.replication_protected_items.begin_unplanned_failover(*parts(web.id), failover_input()).result()
        self.assertEqual(ctx.exception.status_code, 400)
        res = c.replication_protected_items.begin_test_failover_cleanup(*parts(web.id), M.TestFailoverCleanupInput(
            properties=M.TestFailoverCleanupInputProperties(comments="drill ok"))).result()
        self.assertEqual(res.properties.test_failover_state, "None")
        self.assertEqual(res.properties.allowed_operations, ["UnplannedFailover", "DisableProtection", "TestFailover"])
        self.assertEqual(res.properties.failover_health, "Normal")
        self.assertIsNotNone(res.properties.last_successful_test_failover_time)

    def test_jobs_get_list_cancel_restart_resume(self):
        c = self.c
        app = self.item("app-vm-01")
        t0 = self.now_iso()
        # cancel: a failover job stuck InProgress
        self.emu.fault(action="job_stuck", match={"scenario": "UnplannedFailover"})
        poller = c.replication_protected_items.begin_unplanned_failover(*parts(app.id), failover_input())
        job = self.jobs_since(t0, "UnplannedFailover")[0]
        got = c.replication_jobs.get(job.name)
        self.assertEqual(got.properties.state, "InProgress")
        self.assertEqual(got.properties.allowed_actions, ["Cancel"])
        self.assertIsNone(got.properties.end_time)
        cancelled = c.replication_jobs.begin_cancel(job.name).result()
        self.assertEqual(cancelled.properties.state, "Cancelled")
        with self.assertRaises(HttpResponseError):
            poller.result()          # the failover's own poller sees Canceled
        self.assertEqual(self.get(app).properties.protection_state, "Protected")

        # restart: a test failover whose second task fails with ASR error details
        self.emu.fault(action="job_fail", match={"scenario": "TestFailover"}, task="CreateTestVmTask",
                       code="150175", message="The test virtual machine could not be created.")
        tfo = M.TestFailoverInput(properties=M.TestFailoverInputProperties(
            failover_direction="PrimaryToRecovery", network_type="NoNetworkAttachAsInput",
            provider_specific_details=M.A2ATestFailoverInput()))
        with self.assertRaises(HttpResponseError) as ctx:
            c.replication_protected_items.begin_test_failover(*parts(app.id), tfo).result()
        self.assertIn("150175", str(ctx.exception))
        failed = self.jobs_since(t0, "TestFailover")[0]
        self.assertEqual(failed.properties.state, "Failed")
        self.assertEqual(failed.properties.allowed_actions, ["Restart"])
        self.assertEqual(failed.properties.errors[0].service_error_details.code, "150175")
        self.assertEqual(failed.properties.errors[0].task_id, "CreateTestVmTask")
        rj = c.replication_jobs.begin_restart(failed.name).result()
        self.assertEqual(rj.properties.scenario_name, "RestartJob")
        deadline = time.time() + 20
        while c.replication_jobs.get(failed.name).properties.state != "Succeeded" and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.get(app).properties.test_failover_state, "WaitingForCompletion")
        c.replication_protected_items.begin_test_failover_cleanup(*parts(app.id), M.TestFailoverCleanupInput(
            properties=M.TestFailoverCleanupInputProperties(comments="x"))).result()

        # resume: a Suspended job
        self.emu.fault(action="job_suspend", match={"scenario": "TestFailover"}, task="StartTestVmTask")
        t1 = self.now_iso()
        poller = c.replication_protected_items.begin_test_failover(*parts(app.id), tfo)
        deadline = time.time() + 20
        while True:
            j = self.jobs_since(t1, "TestFailover")[0]
            if j.properties.state == "Suspended" or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(j.properties.state, "Suspended")
        self.assertEqual(j.properties.allowed_actions, ["Cancel", "Resume"])
        resumed = c.replication_jobs.begin_resume(j.name, M.ResumeJobParams(
            properties=M.ResumeJobParamsProperties(comments="go"))).result()
        self.assertIn(resumed.properties.state, ("InProgress", "Succeeded"))
        self.assertEqual(poller.result().properties.test_failover_state, "WaitingForCompletion")

        # list with filters
        all_jobs = list(c.replication_jobs.list())
        self.assertGreaterEqual(len(all_jobs), 5)
        ok = list(c.replication_jobs.list(filter="JobStatus eq 'Succeeded'"))
        self.assertTrue(ok and all(j.properties.state == "Succeeded" for j in ok))
        canc = list(c.replication_jobs.list(filter="( JobStatus eq 'Cancelled' or JobStatus eq 'Failed' ) and StartTime eq '%s'" % t0))
        self.assertEqual(sorted(j.properties.state for j in canc), ["Cancelled"])   # the failed one was restarted
        none = list(c.replication_jobs.list(filter="EndTime eq '2000-01-01T00:00:00.0000000Z'"))
        self.assertEqual(none, [])


if __name__ == "__main__":
    unittest.main()
