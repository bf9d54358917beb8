"""The start command's contract: --help, ready.json (atomic, complete), speed, clean SIGTERM exit,
and the certificate SANs."""
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest

from .harness import EMULATOR, PYTHON, Emulator

FIELDS = ("pid", "arm_endpoint", "login_endpoint", "imds_endpoint", "control_endpoint", "ca_file", "tenant_id",
          "subscription_id", "resource_group", "vault", "client_id", "client_secret", "cert_client_id",
          "certificate_file", "certificate_pfx", "certificate_password", "managed_identity_client_id")


class Cli(unittest.TestCase):
    def test_help_documents_options(self):
        out = subprocess.run([EMULATOR, "--help"], stdout=subprocess.PIPE, check=True).stdout.decode()
        for opt in ("--state-dir", "--world", "--time-scale", "--arm-port", "--imds-port", "--control-port",
                    "--latency-ms", "ready.json", "README"):
            self.assertIn(opt, out)

    def test_ready_json_and_sigterm(self):
        t = time.time()
        emu = Emulator(scale=60)
        elapsed = time.time() - t
        try:
            self.assertLess(elapsed, 1.5)
            path = os.path.join(emu.dir, "ready.json")
            with open(path) as f:
                ready = json.load(f)
            self.assertEqual(ready, emu.ready)
            for k in FIELDS:
                self.assertTrue(ready.get(k), k)
            self.assertTrue(ready["arm_endpoint"].startswith("https://127.0.0.1:"))
            self.assertTrue(ready["imds_endpoint"].startswith("http://127.0.0.1:"))
            self.assertTrue(os.path.isabs(ready["ca_file"]))
            self.assertEqual(ready["pid"], emu.proc.pid)
            pem = open(ready["certificate_file"]).read()
            self.assertIn("PRIVATE KEY", pem)
            self.assertIn("BEGIN CERTIFICATE", pem)
            self.assertFalse([n for n in os.listdir(emu.dir) if n.endswith(".tmp")])
            san = subprocess.run(["openssl", "x509", "-in", os.path.join(emu.dir, "server.pem"), "-noout", "-ext",
                                  "subjectAltName"], stdout=subprocess.PIPE, check=True).stdout.decode()
            self.assertIn("IP Address:127.0.0.1", san)
            self.assertIn("DNS:localhost", san)
            self.assertNotIn("127.0.0.2", san)
            emu.proc.send_signal(signal.SIGTERM)
            self.assertEqual(emu.proc.wait(10), 0)
            self.assertFalse(os.path.exists(path))
        finally:
            emu.stop()

    def test_fixed_ports_and_state_dir_required(self):
        r = subprocess.run([PYTHON, EMULATOR], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"--state-dir", r.stderr)
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        emu = Emulator(scale=60, args=["--control-port", str(port)])
        try:
            self.assertEqual(emu.ready["control_endpoint"], "http://127.0.0.1:%d" % port)
            self.assertTrue(emu.control("GET", "/health")["ok"])
        finally:
            emu.stop()

    def test_purge_deletes_item(self):
        emu = Emulator(scale=3000)
        try:
            c = emu.sdk()
            it = [i for i in c.replication_protected_items.list() if i.properties.friendly_name == "web-vm-01"][0]
            from .harness import parts
            c.replication_protected_items.begin_purge(*parts(it.id)).result()
            self.assertEqual(len(list(c.replication_protected_items.list())), 2)
        finally:
            emu.stop()


if __name__ == "__main__":
    unittest.main()


class CustomWorld(unittest.TestCase):
    """A second tenant and subscription, and RBAC on the first subscription."""

    def test_rbac_and_wrong_tenant(self):
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        w = json.load(open(os.path.join(here, "worlds", "default.json")))
        sub = w["subscriptions"][0]
        cert_sp = w["service_principals"][1]
        sub["principals"] = [cert_sp["object_id"]]
        w["tenants"].append({"id": "0c1a4f35-2b9e-4a57-9d7c-1e4b8f3a6d21", "domain": "fabrikam.onmicrosoft.com"})
        w["service_principals"].append({"name": "fabrikam-sp", "tenant": "0c1a4f35-2b9e-4a57-9d7c-1e4b8f3a6d21",
                                        "client_id": "9a7e1c52-3f4b-4d8e-b6a1-2c5d7e9f0a13",
                                        "object_id": "5e2d8b71-6c3a-4f9e-8d1b-7a4c2e6f9b30", "secret": "fabrikam-secret"})
        other = json.loads(json.dumps(sub))
        other["id"] = "2b6f9d13-8e4c-4a7b-9f2d-6c1e3a5b7d90"
        other["tenant"] = "0c1a4f35-2b9e-4a57-9d7c-1e4b8f3a6d21"
        other.pop("principals")
        w["subscriptions"].append(other)
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(w, f)
        emu = Emulator(scale=60, world=path)
        try:
            st, _, doc = emu.arm("GET", emu.vault_path + "/replicationProtectedItems")
            self.assertEqual((st, doc["error"]["code"]), (403, "AuthorizationFailed"))
            tok = emu.credential("pem").get_token("https://management.azure.com/.default").token
            self.assertEqual(emu.arm("GET", emu.vault_path + "/replicationProtectedItems", token=tok)[0], 200)
            other_path = emu.vault_path.replace(sub["id"], other["id"])
            st, _, doc = emu.arm("GET", other_path + "/replicationProtectedItems", token=tok)
            self.assertEqual((st, doc["error"]["code"]), (401, "InvalidAuthenticationTokenTenant"))
            ftok = emu.token(client_id="9a7e1c52-3f4b-4d8e-b6a1-2c5d7e9f0a13", secret="fabrikam-secret",
                             tenant="fabrikam.onmicrosoft.com")
            st, _, doc = emu.arm("GET", other_path + "/replicationProtectedItems", token=ftok)
            self.assertEqual((st, len(doc["value"])), (200, 3))
        finally:
            emu.stop()
            os.unlink(path)
