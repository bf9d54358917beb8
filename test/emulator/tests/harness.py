"""Test harness: start/stop emulators on free ports, talk to the control API, raw HTTPS helpers,
and Microsoft SDK clients pointed at an emulator (trusting its CA through the public
`connection_verify` option; no patching).

Every emulator started here is killed at exit (atexit), and also dies with its parent thanks to
PR_SET_PDEATHSIG, so a crashed or killed test run leaves no process behind.
"""
import atexit
import ctypes
import http.client
import json
import logging
import os
import select
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMULATOR = os.path.join(HERE, "asr-emulator")
PYTHON = "/usr/bin/python3"
_RUNNING = []
# the SDK's deserializer warns about ASR's {"instanceType": "TaskDetails"} task details (real shape)
logging.getLogger("azure.mgmt.recoveryservicessiterecovery").setLevel(logging.ERROR)
_SEED = {"dir": None}
SEED_FILES = ("ca.pem", "ca.key", "server.pem", "server.key")


def _pdeathsig():
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except Exception:
        pass
    os.setsid()


def _cleanup():
    for emu in list(_RUNNING):
        emu.stop()
    if _SEED["dir"]:
        shutil.rmtree(_SEED["dir"], ignore_errors=True)


atexit.register(_cleanup)


class Emulator:
    def __init__(self, scale=3000, args=(), world=None):
        self.dir = tempfile.mkdtemp(prefix="asr-emu-test-")
        if _SEED["dir"]:
            for name in os.listdir(_SEED["dir"]):
                shutil.copy2(os.path.join(_SEED["dir"], name), self.dir)
        cmd = [PYTHON, EMULATOR, "--state-dir", self.dir, "--time-scale", str(scale)] + list(args)
        if world:
            cmd += ["--world", world]
        self.stderr = open(os.path.join(self.dir, "stderr.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, preexec_fn=_pdeathsig)
        _RUNNING.append(self)
        line = b""
        deadline = time.time() + 20
        while not line.endswith(b"\n"):
            r, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.time()))
            if not r:
                self.stop()
                raise RuntimeError("emulator did not become ready")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                self.stop()
                with open(os.path.join(self.dir, "stderr.log"), "rb") as f:
                    raise RuntimeError("emulator exited: %s" % f.read().decode(errors="replace")[-2000:])
            line += chunk
        self.ready = json.loads(line.decode())
        if _SEED["dir"] is None:
            seed = tempfile.mkdtemp(prefix="asr-emu-seed-")
            for name in os.listdir(self.dir):
                if name in SEED_FILES or name.startswith("sp-"):
                    shutil.copy2(os.path.join(self.dir, name), seed)
            _SEED["dir"] = seed
        self.ssl = ssl.create_default_context(cafile=self.ready["ca_file"])

    # ------------------------------------------------------------------ lifecycle
    def stop(self):
        if self in _RUNNING:
            _RUNNING.remove(self)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ control API
    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.ready["control_endpoint"] + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise AssertionError("control %s %s -> %d %s" % (method, path, e.code, e.read()))

    def fault(self, **rule):
        return self.control("POST", "/faults", rule)["id"]

    def requests(self, **q):
        qs = urllib.parse.urlencode({k: v for k, v in q.items() if v is not None})
        return self.control("GET", "/requests" + ("?" + qs if qs else ""))["requests"]

    def reset(self):
        self.control("POST", "/reset", {})

    def state(self):
        return self.control("GET", "/state")

    # ------------------------------------------------------------------ raw HTTP
    @property
    def vault_path(self):
        r = self.ready
        return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.RecoveryServices/vaults/%s" % (
            r["subscription_id"], r["resource_group"], r["vault"])

    def https(self, method, path, body=None, headers=None, host_port=None, raw_body=None, timeout=30):
        """Returns (status, headers dict lower-case, body bytes)."""
        u = urllib.parse.urlsplit(self.ready["arm_endpoint"])
        host, port = (host_port or (u.hostname, u.port))
        conn = http.client.HTTPSConnection(host, port, context=self.ssl, timeout=timeout)
        h = dict(headers or {})
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        conn.close()
        return out

    def token(self, client_id=None, secret=None, tenant=None, scope="https://management.azure.com/.default"):
        r = self.ready
        form = {"grant_type": "client_credentials", "client_id": client_id or r["client_id"],
                "client_secret": secret or r["client_secret"], "scope": scope}
        st, h, b = self.https("POST", "/%s/oauth2/v2.0/token" % (tenant or r["tenant_id"]),
                              raw_body=urllib.parse.urlencode(form).encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert st == 200, b
        return json.loads(b)["access_token"]

    def arm(self, method, path, body=None, token=None, headers=None, api_version="2022-10-01", **kw):
        tok = token if token is not None else self.token()
        h = {"Authorization": "Bearer " + tok} if tok else {}
        h.update(headers or {})
        sep = "&" if "?" in path else "?"
        if api_version:
            path = path + sep + "api-version=" + api_version
        st, hd, b = self.https(method, path, body, h, **kw)
        try:
            doc = json.loads(b) if b else None
        except ValueError:
            doc = b
        return st, hd, doc

    # ------------------------------------------------------------------ SDK
    def credential(self, kind="secret", **kw):
        from azure.identity import CertificateCredential, ClientSecretCredential
        r = self.ready
        common = dict(authority=r["login_endpoint"], instance_discovery=False, connection_verify=r["ca_file"])
        common.update(kw)
        if kind == "secret":
            return ClientSecretCredential(r["tenant_id"], r["client_id"], r["client_secret"], **common)
        if kind == "pem":
            return CertificateCredential(r["tenant_id"], r["cert_client_id"], certificate_path=r["certificate_file"], **common)
        if kind == "pfx":
            return CertificateCredential(r["tenant_id"], r["cert_client_id"], certificate_path=r["certificate_pfx"],
                                         password=r["certificate_password"], **common)
        raise ValueError(kind)

    def sdk(self, kind="secret", polling_interval=0.05, **kw):
        from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
        r = self.ready
        return SiteRecoveryManagementClient(self.credential(kind), r["subscription_id"], r["resource_group"], r["vault"],
                                            base_url=r["arm_endpoint"], connection_verify=r["ca_file"],
                                            polling_interval=polling_interval, **kw)


def parts(arm_id):
    """(fabric, container, item) from an item ARM id."""
    s = arm_id.split("/")
    low = [x.lower() for x in s]
    return (s[low.index("replicationfabrics") + 1], s[low.index("replicationprotectioncontainers") + 1],
            s[low.index("replicatedprotecteditems") + 1] if "replicatedprotecteditems" in low
            else s[low.index("replicationprotecteditems") + 1])


def new_id():
    return str(uuid.uuid4())
