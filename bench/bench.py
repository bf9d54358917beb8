#!/usr/bin/python3
"""bench.py: asr against Microsoft's SDK on the ASR emulator, side by side.

Run through bench/run (which builds and installs asr and stages the tree);
needs PG_BIN (PostgreSQL 15 binaries with asr installed) in the environment.

For each N: one emulator with N replicated VMs, ARM latency, a time scale,
Azure's token buckets (writes 200 + 10/s, reads 250 + 25/s per
subscription); then
  (a) asr: one "SELECT asr_failover(name) FROM asr_items" for all N VMs,
      then wait until every job has ended;
  (b) sdk_side.py: begin_unplanned_failover for every VM, wait on every
      poller (threads);
with the emulator reset (state, buckets, request log) between the sides.
Prints a table, writes OUT/results.csv, OUT/jobs-N.png (jobs finished over
time) and, with --extras, enqueue rate (pgbench), idle CPU and worker RSS
with 100 / 1,000 / 10,000 tracked jobs.
"""
import argparse
import copy
import csv
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
PY = "/usr/bin/python3"
FAILOVER_SECONDS = 140          # the emulator's (and Azure's typical) A2A failover
WRITE_BUCKET, WRITE_RATE = 200, 10
READ_BUCKET, READ_RATE = 250, 25


def log(msg):
    print("--> %s" % msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- emulator
class Emulator:
    def __init__(self, state_dir, world, scale, latency_ms):
        self.dir = state_dir
        os.makedirs(state_dir, exist_ok=True)
        ready = os.path.join(state_dir, "ready.json")
        if os.path.exists(ready):
            os.unlink(ready)
        self.proc = subprocess.Popen(
            [os.path.join(TOP, "test/emulator/asr-emulator"), "--state-dir", state_dir, "--world", world,
             "--time-scale", str(scale), "--latency-ms", str(latency_ms)],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(state_dir, "emulator.log"), "w"))
        for _ in range(1200):
            if os.path.exists(ready):
                break
            if self.proc.poll() is not None:
                sys.exit("emulator exited; see %s/emulator.log" % state_dir)
            time.sleep(0.1)
        else:
            sys.exit("emulator not ready after 120 s")
        self.ready_file = ready
        self.ready = json.load(open(ready))
        self.latency_ms = latency_ms

    def control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.ready["control_endpoint"] + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read() or b"{}")

    def refill(self):
        """Azure's limits, buckets full."""
        self.control("POST", "/throttle", {"reads": [READ_BUCKET, READ_RATE], "writes": [WRITE_BUCKET, WRITE_RATE]})

    def wait_quiet(self, quiet_s=3.0, timeout=1800):
        """Until no ARM request has arrived for quiet_s: asr_sync returns
        once the items are stored, while the worker goes on reading every
        item's recovery points; that must not run into the measured span."""
        deadline = time.time() + timeout
        seq = 0
        last = time.time()
        while time.time() < deadline:
            new = self.control("GET", "/requests?listener=arm&since=%d" % seq)["requests"]
            if new:
                seq = max(q["seq"] for q in new)
                last = time.time()
            elif time.time() - last >= quiet_s:
                return
            time.sleep(0.5)
        raise RuntimeError("the emulator never went quiet")

    def arm_requests(self):
        return self.control("GET", "/requests?listener=arm")["requests"]

    def cpu(self):
        return proc_cpu(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def make_world(n, path):
    """The default world with its VMs replaced by N single-disk copies of
    app-vm-01 (vm-00001 ...), and one hour of recovery points instead of
    24 (only the setup's sync reads them)."""
    w = json.load(open(os.path.join(TOP, "test/emulator/worlds/default.json")))
    v = w["subscriptions"][0]["vaults"][0]
    tmpl = next(vm for vm in v["vms"] if len(vm["disks"]) == 1)
    vms = []
    for i in range(1, n + 1):
        vm = copy.deepcopy(tmpl)
        vm["name"] = "vm-%05d" % i
        vm["item_name"] = hashlib.sha256(vm["name"].encode()).hexdigest()[:43]
        vm["disks"][0]["name"] = "%s_OsDisk_1_%s" % (vm["name"], hashlib.md5(vm["name"].encode()).hexdigest())
        vms.append(vm)
    v["vms"] = vms
    for p in v["policies"]:
        p["recovery_point_history_minutes"] = 60
    json.dump(w, open(path, "w"))


# ---------------------------------------------------------------- processes
def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_mem(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k = line.split(":")[0]
            if k in ("VmHWM", "VmRSS", "RssAnon"):
                out[k] = int(line.split()[1])
    return out


# ---------------------------------------------------------------- cluster
class Cluster:
    def __init__(self, path, conf):
        self.path = path
        # a crashing worker leaves a core file in the data directory
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        except (ValueError, OSError):
            pass
        subprocess.run([os.path.join(TOP, "test/harness/cluster"), "start", path, "bench"] + conf, check=True,
                       stdout=subprocess.DEVNULL)
        self.env = dict(os.environ)
        for line in open(os.path.join(path, "env")):
            k, v = line.replace("export ", "").strip().split("=", 1)
            self.env[k] = v.strip("'")

    def sql(self, query, timeout=1800):
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-F", "\t",
                            "-c", query], env=self.env, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("psql: %s\n%s" % (query[:200], r.stderr))
        return r.stdout.strip()

    def worker_pid(self):
        for _ in range(300):
            pid = self.sql("SELECT pid FROM asr_worker_status")
            if pid:
                return int(pid)
            time.sleep(0.1)
        raise RuntimeError("no worker")

    def stop(self):
        subprocess.run([os.path.join(TOP, "test/harness/cluster"), "stop", self.path])


def memory_contexts(cl, pid, path):
    """The worker's memory contexts (pg_log_backend_memory_contexts), the
    largest first, written to path; returns the five largest."""
    log_file = os.path.join(cl.path, "server.log")
    start = os.path.getsize(log_file)
    cl.sql("SELECT pg_log_backend_memory_contexts(%d)" % pid)
    time.sleep(2)
    with open(log_file) as f:
        f.seek(start)
        lines = [line for line in f if "[%d]" % pid in line and "total" in line]
    def size(line):
        try:
            return int(line.split(" total in ")[0].split()[-1]) if " total in " in line \
                else int(line.split(" bytes in ")[0].split()[-1])
        except (ValueError, IndexError):
            return 0
    lines.sort(key=size, reverse=True)
    with open(path, "w") as f:
        f.writelines(lines)
    return [line.split("LOG:", 1)[-1].strip()[:160] for line in lines[:5]]


def configure(cl, r):
    cl.sql("""
CREATE SERVER azure FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id '%(tenant_id)s',
    arm_endpoint '%(arm_endpoint)s', login_endpoint '%(login_endpoint)s', imds_endpoint '%(imds_endpoint)s');
CREATE USER MAPPING FOR PUBLIC SERVER azure OPTIONS (auth 'client_secret', client_id '%(client_id)s',
    client_secret '%(client_secret)s');
SELECT asr_add_vault('dr', 'azure', '%(subscription_id)s', '%(resource_group)s', '%(vault)s');
""" % r)


def kind_of_request(q):
    """What an ARM request was for, from its path (for the breakdown)."""
    path = q["path"].lower()
    segs = path.rstrip("/").split("/")
    last = segs[-1]
    if q["method"] != "GET":
        return "%s %s" % (q["method"], last if not last.startswith("replicationjobs") else "job")
    if "operationresults" in segs:
        return "GET operationresults"
    if "replicationoperationstatus" in segs:
        return "GET operationStatus"
    if last == "replicationjobs":
        return "GET replicationJobs (list)"
    if "replicationjobs" in segs:
        return "GET replicationJobs/{job}"
    if "recoverypoints" in segs:
        return "GET recoveryPoints"
    if last == "replicationprotecteditems":
        return "GET replicationProtectedItems (list)"
    if "replicationprotecteditems" in segs:
        return "GET replicationProtectedItems/{item}"
    return "GET other"


def breakdown(reqs):
    b = {}
    for q in reqs:
        k = kind_of_request(q) + (" -> 429" if q.get("status") == 429 else "")
        b[k] = b.get(k, 0) + 1
    return dict(sorted(b.items()))


def save_log(reqs, path):
    """The side's ARM requests, one compact line each, for a closer look."""
    with open(path, "w") as f:
        for q in reqs:
            f.write(json.dumps({"time": q.get("time"), "method": q["method"], "kind": kind_of_request(q),
                                "status": q.get("status"), "path": q["path"]}) + "\n")


def count_requests(reqs):
    c = {"reads": 0, "writes": 0, "r429": 0, "w429": 0, "breakdown": breakdown(reqs)}
    for q in reqs:
        w = q["method"] != "GET"
        c["writes" if w else "reads"] += 1
        if q.get("status") == 429:
            c["w429" if w else "r429"] += 1
    return c


def job_seconds(emu, scale):
    """Median real duration of the emulator's failover jobs (emulated / scale)."""
    from datetime import datetime
    d = []
    for j in emu.control("GET", "/jobs")["jobs"]:
        s, e = j.get("startTime") or j.get("start_time"), j.get("endTime") or j.get("end_time")
        if s and e:
            f = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")[:26] + "+00:00"
                                                 if "." in t else t.replace("Z", "+00:00"))
            try:
                d.append((f(e) - f(s)).total_seconds() / scale)
            except ValueError:
                pass
    d.sort()
    return d[len(d) // 2] if d else FAILOVER_SECONDS / scale


# ---------------------------------------------------------------- sides
def run_asr(emu, n, poll, out, timeout):
    cl = Cluster(os.path.join(out, "pg-%d" % n),
                 ["asr.ca_file = '%s'" % emu.ready["ca_file"], "asr.poll_interval = %ds" % poll,
                  "log_min_messages = warning"])
    try:
        configure(cl, emu.ready)
        synced = cl.sql("SELECT asr_sync('dr', '30 min')")
        items = int(cl.sql("SELECT count(*) FROM asr_items WHERE 'UnplannedFailover' = ANY (allowed_operations)"))
        if items != n:
            raise RuntimeError("asr sees %d of %d items (sync said %s)" % (items, n, synced))
        pid = cl.worker_pid()
        emu.wait_quiet()
        before = memory_contexts(cl, pid, os.path.join(out, "worker-memory-%d-before.txt" % n))
        emu.refill()
        emu.control("DELETE", "/requests")
        cpu0, ecpu0 = proc_cpu(pid), emu.cpu()
        t0 = time.time()
        cl.sql("SELECT count(asr_failover(name)) FROM asr_items")
        t_enq = time.time() - t0
        deadline = time.time() + timeout
        while True:
            left = int(cl.sql("SELECT count(*) FROM asr_jobs WHERE finished_at IS NULL"))
            if left == 0 or time.time() > deadline:
                break
            time.sleep(0.5)
        # a worker that crashed and was restarted: its CPU and memory are lost
        crashes = sum(1 for line in open(os.path.join(cl.path, "server.log"))
                      if "asr worker" in line and "terminated by signal" in line)
        pid_now = cl.worker_pid()
        cpu = proc_cpu(pid_now) - (cpu0 if pid_now == pid else 0)
        mem = proc_mem(pid_now)
        ecpu = emu.cpu() - ecpu0
        contexts = memory_contexts(cl, pid_now, os.path.join(out, "worker-memory-%d.txt" % n))
        rows = cl.sql("SELECT state, extract(epoch FROM finished_at) - %f, coalesce(error_code, ''), "
                      "coalesce(last_error, '') FROM asr_jobs" % t0)
        done, failed, throttled = [], 0, 0
        for line in rows.splitlines():
            st, t, code, last = (line.split("\t") + ["", "", "", ""])[:4]
            if st == "succeeded":
                done.append(float(t))
            else:
                failed += 1
                if "429" in code + last or "hrottl" in code + last:
                    throttled += 1
        reqs = emu.arm_requests()
        save_log(reqs, os.path.join(out, "requests-%d-asr.jsonl" % n))
        c = count_requests(reqs)
        return dict(side="asr", n=n, wall=max(done) if done and not failed else None, done=sorted(done),
                    succeeded=len(done), failed=failed, failed_throttle=throttled, cpu=cpu,
                    hwm_kb=mem.get("VmHWM"), rss_kb=mem.get("VmRSS"), anon_kb=mem.get("RssAnon"),
                    enqueue_s=t_enq, emu_cpu=ecpu, crashes=crashes, contexts=contexts,
                    contexts_before=before, **c)
    finally:
        cl.stop()


def run_sdk(emu, n, poll, out, threads):
    res_file = os.path.join(out, "sdk-%d.json" % n)
    ecpu0 = emu.cpu()
    p = subprocess.run([PY, os.path.join(HERE, "sdk_side.py"), emu.ready_file, str(poll), res_file, str(threads)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("sdk side failed:\n" + p.stderr[-3000:])
    r = json.load(open(res_file))
    reqs = emu.arm_requests()
    save_log(reqs, os.path.join(out, "requests-%d-sdk.jsonl" % n))
    c = count_requests(reqs)
    done = sorted(r["done"].values())
    throttled = sum(1 for why in r["failed"].values() if "429" in why or "hrottl" in why)
    return dict(side="sdk", n=n, wall=max(done) if done and not r["failed"] else None, done=done,
                succeeded=len(done), failed=len(r["failed"]), failed_throttle=throttled, cpu=r["cpu_s"],
                hwm_kb=r["hwm_kb"], rss_kb=r["rss_kb"], anon_kb=None, enqueue_s=r["submitted_s"],
                emu_cpu=emu.cpu() - ecpu0, failures=r["failed"], crashes=0, **c)


def plot(n, results, path, bound):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("python3-matplotlib missing: no plot")
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in results:
        xs = [0] + r["done"]
        ax.step(xs, list(range(len(xs))), where="post", label="%s (%s)" % (
            r["side"], "%.1f s" % r["wall"] if r["wall"] else "%d failed" % r["failed"]))
    ax.axvline(bound, color="grey", linestyle="--", label="write-budget bound %.1f s" % bound)
    ax.set_xlabel("seconds since the first request")
    ax.set_ylabel("jobs finished")
    ax.set_title("Failover of %d VMs: asr vs Microsoft's SDK (emulator, Azure's limits)" % n)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def pgbench_cpu(cl, clients, script, seconds=15):
    """pgbench -c clients -T seconds of script: (transactions per second,
    transactions per CPU-second of its backends and of pgbench itself,
    their CPU time read from /proc until they exit)."""
    p = subprocess.Popen([os.path.join(PG_BIN, "pgbench"), "-n", "-c", str(clients), "-j", "2", "-T", str(seconds),
                          "-f", script], env=cl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1)
    pids = [int(x) for x in cl.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench'").split()]
    cpu = {}
    while p.poll() is None:
        for pid in pids + [p.pid]:
            try:
                cpu[pid] = proc_cpu(pid)
            except (OSError, IndexError):
                pass
        time.sleep(0.1)
    stdout, stderr = p.communicate()
    tps = [l for l in stdout.splitlines() if l.startswith("tps")]
    done = [l for l in stdout.splitlines() if l.startswith("number of transactions actually processed")]
    if p.returncode != 0 or not tps or not done or len(pids) != clients:
        raise RuntimeError("pgbench: %s %s" % (stdout[-1500:], stderr[-1500:]))
    return float(tps[0].split()[2]), int(done[0].split(":")[1].split("/")[0]) / sum(cpu.values())


# ---------------------------------------------------------------- extras
def extras(out, scale, latency):
    """Enqueue rate (pgbench), idle worker CPU, worker RSS with 100 / 1,000
    / 10,000 tracked jobs, on one cluster and an emulator with the default
    world.  10,000 items are stored with asr_item_upsert in a second vault
    ("bulk", paused while jobs are created) as copies of a synced item."""
    res = {}
    emu = Emulator(os.path.join(out, "emu-extras"), os.path.join(TOP, "test/emulator/worlds/default.json"),
                   scale, latency)
    cl = Cluster(os.path.join(out, "pg-extras"), ["asr.ca_file = '%s'" % emu.ready["ca_file"],
                                                  "log_min_messages = warning"])
    try:
        configure(cl, emu.ready)
        cl.sql("SELECT asr_sync('dr', '5 min')")
        pid = cl.worker_pid()
        time.sleep(2)
        c0 = proc_cpu(pid)
        time.sleep(20)
        res["idle_cpu_pct_0_jobs"] = (proc_cpu(pid) - c0) / 20 * 100
        res["rss_0_jobs"] = proc_mem(pid)
        cl.sql("""
BEGIN;
SELECT asr_add_vault('bulk', 'azure', '%s', 'bench-bulk', 'bench-bulk-vault');
UPDATE asr_vaults SET paused = true WHERE name = 'bulk';
COMMIT;
-- copies of the synced app-vm-01 row (a plain INSERT as superuser:
-- asr_item_upsert looks each item up by a regular expression over all
-- the vault's items, which is quadratic for 10,000 items in one call)
INSERT INTO asr_items (vault_id, name, arm_id, protection_state, protection_state_description,
                       active_location, replication_health, test_failover_state, allowed_operations,
                       primary_region, recovery_region, rpo_seconds, properties)
SELECT (SELECT vault_id FROM asr_vaults WHERE name = 'bulk'), 'bulk-' || lpad(g::text, 5, '0'),
       replace(regexp_replace(i.arm_id, '[^/]*$', md5(g::text) || 'bulkbulkbul'),
               'contoso-dr-vault', 'bench-bulk-vault'),
       protection_state, protection_state_description, active_location, replication_health,
       test_failover_state, allowed_operations, primary_region, recovery_region, rpo_seconds,
       jsonb_set(properties, '{friendlyName}', to_jsonb('bulk-' || lpad(g::text, 5, '0')))
  FROM asr_items i, generate_series(1, 10000) g
 WHERE i.name = 'app-vm-01';
""" % emu.ready["subscription_id"])
        nbulk = int(cl.sql("SELECT count(*) FROM asr_items i JOIN asr_vaults v USING (vault_id) WHERE v.name = 'bulk'"))
        res["bulk_items"] = nbulk
        # (1) enqueue: asr_failover in transactions that roll back, so that
        # the at-most-one-unfinished-job-per-item rule never refuses a call.
        # Each run starts from a vacuumed asr_jobs: 15 s of rolled-back calls
        # leave one dead job and event per call (autovacuum's work in
        # production), which would otherwise weigh on the next run.  Besides
        # the calls per second on this shared machine, the CPU time of the
        # backends and of pgbench gives the calls per CPU-second, which
        # other processes on the machine change much less.
        script = os.path.join(out, "enqueue.sql")
        open(script, "w").write("\\set i random(1, %d)\nBEGIN;\nSELECT asr_failover('bulk/bulk-' || lpad(:i::text, 5, '0'));\n"
                                "ROLLBACK;\n" % nbulk)
        for clients in (2, 4):
            cl.sql("VACUUM asr_jobs, asr_job_events")
            tps, per_cpu_s = pgbench_cpu(cl, clients, script)
            res["enqueue_pgbench_c%d_calls_per_s" % clients] = tps
            res["enqueue_pgbench_c%d_calls_per_cpu_s" % clients] = per_cpu_s
        # (2) committed enqueue: one statement, many items, and the worker
        # RSS with 100 / 1,000 / 10,000 running jobs whose next poll is a
        # day away (created paused: asr_failover, then asr_job_transition
        # to submitting and running, then next_poll_at pushed out)
        done = 0
        for target in (100, 1000, 10000):
            t = time.time()
            cl.sql("""
UPDATE asr_vaults SET paused = true WHERE name = 'bulk';
SELECT count(asr_failover('bulk/' || i.name)) FROM asr_items i JOIN asr_vaults v USING (vault_id)
 WHERE v.name = 'bulk' AND i.name > 'bulk-%05d' AND i.name <= 'bulk-%05d';
""" % (done, target))
            dt = time.time() - t
            res["enqueue_statement_%d_calls_per_s" % (target - done)] = (target - done) / dt
            cl.sql("""
SELECT count(asr_job_transition(job_id, 'submitting')) FROM asr_jobs WHERE state = 'queued';
SELECT count(asr_job_transition(job_id, 'running', azure_job => md5(job_id::text), azure_state => 'InProgress'))
  FROM asr_jobs WHERE state = 'submitting';
UPDATE asr_jobs SET next_poll_at = now() + interval '1 day' WHERE state = 'running';
UPDATE asr_vaults SET paused = false WHERE name = 'bulk';
""")
            done = target
            tracked = int(cl.sql("SELECT count(*) FROM asr_jobs WHERE state = 'running'"))
            time.sleep(15)
            res["rss_%d_jobs" % tracked] = proc_mem(pid)
        c0 = proc_cpu(pid)
        time.sleep(20)
        res["idle_cpu_pct_10000_jobs"] = (proc_cpu(pid) - c0) / 20 * 100
        res["requests_while_idle"] = len(emu.arm_requests())
    finally:
        cl.stop()
        emu.stop()
    return res


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", default="100,1000", help="comma-separated VM counts (default 100,1000)")
    ap.add_argument("--latency-ms", type=int, default=100)
    ap.add_argument("--time-scale", type=float, default=10,
                    help="emulated seconds per real second (default 10: a 140 s failover takes 14 s, "
                         "a 30 s poll interval 3 s)")
    ap.add_argument("--sdk-threads", type=int, default=32, help="threads submitting the SDK's requests")
    ap.add_argument("--sides", default="asr,sdk", help="asr, sdk or both (default)")
    ap.add_argument("--extras", action="store_true", help="also enqueue rate, idle CPU, RSS vs tracked jobs")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--timeout", type=int, default=3600)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    poll = max(1, round(30 / a.time_scale))
    rows = []
    for n in [int(x) for x in a.n.split(",") if int(x) > 0]:     # --n 0: extras only
        world = os.path.join(a.out, "world-%d.json" % n)
        make_world(n, world)
        log("N=%d: starting the emulator" % n)
        emu = Emulator(os.path.join(a.out, "emu-%d" % n), world, a.time_scale, a.latency_ms)
        sides = a.sides.split(",")
        res = []
        try:
            if "asr" in sides:
                log("N=%d: asr side" % n)
                res.append(run_asr(emu, n, poll, a.out, a.timeout))
                res[-1]["job_s"] = job_seconds(emu, a.time_scale)
                emu.control("POST", "/reset")
                emu.control("POST", "/config", {"latency_ms": a.latency_ms})
                emu.refill()
            if "sdk" in sides:
                log("N=%d: SDK side" % n)
                res.append(run_sdk(emu, n, poll, a.out, a.sdk_threads))
                res[-1]["job_s"] = job_seconds(emu, a.time_scale)
        finally:
            emu.stop()
        job = res[0]["job_s"]
        bound = max(0, n - WRITE_BUCKET) / WRITE_RATE + job + poll
        for r in res:
            r["bound"] = bound
            r["ratio"] = r["wall"] / bound if r["wall"] else None
            rows.append(r)
        plot(n, res, os.path.join(a.out, "jobs-%d.png" % n), bound)
        for r in res:
            if r.get("failures"):
                log("SDK failures (first 5): %s" % list(r["failures"].items())[:5])
    cols = ["n", "side", "wall", "bound", "ratio", "succeeded", "failed", "failed_throttle", "reads", "writes",
            "r429", "w429", "cpu", "hwm_kb", "rss_kb", "anon_kb", "enqueue_s", "emu_cpu", "job_s", "crashes"]
    with open(os.path.join(a.out, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow([("%.3f" % r[c]) if isinstance(r.get(c), float) else r.get(c) for c in cols])
    print("machine: %s, %d cores, %s; latency %d ms per ARM call, time scale %g (failover %.1f s, poll %d s)"
          % (platform.node(), os.cpu_count(), platform.platform(), a.latency_ms, a.time_scale,
             FAILOVER_SECONDS / a.time_scale, poll))
    print("%6s %-4s %8s %7s %6s %6s %6s %7s %7s %6s %6s %6s %7s %8s" % (
        "N", "side", "wall s", "bound s", "ratio", "ok", "failed", "reads", "writes", "429r", "429w", "cpu s",
        "peakMB", "reads/job"))
    for r in rows:
        print("%6d %-4s %8s %7.1f %6s %6d %6d %7d %7d %6d %6d %6.1f %7.1f %8.2f" % (
            r["n"], r["side"], "%.1f" % r["wall"] if r["wall"] else "-", r["bound"],
            "%.3f" % r["ratio"] if r["ratio"] else "-", r["succeeded"], r["failed"], r["reads"], r["writes"],
            r["r429"], r["w429"], r["cpu"], (r["hwm_kb"] or 0) / 1024, r["reads"] / max(1, r["n"])))
    for r in rows:
        for ctx in (r.get("contexts_before") or [])[:2]:
            print("N=%d %s worker memory before the clock: %s" % (r["n"], r["side"], ctx))
        for ctx in r.get("contexts") or []:
            print("N=%d %s worker memory: %s" % (r["n"], r["side"], ctx))
        if r["crashes"]:
            print("N=%d %s: the worker crashed %d times (see server.log); CPU and RSS are the restarted worker's"
                  % (r["n"], r["side"], r["crashes"]))
        print("N=%d %s requests: %s" % (r["n"], r["side"], ", ".join("%s %d" % kv for kv in r["breakdown"].items())))
    json.dump(rows, open(os.path.join(a.out, "runs.json"), "w"), indent=1)
    by_n = {}
    for r in rows:
        by_n.setdefault(r["n"], {})[r["side"]] = r
    for n, d in by_n.items():
        ra, rs = d.get("asr"), d.get("sdk")
        if ra and rs:
            print("N=%d: SDK/asr wall %s, SDK/asr reads %.1fx" % (
                n, "%.2fx" % (rs["wall"] / ra["wall"]) if ra["wall"] and rs["wall"] else "-",
                rs["reads"] / max(1, ra["reads"])))
    if a.extras:
        log("extras: enqueue rate, idle CPU, RSS with tracked jobs")
        ex = extras(a.out, a.time_scale, a.latency_ms)
        json.dump(ex, open(os.path.join(a.out, "extras.json"), "w"), indent=1)
        for k, v in ex.items():
            print("%-40s %s" % (k, v))
    # one "test" per N: both sides completed with every job succeeded (and
    # the worker never crashed)
    good = [n for n, d in by_n.items()
            if all(r["failed"] == 0 and r["succeeded"] == r["n"] and not r["crashes"] for r in d.values())]
    bad = len(by_n) - len(good)
    print("bench: %d passed, %d failed" % (len(good), bad))
    sys.exit(0 if bad == 0 else 1)


if __name__ == "__main__":
    main()
