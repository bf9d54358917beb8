"""The A2A replication state machine of asr-rest.md section 9.

`STATES` gives, per protectionState, its description, activeLocation and allowedOperations as the
real service reports them (section 7.4).  `ACTIONS` maps each item action (URL segment) to the
allowedOperations entry that gates it, the job scenario it starts and the state it leads to when
the job succeeds.  The engine asks `allowed()` before every action and `after()` when a job ends;
while a job runs on the item, allowedOperations is reported empty.
"""

STATES = {
    "InitialReplicationInProgress": ("Initial replication is in progress", "Primary", ["DisableProtection"]),
    "InitialReplicationRecoveryCompletionPending": ("Waiting for first recovery point", "Primary", ["DisableProtection"]),
    "Protected": ("Protected", "Primary", ["UnplannedFailover", "DisableProtection", "TestFailover"]),
    "UnplannedFailoverCommitPendingStatesBegin": ("Failover completed", "Recovery",
                                                  ["CompleteMigration", "Commit", "DisableProtection", "ChangePit"]),
    "UnplannedFailoverCommitted": ("Failover committed", "Recovery",
                                   ["CompleteMigration", "DisableProtection", "SwitchProtection"]),
}
TFO_PENDING_OPS = ["TestFailoverCleanup"]

# vm protection state shown in providerSpecificDetails (PowerShell's view)
VM_STATES = {
    "InitialReplicationInProgress": ("UnprotectedStatesBegin", "Enabling protection"),
    "InitialReplicationRecoveryCompletionPending": ("UnprotectedStatesBegin", "Enabling protection"),
    "Protected": ("Protected", "Protected"),
    "UnplannedFailoverCommitPendingStatesBegin": ("UnplannedFailoverCommitPendingStatesBegin", "Failover completed"),
    "UnplannedFailoverCommitted": ("UnplannedFailoverCommitted", "Failover committed"),
}

# action segment -> (allowedOperations gate, scenarioName, friendlyName)
ACTIONS = {
    "unplannedfailover": ("UnplannedFailover", "UnplannedFailover", "Failover"),
    "testfailover": ("TestFailover", "TestFailover", "Test failover"),
    "testfailovercleanup": ("TestFailoverCleanup", "TestFailoverCleanup", "Cleanup test failover"),
    "applyrecoverypoint": ("ChangePit", "ApplyRecoveryPoint", "Change recovery point"),
    "failovercommit": ("Commit", "CommitFailover", "Commit"),
    "failovercancel": ("CancelFailover", "CancelFailover", "Cancel failover"),
    "reprotect": ("ReverseReplicate", "ReverseReplication", "Reprotect"),
    "repairreplication": ("RepairReplication", "RepairReplication", "Resynchronize replication"),
    "plannedfailover": ("PlannedFailover", "PlannedFailover", "Planned failover"),
    "remove": ("DisableProtection", "DisableDr", "Disable replication"),
    "switchprotection": ("SwitchProtection", "SwitchReplicationGroupProtection", "Reprotect"),
    "purge": (None, "DisableDr", "Disable replication"),     # DELETE RPI: force delete, any state
}


def describe(state):
    return STATES.get(state, (state, "Primary", []))


def allowed_operations(state, tfo_state, job_running):
    if job_running:
        return []
    if state == "Protected" and tfo_state == "WaitingForCompletion":
        return list(TFO_PENDING_OPS)
    return list(describe(state)[2])


def allowed(state, tfo_state, job_running, gate):
    return gate in allowed_operations(state, tfo_state, job_running)


def after(scenario, state):
    """protectionState after a successful job of `scenario` started in `state`."""
    return {
        "UnplannedFailover": "UnplannedFailoverCommitPendingStatesBegin",
        "CommitFailover": "UnplannedFailoverCommitted",
        "ApplyRecoveryPoint": state,
        "TestFailover": state,
        "TestFailoverCleanup": state,
        "SwitchReplicationGroupProtection": "InitialReplicationInProgress",
    }.get(scenario, state)
