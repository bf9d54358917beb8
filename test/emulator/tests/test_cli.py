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
