"""Recovery points of a replicated item.

While an item is `Protected` ASR takes a crash-consistent point every
`crash_consistent_frequency_minutes` (5) and an application-consistent one every
`app_consistent_frequency_minutes` (the default world says hourly), keeping
`recovery_point_history_minutes` (24 h).  Points are generated lazily up to "now" on every read,
aligned to the schedule with a few seconds of deterministic jitter, and each lists the managed disks
it covers (a disk added to replication later is missing from older points: "1 of 2 disks").
Failover stops generation (points are kept for applyRecoveryPoint); commit deletes them all.
"""
from . import util


class Point:
    __slots__ = ("name", "time", "type", "disks")

    def __init__(self, name, t, kind, disks):
        self.name, self.time, self.type, self.disks = name, t, kind, disks


def schedule(start, end, crash_s, app_s, seed):
    """Schedule slots (time, type) with start < slot <= end."""
    out = []
    k = int(start // crash_s) + 1
    while k * crash_s <= end:
        slot = k * crash_s
        kind = "ApplicationConsistent" if app_s and (slot % app_s) == 0 else "CrashConsistent"
        t = slot + util.jitter("%s/%d" % (seed, k), 20.0)
        if t > end:
            break
        out.append((t, kind))
        k += 1
    return out


def catch_up(item, until):
    """Generate this item's points up to `until` (emulated) and prune by retention."""
    pol = item.policy
    crash_s = pol["crash_consistent_frequency_minutes"] * 60
    app_s = pol["app_consistent_frequency_minutes"] * 60
    if item.rp_cursor is None or until <= item.rp_cursor:
        return
    if item.replicating():
        for t, kind in schedule(item.rp_cursor, until, crash_s, app_s, item.name + item.direction):
            item.rps.append(Point(util.stable_guid(item.name, item.direction, "rp", round(t, 3)), t, kind,
                                  item.disk_ids_at(t)))
        horizon = until - pol["recovery_point_history_minutes"] * 60
        if item.rps and item.rps[0].time < horizon:
            item.rps = [p for p in item.rps if p.time >= horizon]
    item.rp_cursor = until


def add_point(item, t, kind="CrashConsistent"):
    p = Point(util.new_guid(), t, kind, item.disk_ids_at(t))
    item.rps.append(p)
    return p


def find(item, name):
    for p in item.rps:
        if util.ieq(p.name, name):
            return p
    return None


def doc(item, p):
    return {
        "id": item.arm_id() + "/recoveryPoints/" + p.name,
        "name": p.name,
        "type": "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/"
                "replicationProtectedItems/recoveryPoints",
        "location": None,
        "properties": {
            "recoveryPointTime": util.fmt_time(p.time),
            "recoveryPointType": p.type,
            "providerSpecificDetails": {"instanceType": "A2A", "recoveryPointSyncType": "PerVmRecoveryPoint",
                                        "disks": list(p.disks)},
        },
    }
