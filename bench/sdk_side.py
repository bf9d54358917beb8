#!/usr/bin/python3
"""sdk_side.py: the script a user would write with Microsoft's SDK instead of asr.

Fails over every listed VM of the vault to the latest point and waits until
all jobs end, concurrently: begin_unplanned_failover from a pool of threads,
each poller polling in its own thread (azure-core's LROPoller), the main
thread waiting on every poller.  Only public SDK options are used; the
SDK's own retry policy (10 retries, honouring Retry-After on 429) and LRO
polling (Retry-After when sent, else polling_interval) are left as they are.
polling_interval is the SDK's default of 30 s divided by the emulator's time
scale, like every other duration of the run.

    sdk_side.py READY_JSON POLLING_INTERVAL OUT_JSON [SUBMIT_THREADS]

Before the clock starts it lists the items (the user needs their ids; asr
read them in its sync before its clock starts too), then clears the
emulator's request log and refills its token buckets.  Writes a JSON
document with the timings, per-job outcome and the process's CPU and peak
RSS.
"""
import json
import resource
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.recoveryservicessiterecovery import models as M


def control(ready, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(ready["control_endpoint"] + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"{}")


def parts(arm_id):
    s = arm_id.split("/")
    low = [x.lower() for x in s]
    return (s[low.index("replicationfabrics") + 1], s[low.index("replicationprotectioncontainers") + 1],
            s[low.index("replicationprotecteditems") + 1])


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def proc_status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    ready = json.load(open(sys.argv[1]))
    interval = float(sys.argv[2])
    out = sys.argv[3]
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 32

    cred = ClientSecretCredential(ready["tenant_id"], ready["client_id"], ready["client_secret"],
                                  authority=ready["login_endpoint"], instance_discovery=False,
                                  connection_verify=ready["ca_file"])
    client = SiteRecoveryManagementClient(cred, ready["subscription_id"], ready["resource_group"],
                                          ready["vault"], base_url=ready["arm_endpoint"],
                                          connection_verify=ready["ca_file"], polling_interval=interval)
    items = [it for it in client.replication_protected_items.list()
             if "UnplannedFailover" in (it.properties.allowed_operations or [])]
    body = M.UnplannedFailoverInput(properties=M.UnplannedFailoverInputProperties(
        failover_direction="PrimaryToRecovery", source_site_operations="NotRequired",
        provider_specific_details=M.A2AUnplannedFailoverInput()))

    # the clock starts here, with an empty request log and full buckets
    control(ready, "DELETE", "/requests")
    control(ready, "POST", "/throttle", {"scale": 1})
    cpu0 = cpu_seconds()
    t0 = time.time()
    done = {}
    failed = {}
    ended = {}
    lock = threading.Lock()

    def record(name, ok, why=None):
        with lock:
            if ok:
                done[name] = ended.get(name, time.time() - t0)
            else:
                failed[name] = why

    def submit(it):
        name = it.properties.friendly_name
        try:
            poller = client.replication_protected_items.begin_unplanned_failover(*parts(it.id), body)
        except HttpResponseError as e:
            record(name, False, "submit %s %s" % (e.status_code, getattr(e.error, "code", None)))
            return None
        # the poller's own thread calls this when the job ends
        poller.add_done_callback(lambda _m, n=name: ended.setdefault(n, time.time() - t0))
        return name, poller

    with ThreadPoolExecutor(max_workers=min(threads, max(1, len(items)))) as pool:
        pollers = [p for p in pool.map(submit, items) if p is not None]
    t_submitted = time.time() - t0
    for name, poller in pollers:
        try:
            res = poller.result()
            if res is not None and res.properties.active_location == "Recovery":
                record(name, True)
            else:
                record(name, False, "final state %s" % (res and res.properties.protection_state))
        except HttpResponseError as e:
            record(name, False, "poll %s %s" % (e.status_code, getattr(e.error, "code", None)))
        except Exception as e:      # noqa: BLE001 - any poller failure is a failed job
            record(name, False, "poll %s" % type(e).__name__)
    json.dump({"items": len(items), "t0": t0, "submitted_s": t_submitted,
               "done": done, "failed": failed,
               "cpu_s": cpu_seconds() - cpu0, "hwm_kb": proc_status("VmHWM"),
               "rss_kb": proc_status("VmRSS"), "threads_peak": threading.active_count()},
              open(out, "w"))


if __name__ == "__main__":
    main()
