"""ASR jobs (`replicationJobs`) and their timelines.

A job is a list of tasks with emulated durations, run one after the other as emulated time passes
(`advance(now)` is called lazily before every read).  Fault hooks on a task make it fail with ASR's
error details, stay InProgress forever (until cancelled) or suspend the job until `resume`.
Rendering follows the real A2A job of asr-rest.md section 6.6: capital `/Subscriptions/` ids, task
times `0001-01-01T00:00:00` while unset, `endTime` absent while running, `allowedActions` per state.
Task lists per scenario live in `TASKS`; their durations (emulated seconds) follow section 5.6.
"""
from . import util

TERMINAL = ("Succeeded", "Failed", "Cancelled")

# scenario -> [(taskId, name, friendlyName, duration_s, taskType)]
TASKS = {
    "UnplannedFailover": [
        ("UnplannedFailoverPreflightTask", "UnplannedFailoverPreflightTask", "Prerequisites check for failover", 10, "TaskDetails"),
        ("ShutdownPrimaryVmTask", "ShutdownPrimaryVm", "Shut down the virtual machine", 30, "TaskDetails"),
        ("SyncLatestDataTask", "SyncLatestData", "Synchronizing the latest data", 20, "TaskDetails"),
        ("StartReplicaVmTask", "StartReplicaVm", "Start the replica virtual machine", 80, "TaskDetails"),
    ],
    "TestFailover": [
        ("TestFailoverPreflightTask", "TestFailoverPreflightTask", "Prerequisites check for test failover", 10, "TaskDetails"),
        ("CreateTestVmTask", "CreateTestVm", "Create test virtual machine", 60, "TaskDetails"),
        ("PrepareTestVmTask", "PrepareTestVm", "Preparing the virtual machine", 30, "TaskDetails"),
        ("StartTestVmTask", "StartTestVm", "Start the virtual machine", 40, "TaskDetails"),
    ],
    "TestFailoverCleanup": [
        ("TestFailoverCleanupPreflightTask", "TestFailoverCleanupPreflightTask", "Prerequisite check", 5, "TaskDetails"),
        ("DeleteTestVmTask", "DeleteTestVm", "Delete test virtual machine", 60, "TaskDetails"),
    ],
    "ApplyRecoveryPoint": [
        ("ApplyRecoveryPointPreflightTask", "ApplyRecoveryPointPreflightTask", "Prerequisite check", 5, "TaskDetails"),
        ("ChangeRecoveryPointTask", "ChangeRecoveryPoint", "Apply the recovery point", 60, "TaskDetails"),
    ],
    "CommitFailover": [
        ("CommitFailoverPreflightTask", "CommitFailoverPreflightTask", "Prerequisite check", 3, "TaskDetails"),
        ("CommitFailoverTask", "VmCommitFailover", "Commit", 5, "TaskDetails"),
    ],
    "SwitchReplicationGroupProtection": [
        ("SwitchReplicationGroupProtectionPreflightTask", "SwitchReplicationGroupProtectionPreflightTask", "Prerequisite check", 2, "TaskDetails"),
        ("CommitFailoverTask", "VmCommitFailover", "Committing failover", 0, "TaskDetails"),
        ("DiscoverReplicaTask", "DiscoverReplicaTask", "Discovering replica virtual machine", 1, "TaskDetails"),
        ("GetSwitchProtectionRequirementsTask", "GetSwitchProtectionRequirementsTask", "Getting reprotection requirements", 1, "TaskDetails"),
        ("ProtectReplicaTask", "ProtectReplicaTask", "Reprotecting virtual machine (1)", 535, "GroupTaskDetails"),
    ],
    "DisableDr": [
        ("DisableProtectionPreflightTask", "DisableProtectionPreflightTask", "Prerequisite check", 5, "TaskDetails"),
        ("DisableProtectionTask", "DisableProtection", "Disable replication", 115, "TaskDetails"),
    ],
    "RestartJob": [
        ("RemediateWfTask", "RemediateTask", "Restarting job", 2, "TaskDetails"),
    ],
}


class Task:
    def __init__(self, task_id, name, friendly, duration, task_type, skipped=False):
        self.task_id, self.name, self.friendly = task_id, name, friendly
        self.duration = float(duration)
        self.task_type = task_type
        self.skipped = skipped
        self.state = "NotStarted"
        self.desc = "NotStarted"
        self.start = None
        self.end = None
        self.fault = None          # None | dict(action=..., ...)
        self.resumed = False
        self.errors = []
        self.child = None          # for GroupTaskDetails: dict describing the child job

    def reset(self):
        self.state = self.desc = "NotStarted"
        self.start = self.end = None
        self.errors = []
        self.fault = None
        self.resumed = False


class Job:
    def __init__(self, vault, name, scenario, friendly, start, client_request_id, target_name,
                 target_id, target_type="ProtectionEntity", durations=None, skip=()):
        self.vault = vault
        self.name = name
        self.scenario = scenario
        self.friendly = friendly
        self.activity_id = "%s ActivityId: %s" % (client_request_id or util.new_guid(), util.new_guid())
        self.start = start
        self.end = None
        self.state = "InProgress"
        self.desc = "InProgress"
        self.target_name = target_name
        self.target_id = target_id
        self.target_type = target_type
        self.errors = []
        self.custom = {"instanceType": "AsrJobDetails", "affectedObjectDetails": {}}
        self.tasks = []
        durations = durations or {}
        for (tid, nm, fr, dur, tt) in TASKS.get(scenario, [("%sTask" % scenario, scenario, friendly, 5, "TaskDetails")]):
            d = durations.get(tid, dur)
            self.tasks.append(Task(tid, nm, fr, d, tt, skipped=tid in skip))
        self.idx = 0
        self.cursor = start
        self.cancel_at = None
        self.suspend_desc = None
        self.on_finish = []        # callables(job, state, t)
        self.on_task_done = {}     # taskId -> callable(job, t)
        self.item = None
        self.restarted_from = None

    # -------------------------------------------------------------- faults
    def apply_fault(self, rule):
        sel = rule.get("task")
        target = None
        if sel is None:
            candidates = [t for t in self.tasks if not t.skipped and t.duration > 0]
            target = candidates[-1] if candidates else self.tasks[-1]
        elif isinstance(sel, int) or (isinstance(sel, str) and sel.isdigit()):
            target = self.tasks[int(sel)]
        else:
            for t in self.tasks:
                if util.ieq(t.task_id, sel) or util.ieq(t.name, sel):
                    target = t
        if target is None:
            target = self.tasks[-1]
        target.fault = rule
        target.skipped = False

    # -------------------------------------------------------------- timeline
    @property
    def running(self):
        return self.state not in TERMINAL

    def advance(self, now):
        if self.state in TERMINAL:
            return
        if self.state == "Cancelling":
            if now >= self.cancel_at:
                for t in self.tasks:
                    if t.state in ("InProgress", "Cancelling", "Suspended"):
                        t.state, t.desc, t.end = "Cancelled", "Cancelled", self.cancel_at
                self._finish("Cancelled", self.cancel_at)
            return
        if self.state == "Suspended":
            return
        while self.idx < len(self.tasks):
            t = self.tasks[self.idx]
            if t.skipped:
                t.state, t.desc = "Other", "Skipped"
                self.idx += 1
                continue
            if t.start is None:
                t.start = self.cursor
                t.state = t.desc = "InProgress"
            f = (t.fault or {}).get("action")
            if f == "job_suspend" and not t.resumed:
                self.state = "Suspended"
                self.desc = t.fault.get("description") or ("WaitingForStopTestFailover" if self.scenario == "TestFailover"
                                                           else "WaitingForManualAction")
                t.state, t.desc = "Suspended", self.desc
                return
            if f == "job_stuck":
                return
            if now < t.start + t.duration:
                return
            t_end = t.start + t.duration
            t.end = t_end
            if f == "job_fail":
                t.state, t.desc = "Failed", "Failed"
                err = self._error(t, t_end)
                t.errors = [err]
                self.errors = [err]
                self._finish("Failed", t_end)
                return
            t.state, t.desc = "Succeeded", "Completed"
            self.cursor = t_end
            self.idx += 1
            cb = self.on_task_done.get(t.task_id)
            if cb:
                cb(self, t_end)
        self._finish("Succeeded", self.cursor)

    def _error(self, t, when):
        f = t.fault
        return {
            "serviceErrorDetails": {
                "code": str(f.get("code", "70094")),
                "message": f.get("message", "The operation failed for the virtual machine '%s'." % self.target_name),
                "possibleCauses": f.get("possible_causes", "An internal error occurred in the Site Recovery service."),
                "recommendedAction": f.get("recommended_action", "Retry the operation. If the issue persists, contact support."),
                "activityId": self.activity_id.split(" ActivityId: ")[-1],
            },
            "providerErrorDetails": None if not f.get("provider_code") else {
                "errorCode": int(f["provider_code"]), "errorMessage": f.get("provider_message", ""),
                "errorId": util.new_guid(), "possibleCauses": "", "recommendedAction": ""},
            "errorLevel": "Error",
            "creationTime": util.fmt_time(when),
            "taskId": t.task_id,
        }

    def _finish(self, state, t):
        self.state = state
        self.desc = {"Succeeded": "Completed", "Failed": "Failed", "Cancelled": "Cancelled"}[state]
        self.end = t
        for cb in list(self.on_finish):
            cb(self, state, t)

    # -------------------------------------------------------------- actions
    def cancel(self, now, delay):
        if self.state not in ("NotStarted", "InProgress", "Suspended"):
            return False
        self.state = self.desc = "Cancelling"
        self.cancel_at = now + delay
        for t in self.tasks:
            if t.state in ("InProgress", "Suspended"):
                t.state = t.desc = "Cancelling"
        return True

    def resume(self, now):
        if self.state != "Suspended":
            return False
        t = self.tasks[self.idx]
        t.resumed = True
        t.start = now
        t.state = t.desc = "InProgress"
        self.state = self.desc = "InProgress"
        return True

    def restart(self, now):
        if self.state not in ("Failed", "Cancelled"):
            return False
        for t in self.tasks[self.idx:]:
            t.reset()
        self.errors = []
        self.state = self.desc = "InProgress"
        self.end = None
        self.cursor = now
        self.cancel_at = None
        return True

    def allowed_actions(self):
        return {"InProgress": ["Cancel"], "NotStarted": ["Cancel"], "Suspended": ["Cancel", "Resume"],
                "Failed": ["Restart"]}.get(self.state, [])

    def percent(self):
        work = [t for t in self.tasks if not t.skipped]
        if not work:
            return 100
        return int(100 * sum(1 for t in work if t.state == "Succeeded") / len(work))

    # -------------------------------------------------------------- rendering
    def _task_doc(self, t):
        doc = {
            "taskId": t.task_id, "name": t.name,
            "startTime": util.fmt_time(t.start) if t.start is not None else util.UNSET_TIME,
            "endTime": util.fmt_time(t.end) if t.end is not None and t.state not in ("InProgress", "Suspended", "Cancelling") else util.UNSET_TIME,
            "allowedActions": [], "friendlyName": t.friendly, "state": t.state, "stateDescription": t.desc,
            "taskType": t.task_type,
            "customDetails": {"instanceType": "TaskDetails"}, "groupTaskCustomDetails": None,
            "errors": list(t.errors),
        }
        if t.task_type == "GroupTaskDetails":
            doc["customDetails"] = None
            child = t.child or {}
            cstate = t.state if t.state != "NotStarted" else "NotStarted"
            doc["groupTaskCustomDetails"] = {"instanceType": "GroupTaskDetails", "childTasks": [{
                "taskId": child.get("task_id", "EnableDr"), "name": self.target_name,
                "startTime": doc["startTime"], "endTime": doc["endTime"] if doc["endTime"] == util.UNSET_TIME else util.fmt_time(t.end, 0),
                "allowedActions": [], "friendlyName": self.target_name, "state": cstate, "stateDescription": t.desc,
                "taskType": "JobTaskDetails",
                "customDetails": {"jobTask": {
                    "jobId": self.vault.job_id(child.get("job_name", "")),
                    "jobFriendlyName": child.get("friendly", "Enable replication"),
                    "targetObjectId": child.get("target_id", self.target_id),
                    "targetObjectName": self.target_name, "targetInstanceType": "Vm",
                    "jobScenarioName": child.get("scenario", "EnableDr")},
                    "instanceType": "JobTaskDetails"},
                "groupTaskCustomDetails": None, "errors": []}]}
        return doc

    def doc(self):
        props = {
            "activityId": self.activity_id,
            "scenarioName": self.scenario,
            "friendlyName": self.friendly,
            "state": self.state,
            "stateDescription": self.desc,
            "tasks": [self._task_doc(t) for t in self.tasks],
            "errors": list(self.errors),
            "startTime": util.fmt_time(self.start),
        }
        if self.end is not None and self.state in TERMINAL:
            props["endTime"] = util.fmt_time(self.end, 0)
        props.update({
            "allowedActions": self.allowed_actions(),
            "targetObjectId": self.target_id,
            "targetObjectName": self.target_name,
            "targetInstanceType": self.target_type,
            "customDetails": self.custom,
        })
        return {"id": self.vault.job_id(self.name), "name": self.name,
                "type": "Microsoft.RecoveryServices/vaults/replicationJobs", "properties": props}

    def operation_status(self):
        status = {"Succeeded": "Succeeded", "Failed": "Failed", "Cancelled": "Canceled"}.get(self.state, "InProgress")
        doc = {"error": None, "id": None, "name": self.name, "properties": None, "status": status,
               "startTime": util.fmt_time(self.start), "endTime": None, "percentComplete": None}
        if self.state in TERMINAL:
            doc["endTime"] = util.fmt_time(self.end)
        if self.state == "Failed":
            e = self.errors[0]["serviceErrorDetails"] if self.errors else {"code": "InternalError", "message": "The job failed."}
            doc["error"] = {"code": e["code"], "message": e["message"], "details": None}
        if self.state == "Cancelled":
            doc["error"] = {"code": "OperationCanceled", "message": "The job was cancelled.", "details": None}
        return doc

TASKS["EnableDr"] = [
    ("EnableProtectionPreflightTask", "EnableProtectionPreflightTask", "Prerequisites check", 5, "TaskDetails"),
    ("IdentifyProtectionTargetTask", "IdentifyProtectionTarget", "Identifying replication target", 10, "TaskDetails"),
    ("EnableProtectionTask", "EnableProtection", "Enable replication", 480, "TaskDetails"),
    ("StartInitialReplicationTask", "StartInitialReplication", "Starting initial replication", 35, "TaskDetails"),
]
