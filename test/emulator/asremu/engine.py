"""The ASR service: state of every vault, actions on items/containers/jobs, operations.

All mutable ASR state lives here behind one lock.  `tick()` advances every job timeline and every
item (initial replication, recovery points) to the emulated "now"; the ARM layer calls it before
each request.  Actions validate their input and the item's allowedOperations (asr-rest.md sections
3 and 9), create a job (jobs.py) whose completion applies the state-machine transition, and register
an operation (`Op`) whose id is the job GUID, used by the status and result URLs.
"""
import math
import threading

from . import jobs as jobsmod
from . import model, recovery_points, statemachine, util


class ArmError(Exception):
    """An ARM/ASR error answer."""

    def __init__(self, status, code, message, detail_code=None, possible=None, recommended=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.detail_code, self.possible, self.recommended = detail_code, possible, recommended

    def body(self, client_request_id=None):
        err = {"code": self.code, "message": self.message}
        if self.detail_code:
            err["details"] = [{"code": self.detail_code, "message": self.message,
                               "possibleCauses": self.possible or "",
                               "recommendedAction": self.recommended or "",
                               "clientRequestId": client_request_id or util.new_guid(),
                               "activityId": util.new_guid()}]
        return {"error": err}


def invalid(message, detail="InvalidInput"):
    return ArmError(400, "BadRequest", message, detail,
                    "The input is not valid for the operation.", "Correct the input and retry the operation.")


class Op:
    """An asynchronous operation: what the Azure-AsyncOperation / Location URLs report."""

    def __init__(self, vault, name, kind, job, target_path, api_version, result):
        self.vault, self.name, self.kind, self.job = vault, name, kind, job
        self.target_path = target_path
        self.api_version = api_version
        self.result = result            # callable(now) -> document of the result
        self.pattern = "ao+location"
        self.fault_params = {}
        self.ao_polls = 0
        self.loc_polls = 0

    def done(self):
        if self.kind == "cancel":
            return self.job.state in jobsmod.TERMINAL
        if self.kind == "resume":
            return True
        return self.job.state in jobsmod.TERMINAL

    def status_doc(self):
        if self.kind == "job":
            d = self.job.operation_status()
            d["name"] = self.name
            return d
        doc = {"error": None, "id": None, "name": self.name, "properties": None,
               "status": "Succeeded" if self.done() else "InProgress",
               "startTime": util.fmt_time(self.job.start), "endTime": None, "percentComplete": None}
        if self.done():
            doc["endTime"] = util.fmt_time(self.job.end if self.job.end else self.job.start)
        return doc


class Engine:
    def __init__(self, world, clock, faults, config):
        self.world = world
        self.clock = clock
        self.faults = faults
        self.config = config
        self.lock = threading.RLock()
        self.build()

    def build(self):
        now = self.clock.now()
        self.vaults = {}
        for sub in self.world.subscriptions:
            for v in sub.get("vaults", []):
                vault = model.Vault(sub["id"], v, now, self.world.settings)
                self.vaults[(sub["id"].lower(), v["resource_group"].lower(), v["name"].lower())] = vault
        self.tick()

    def vault(self, sub, rg, name):
        return self.vaults.get((sub.lower(), rg.lower(), name.lower()))

    def tick(self):
        with self.lock:
            now = self.clock.now()
            for vault in self.vaults.values():
                running = [j for j in vault.jobs.values() if j.state not in jobsmod.TERMINAL]
                for job in sorted(running, key=lambda j: j.start):
                    job.advance(now)
                for item in list(vault.items):
                    item.tick(now)
            return now

    # ------------------------------------------------------------------ helpers
    def durations(self, scenario):
        d = self.config.get("durations", {}).get(scenario, {})
        return d

    def retry_after(self):
        ra = self.config.get("retry_after")
        if ra is None:
            return max(1, int(math.ceil(30.0 / self.clock.scale)))
        return int(ra)

    def _new_job(self, vault, scenario, friendly, crid, item=None, target_name=None, target_id=None,
                 target_type="ProtectionEntity", skip=(), sync=False):
        now = self.clock.now()
        durations = dict(self.durations(scenario))
        if sync:
            durations = {t[0]: 0 for t in jobsmod.TASKS.get(scenario, [])}
        job = jobsmod.Job(vault, util.new_guid(), scenario, friendly, now, crid,
                          target_name or (item.vm.name if item else ""),
                          target_id or (item.vm.guid if item else util.new_guid()),
                          target_type, durations, skip)
        job.item = item
        for rule in self.faults.match_job(scenario, job.target_name):
            job.apply_fault(rule)
        if item is not None:
            p, r = item.primary(), item.recovery()
            job.custom = {"instanceType": "AsrJobDetails", "affectedObjectDetails": {
                "primaryVmId": item.vm.guid, "primaryVmName": item.vm.name,
                "recoveryVmId": "", "recoveryVmName": item.vm.name,
                "protectionProfileId": util.stable_guid(item.policy_name, "profile"),
                "primaryCloudId": p.container_guid, "primaryCloudName": p.container,
                "recoveryCloudId": r.container_guid, "recoveryCloudName": r.container,
                "primaryVmmId": p.fabric_guid, "primaryVmmName": p.friendly,
                "recoveryVmmId": r.fabric_guid, "recoveryVmmName": r.friendly,
                "primaryFabricProviderId": "Azure", "recoveryFabricProviderId": "Azure"}}
            item.job = job
            job.on_finish.append(self._release_item)
        vault.jobs[job.name] = job
        return job

    @staticmethod
    def _release_item(job, state, t):
        pass  # item.job stays pointing at the last job; `running` tells whether it blocks

    def _op(self, vault, job, target_path, api_version, result, kind="job", name=None):
        op = Op(vault, name or job.name, kind, job, target_path, api_version, result)
        vault.ops[op.name] = op
        return op

    def _rp_id(self, item, point, guid_container):
        p = item.primary()
        return p.container_id(guid=guid_container) + "/replicationProtectedItems/" + item.name + "/recoveryPoints/" + point.name

    def resolve_point(self, item, rp_id):
        if not isinstance(rp_id, str) or "/recoverypoints/" not in rp_id.lower():
            raise invalid("The recovery point id '%s' is not valid." % rp_id)
        segs = rp_id.rstrip("/").split("/")
        if len(segs) < 3 or not util.ieq(segs[-3], item.name):
            raise invalid("The recovery point '%s' does not belong to the replicated item '%s'." % (rp_id, item.vm.name),
                          "RecoveryPointNotFound")
        point = recovery_points.find(item, segs[-1])
        if point is None:
            raise ArmError(400, "BadRequest", "The recovery point '%s' was not found for the replicated item '%s'. "
                           "It may have been deleted by the retention policy." % (segs[-1], item.vm.name),
                           "RecoveryPointNotFound", "The recovery point no longer exists.",
                           "Refresh the list of recovery points and choose another one.")
        return point

    def check_allowed(self, item, gate, action_label):
        if item.job is not None and item.job.running:
            raise ArmError(409, "Conflict",
                           "Another operation ('%s', job '%s') is in progress on the replicated item '%s'."
                           % (item.job.friendly, item.job.name, item.vm.name), "28089",
                           "An operation is already running on the item.",
                           "Wait for the job to complete and retry the operation.")
        if not statemachine.allowed(item.state, item.tfo_state, False, gate):
            raise ArmError(400, "BadRequest",
                           "The operation '%s' isn't allowed on the replicated item '%s' in its current state '%s'. "
                           "Allowed operations: %s." % (gate, item.vm.name, item.state,
                                                        ", ".join(statemachine.allowed_operations(item.state, item.tfo_state, False)) or "none"),
                           "28093", "The replicated item is not in a state that allows the operation.",
                           "Check the item's allowed operations and retry after the state changes.")

    # ------------------------------------------------------------------ item actions
    def item_action(self, vault, item, action, body, crid, api_version, sync=False):
        with self.lock:
            self.tick()
            if action not in statemachine.ACTIONS or action == "switchprotection":
                raise ArmError(404, "NotFound", "No HTTP resource was found that matches the request.")
            gate, scenario, friendly = statemachine.ACTIONS[action]
            if gate is None:
                if item.job is not None and item.job.running:
                    self.check_allowed(item, "DisableProtection", action)
            else:
                self.check_allowed(item, gate, action)
            handler = getattr(self, "_do_" + action)
            job = handler(vault, item, body or {}, crid, sync)
            target = item.arm_id()
            op = self._op(vault, job, target, api_version,
                          lambda now, it=item: None if it.deleted else it.doc(now))
            if sync:
                self.tick()
            return op

    @staticmethod
    def _props(body, required=True):
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        props = body.get("properties")
        if props is None:
            if required:
                raise invalid("The 'properties' member of the input is required.")
            return {}
        if not isinstance(props, dict):
            raise invalid("'properties' must be an object.")
        return props

    @staticmethod
    def _a2a(psd, required):
        if psd is None:
            if required:
                raise invalid("providerSpecificDetails is required.")
            return {}
        if not isinstance(psd, dict) or not util.ieq(psd.get("instanceType"), "A2A"):
            raise invalid("The provider specific input is not valid for a replicated item of type 'A2A' "
                          "(instanceType '%s')." % (psd.get("instanceType") if isinstance(psd, dict) else psd))
        return psd

    def _direction(self, props):
        d = props.get("failoverDirection", "PrimaryToRecovery")
        if not util.ieq(d, "PrimaryToRecovery"):
            if util.ieq(d, "RecoveryToPrimary"):
                raise invalid("Failover direction 'RecoveryToPrimary' is not supported for Azure to Azure replication; "
                              "fail over the reprotected item with 'PrimaryToRecovery'.")
            raise invalid("The failover direction '%s' is not valid." % d)

    def _do_unplannedfailover(self, vault, item, body, crid, sync):
        props = self._props(body)
        self._direction(props)
        sso = props.get("sourceSiteOperations", "NotRequired")
        if not (util.ieq(sso, "Required") or util.ieq(sso, "NotRequired")):
            raise invalid("sourceSiteOperations '%s' is not valid." % sso)
        psd = self._a2a(props.get("providerSpecificDetails"), False)
        rp_id = psd.get("recoveryPointId")
        point = self.resolve_point(item, rp_id) if rp_id else None
        skip = []
        if util.ieq(sso, "NotRequired"):
            skip.append("ShutdownPrimaryVmTask")
        if point is not None:
            skip.append("SyncLatestDataTask")
        job = self._new_job(vault, "UnplannedFailover", "Failover", crid, item, skip=skip, sync=sync)
        now = job.start
        recovery_points.catch_up(item, now)
        item.freeze_rpo(now)
        if point is None:
            point = recovery_points.add_point(item, now, "CrashConsistent")   # "Latest": process all pending data
        guid_form = vault.settings.get("failover_rp_id_uses_container_guid", True)
        rp_full = self._rp_id(item, point, guid_form)
        job.custom = {"instanceType": "FailoverJobDetails", "protectedItemDetails": [{
            "name": item.name, "friendlyName": item.vm.name, "testVmName": None, "testVmFriendlyName": None,
            "networkConnectionStatus": None, "networkFriendlyName": None, "subnet": None,
            "recoveryPointId": self._rp_id(item, point, False), "recoveryPointTime": util.fmt_time(point.time)}],
            "affectedObjectDetails": job.custom["affectedObjectDetails"]}

        def done(j, state, t):
            if state != "Succeeded":
                return
            # replication stopped when the failover started: no points after the "latest" one
            item.state = "UnplannedFailoverCommitPendingStatesBegin"
            item.failover_rp_id = rp_full
            item.last_failover = t
            item.rp_cursor = max(item.rp_cursor or t, t)
        job.on_finish.append(done)
        return job

    def _do_testfailover(self, vault, item, body, crid, sync):
        props = self._props(body)
        self._direction(props)
        ntype = props.get("networkType")
        if ntype is None or not any(util.ieq(ntype, x) for x in ("VmNetworkAsInput", "NoNetworkAttachAsInput", "ExistingVmNetwork", "CreateVmNetwork")):
            raise invalid("networkType '%s' is not valid; use VmNetworkAsInput or NoNetworkAttachAsInput." % ntype)
        if util.ieq(ntype, "VmNetworkAsInput") and not props.get("networkId"):
            raise invalid("networkId is required when networkType is VmNetworkAsInput.")
        psd = self._a2a(props.get("providerSpecificDetails"), False)
        rp_id = psd.get("recoveryPointId")
        point = self.resolve_point(item, rp_id) if rp_id else None
        job = self._new_job(vault, "TestFailover", "Test failover", crid, item, sync=sync)
        if point is None:
            recovery_points.catch_up(item, job.start)
            point = item.rps[-1] if item.rps else recovery_points.add_point(item, job.start)
        net = props.get("networkId") or ""
        job.custom = {"instanceType": "TestFailoverJobDetails", "testFailoverStatus": "InProgress",
                      "comments": None, "networkName": net.rsplit("/", 1)[-1] if net else None,
                      "networkFriendlyName": net.rsplit("/", 1)[-1] if net else None,
                      "networkType": ntype,
                      "protectedItemDetails": [{"name": item.name, "friendlyName": item.vm.name,
                                                "testVmName": item.vm.name + "-test", "testVmFriendlyName": item.vm.name + "-test",
                                                "networkConnectionStatus": "Connected" if net else "NotConnected",
                                                "networkFriendlyName": net.rsplit("/", 1)[-1] if net else None,
                                                "subnet": None, "recoveryPointId": self._rp_id(item, point, False),
                                                "recoveryPointTime": util.fmt_time(point.time)}],
                      "affectedObjectDetails": job.custom["affectedObjectDetails"]}
        item.tfo_state = "InProgress"

        def done(j, state, t):
            if state == "Succeeded":
                item.tfo_state = "WaitingForCompletion"
                item.last_tfo = t
                j.custom["testFailoverStatus"] = "Completed"
            else:
                item.tfo_state = "None"
                j.custom["testFailoverStatus"] = state
        job.on_finish.append(done)
        return job

    def _do_testfailovercleanup(self, vault, item, body, crid, sync):
        props = self._props(body)
        comments = props.get("comments")
        if comments is not None and (not isinstance(comments, str) or len(comments) > 1024):
            raise invalid("comments must be a string of at most 1024 characters.")
        job = self._new_job(vault, "TestFailoverCleanup", "Cleanup test failover", crid, item, sync=sync)
        item.tfo_state = "MarkedForDeletion"

        def done(j, state, t):
            item.tfo_state = "None" if state == "Succeeded" else "WaitingForCompletion"
        job.on_finish.append(done)
        return job

    def _do_applyrecoverypoint(self, vault, item, body, crid, sync):
        props = self._props(body)
        self._a2a(props.get("providerSpecificDetails"), True)
        rp_id = props.get("recoveryPointId")
        if not rp_id:
            raise invalid("recoveryPointId is required.")
        point = self.resolve_point(item, rp_id)
        job = self._new_job(vault, "ApplyRecoveryPoint", "Change recovery point", crid, item, sync=sync)
        guid_form = vault.settings.get("failover_rp_id_uses_container_guid", True)
        rp_full = self._rp_id(item, point, guid_form)
        job.custom = {"instanceType": "FailoverJobDetails", "protectedItemDetails": [{
            "name": item.name, "friendlyName": item.vm.name, "recoveryPointId": self._rp_id(item, point, False),
            "recoveryPointTime": util.fmt_time(point.time)}], "affectedObjectDetails": job.custom["affectedObjectDetails"]}

        def done(j, state, t):
            if state == "Succeeded":
                item.failover_rp_id = rp_full
        job.on_finish.append(done)
        return job

    def _do_failovercommit(self, vault, item, body, crid, sync):
        job = self._new_job(vault, "CommitFailover", "Commit", crid, item, sync=sync)

        def done(j, state, t):
            if state == "Succeeded":
                item.state = "UnplannedFailoverCommitted"
                item.rps = []
        job.on_finish.append(done)
        return job

    def _do_purge(self, vault, item, body, crid, sync):
        return self._do_remove(vault, item, {"properties": {}}, crid, sync)

    def _do_remove(self, vault, item, body, crid, sync):
        props = self._props(body)
        reason = props.get("disableProtectionReason", "NotSpecified")
        if not (util.ieq(reason, "NotSpecified") or util.ieq(reason, "MigrationComplete")):
            raise invalid("disableProtectionReason '%s' is not valid." % reason)
        job = self._new_job(vault, "DisableDr", "Disable replication", crid, item, sync=sync)

        def done(j, state, t):
            if state == "Succeeded":
                item.deleted = True
                if item in vault.items:
                    vault.items.remove(item)
        job.on_finish.append(done)
        return job

    # ------------------------------------------------------------------ switch protection
    def switch_protection(self, vault, region, body, crid, api_version, sync=False):
        with self.lock:
            self.tick()
            props = self._props(body)
            name = props.get("replicationProtectedItemName")
            if not name:
                raise invalid("replicationProtectedItemName is required.")
            item = vault.find_item(region.fabric, region.container, name)
            if item is None:
                raise ArmError(404, "NotFound", "The replicated item '%s' was not found in protection container '%s'."
                               % (name, region.container), "ReplicationProtectedItemNotFound",
                               "The item does not exist in this container.",
                               "Post switch protection to the container that currently holds the item.")
            self.check_allowed(item, "SwitchProtection", "switchprotection")
            psd = self._a2a(props.get("providerSpecificDetails"), True)
            rc = psd.get("recoveryContainerId")
            p = item.primary()
            if rc and not (util.ieq(rc, p.container_id()) or util.ieq(rc, p.container_id(guid=True))):
                raise invalid("recoveryContainerId '%s' is not the protection container the item is reprotected to "
                              "('%s')." % (rc, p.container_id()))
            pol = psd.get("policyId")
            if pol and pol.rstrip("/").rsplit("/", 1)[-1].lower() not in vault.policies:
                raise invalid("The replication policy '%s' was not found." % pol)
            disks = psd.get("vmManagedDisks") or []
            if not isinstance(disks, list) or not disks:
                raise ArmError(400, "BadRequest", "Managed disk details not provided for the virtual machine '%s'."
                               % item.vm.name, "VMDisksMissing", "The input has no vmManagedDisks.",
                               "Provide every managed disk of the failed-over virtual machine in vmManagedDisks.")
            want = {d.lower(): d for d in item.target_disk_ids()}
            got = set()
            staging = None
            rrg = None
            for d in disks:
                if not isinstance(d, dict) or not d.get("diskId"):
                    raise invalid("Each vmManagedDisks entry needs a diskId.")
                if d["diskId"].lower() not in want:
                    raise invalid("The disk '%s' is not a disk of the failed-over virtual machine '%s'." % (d["diskId"], item.vm.name))
                for k in ("primaryStagingAzureStorageAccountId", "recoveryResourceGroupId"):
                    if not d.get(k):
                        raise invalid("%s is required for disk '%s'." % (k, d["diskId"]))
                got.add(d["diskId"].lower())
                staging = d["primaryStagingAzureStorageAccountId"]
                rrg = d["recoveryResourceGroupId"]
            missing = [want[k] for k in want if k not in got]
            if missing:
                raise ArmError(400, "BadRequest", "Managed disk details not provided for disks: %s." % ", ".join(missing),
                               "VMDisksMissing", "Some disks of the virtual machine are missing from the input.",
                               "Provide every managed disk of the failed-over virtual machine in vmManagedDisks.")
            rrg = psd.get("recoveryResourceGroupId") or rrg
            new_dir = "BA" if item.direction == "AB" else "AB"
            new_primary = item.recovery()
            new_id = new_primary.container_id().replace("/Subscriptions/", "/subscriptions/", 1) + \
                "/replicationProtectedItems/" + item.name
            job = self._new_job(vault, "SwitchReplicationGroupProtection", "Reprotect", crid, item,
                                skip=("CommitFailoverTask",), sync=sync)
            job.custom = {"newReplicationProtectedItemId": new_id, "instanceType": "SwitchProtectionJobDetails",
                          "affectedObjectDetails": job.custom["affectedObjectDetails"]}
            child = self._new_job(vault, "EnableDr", "Enable replication", crid, None, item.vm.name,
                                  util.stable_guid(item.vm.name, "vm-replica", new_dir), "Vm", sync=sync)
            for t in job.tasks:
                if t.task_type == "GroupTaskDetails":
                    t.child = {"job_name": child.name, "target_id": child.target_id}
            ir = float(self.config.get("ir_seconds", 2820))
            pending = float(self.config.get("ir_pending_seconds", 120))

            def done(j, state, t):
                if state != "Succeeded":
                    return
                item.direction = new_dir
                item.state = "InitialReplicationInProgress"
                item.tfo_state = "None"
                item.rps = []
                item.rp_cursor = None
                item.failover_rp_id = None
                item.frozen_rpo = item.frozen_rpo_time = None
                item.ir_start = t
                item.ir_until = t + ir
                item.ir_pending_until = t + ir + pending
                if rrg:
                    item.recovery_rg_override[new_dir] = rrg.rstrip("/").rsplit("/", 1)[-1]
                if staging:
                    item.staging[new_dir] = staging
            job.on_finish.append(done)
            op = self._op(vault, job, region.container_id(), api_version, lambda now, r=region: r.container_doc())
            if sync:
                self.tick()
            return op

    # ------------------------------------------------------------------ job actions
    def job_action(self, vault, job, action, body, crid, api_version, sync=False):
        with self.lock:
            now = self.tick()
            target = vault.job_id(job.name)
            if action == "cancel":
                if not job.cancel(now, float(self.config.get("cancel_seconds", 10)) if not sync else 0):
                    raise ArmError(400, "BadRequest", "The job '%s' can't be cancelled in its current state '%s'."
                                   % (job.name, job.state), "28084", "Only running or suspended jobs can be cancelled.",
                                   "Check the job state.")
                item = job.item

                def cancelled(j, state, t):
                    if item is not None and state == "Cancelled" and item.tfo_state in ("InProgress", "MarkedForDeletion"):
                        item.tfo_state = "None" if j.scenario == "TestFailover" else "WaitingForCompletion"
                job.on_finish.append(cancelled)
                op = self._op(vault, job, target, api_version, lambda n, j=job: j.doc(), kind="cancel", name=util.new_guid())
            elif action == "resume":
                props = self._props(body or {}, required=True)
                if "comments" in props and props["comments"] is not None and not isinstance(props["comments"], str):
                    raise invalid("comments must be a string.")
                if not job.resume(now):
                    raise ArmError(400, "BadRequest", "The job '%s' can't be resumed in its current state '%s'."
                                   % (job.name, job.state), "28085", "Only suspended jobs can be resumed.",
                                   "Check the job state.")
                op = self._op(vault, job, target, api_version, lambda n, j=job: j.doc(), kind="resume", name=util.new_guid())
            elif action == "restart":
                if job.state not in ("Failed", "Cancelled"):
                    raise ArmError(400, "BadRequest", "The job '%s' can't be restarted in its current state '%s'."
                                   % (job.name, job.state), "28086", "Only failed or cancelled jobs can be restarted.",
                                   "Check the job state.")
                item = job.item
                if item is not None and item.job is not None and item.job is not job and item.job.running:
                    raise ArmError(409, "Conflict", "Another job is running on the replicated item '%s'." % item.vm.name,
                                   "28089", "An operation is already running on the item.", "Wait and retry.")
                rjob = self._new_job(vault, "RestartJob", "Restart job", crid, None, job.target_name, job.target_id,
                                     job.target_type, sync=sync)
                job.restart(now)
                if item is not None:
                    item.job = job
                    if job.scenario == "TestFailover":
                        item.tfo_state = "InProgress"
                    elif job.scenario == "TestFailoverCleanup":
                        item.tfo_state = "MarkedForDeletion"
                op = self._op(vault, rjob, target, api_version, lambda n, j=rjob: j.doc())
            else:
                raise ArmError(404, "NotFound", "No HTTP resource was found that matches the request.")
            if sync:
                self.tick()
            return op

    # ------------------------------------------------------------------ control helpers
    def add_disk(self, vm_name, disk):
        with self.lock:
            now = self.tick()
            for vault in self.vaults.values():
                for vm in vault.vms:
                    if util.ieq(vm.name, vm_name):
                        d = model.Disk(vm, dict(disk, added_minutes_ago=0), now)
                        vm.disks.append(d)
                        return d
            return None

    def find_item_by_vm(self, vm_name):
        for vault in self.vaults.values():
            for it in vault.items:
                if util.ieq(it.vm.name, vm_name) or util.ieq(it.name, vm_name):
                    return it
        return None
