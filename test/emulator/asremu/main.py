"""Command line: parse options, create certificates and listeners, write ready.json, run until SIGTERM."""
import argparse
import json
import os
import signal
import sys
import threading

from . import certs, server
from .app import Emulator
from .world import World

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DESCRIPTION = """Emulator of the Azure endpoints used by the asr extension: Entra ID token endpoint,
IMDS managed-identity endpoint, and ARM for Azure Site Recovery (A2A), with a control API for faults.

Start:   test/emulator/asr-emulator --state-dir /tmp/asr-emu
It prints one JSON line (also written atomically to STATE_DIR/ready.json) once it listens:
pid, arm_endpoint, login_endpoint, imds_endpoint, control_endpoint, ca_file, tenant_id,
subscription_id, resource_group, vault, client_id, client_secret, cert_client_id, certificate_file,
certificate_pfx, certificate_password, managed_identity_client_id, state_dir, world, time_scale.
Stop with SIGTERM or SIGINT.  See test/emulator/README.md for the control API and fault catalogue."""


def parse_args(argv):
    p = argparse.ArgumentParser(prog="asr-emulator", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state-dir", required=True, help="directory for the CA, certificates, logs and ready.json")
    p.add_argument("--world", default=os.path.join(HERE, "worlds", "default.json"), help="world file (JSON)")
    p.add_argument("--time-scale", type=float, default=60.0,
                   help="emulated seconds per real second (default 60: a 2-minute failover takes 2 s)")
    p.add_argument("--arm-port", type=int, default=0, help="HTTPS port for ARM and login (0 = any free port)")
    p.add_argument("--imds-port", type=int, default=0, help="plain-http port for IMDS (0 = any free port)")
    p.add_argument("--control-port", type=int, default=0, help="plain-http port for the control API (0 = any)")
    p.add_argument("--latency-ms", type=int, default=0, help="added latency per request")
    p.add_argument("--retry-after", type=int, default=None,
                   help="Retry-After seconds on 202s and polls (default: 30 s scaled by --time-scale, at least 1)")
    p.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(state_dir, exist_ok=True)
    ready_path = os.path.join(state_dir, "ready.json")
    if os.path.exists(ready_path):
        os.unlink(ready_path)
    ca_pem, ca_key = certs.ensure_ca(state_dir)
    crt, key = certs.ensure_server_cert(state_dir, ca_pem, ca_key)
    world = World(args.world, state_dir)

    host = args.host
    # bind first so that the URLs can carry the real ports
    tls = server.tls_context(crt, key)
    urls = {}
    holder = {}

    class Lazy:
        def __getattr__(self, name):
            return getattr(holder["emu"], name)
    lazy = Lazy()
    https = server.start(host, args.arm_port, lazy, "https", tls)
    imds = server.start(host, args.imds_port, lazy, "imds")
    control = server.start(host, args.control_port, lazy, "control")
    arm_port = https.server_address[1]
    urls["arm_endpoint"] = "https://%s:%d" % (host, arm_port)
    urls["login_endpoint"] = urls["arm_endpoint"]
    urls["imds_endpoint"] = "http://%s:%d" % (host, imds.server_address[1])
    urls["control_endpoint"] = "http://%s:%d" % (host, control.server_address[1])
    emu = Emulator(world, state_dir, args.time_scale, urls,
                   ["%s:%d" % (host, arm_port), "localhost:%d" % arm_port], args.latency_ms, args.retry_after)
    holder["emu"] = emu

    ready = {"pid": os.getpid()}
    ready.update(urls)
    ready["ca_file"] = ca_pem
    ready.update(world.first())
    ready.update({"state_dir": state_dir, "world": world.path, "time_scale": args.time_scale,
                  "request_log": os.path.join(state_dir, "requests.jsonl")})
    tmp = ready_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ready, f, indent=2)
    os.replace(tmp, ready_path)
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(3600):
        pass
    for srv in (https, imds, control):
        srv.shutdown()
        srv.server_close()
    try:
        os.unlink(ready_path)
    except OSError:
        pass
    return 0
