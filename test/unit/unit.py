#!/usr/bin/env python3
"""Unit tests of asr's token code (src/auth.c, authresp.c) and credential lookup (src/credlookup.c, fdw.c).

Started by test/unit/run-tests.  Everything secret here is a throwaway
fixture generated at run time.  Output: one line per failed check (or
every check with -v), then "unit: N passed, N failed".
"""
import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TOKEN_URL = f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
P12_PASSWORD = "unit-p12-password"
PEM_PASSWORD = "unit-pem-password"
FILE_SECRET = "unit-file-secret-Q7~x"

passed = 0
failed = 0
verbose = False


def check(name, ok, detail=None):
    global passed, failed
    if ok:
        passed += 1
        if verbose:
            print(f"ok   {name}" + (f"\n       {detail}" if detail else ""))
    else:
        failed += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""))


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def openssl(*args):
    run("openssl", *args)


def make_fixtures(d):
    """A CA, a leaf signed by it, and every broken variant the tests need."""
    os.makedirs(d)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/ca.key",
            "-out", f"{d}/ca.crt", "-days", "2", "-subj", "/CN=asr unit test CA")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", f"{d}/leaf.key")
    openssl("req", "-new", "-key", f"{d}/leaf.key", "-out", f"{d}/leaf.csr", "-subj", "/CN=asr unit test app")
    openssl("x509", "-req", "-in", f"{d}/leaf.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
            "-CAcreateserial", "-out", f"{d}/leaf.crt", "-days", "2")
    cat = lambda out, *files: open(f"{d}/{out}", "w").write("".join(open(f"{d}/{f}").read() for f in files))
    # certificate first, key in the middle, chain last: order must not matter
    cat("leaf.pem", "leaf.crt", "leaf.key", "ca.crt")
    openssl("pkcs12", "-export", "-inkey", f"{d}/leaf.key", "-in", f"{d}/leaf.crt", "-certfile", f"{d}/ca.crt",
            "-passout", f"pass:{P12_PASSWORD}", "-out", f"{d}/leaf.p12")
    openssl("pkey", "-in", f"{d}/leaf.key", "-aes256", "-passout", f"pass:{PEM_PASSWORD}", "-out", f"{d}/leaf-enc.key")
    cat("leaf-enc.pem", "leaf-enc.key", "leaf.crt")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{d}/ec.key", "-out", f"{d}/ec.crt", "-days", "2", "-subj", "/CN=asr unit ec")
    cat("ec.pem", "ec.key", "ec.crt")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", f"{d}/other.key")
    cat("mismatch.pem", "other.key", "leaf.crt")
    cat("cert-only.pem", "leaf.crt")
    open(f"{d}/garbage.bin", "wb").write(os.urandom(700))
    with open(f"{d}/secret.txt", "w") as f:
        f.write(FILE_SECRET + "\n")
    shutil.copy(f"{d}/secret.txt", f"{d}/secret-loose.txt")
    shutil.copy(f"{d}/leaf.pem", f"{d}/leaf-loose.pem")
    for name in os.listdir(d):
        os.chmod(f"{d}/{name}", 0o600)
    os.chmod(f"{d}/secret-loose.txt", 0o644)
    os.chmod(f"{d}/leaf-loose.pem", 0o640)


class Instance:
    def __init__(self, bindir, root):
        self.bindir, self.root = bindir, root
        self.data, self.sock, self.log = f"{root}/data", root, f"{root}/server.log"
        self.port = str(20000 + os.getpid() % 20000)
        run(f"{bindir}/initdb", "-D", self.data, "-A", "trust", "-U", "unit", "--no-sync")
        with open(f"{self.data}/postgresql.conf", "a") as f:
            f.write(f"listen_addresses = ''\nunix_socket_directories = '{root}'\nport = {self.port}\n"
                    "log_min_messages = debug5\nlog_min_error_statement = panic\nfsync = off\n")
        run(f"{bindir}/pg_ctl", "-D", self.data, "-l", self.log, "-w", "start")

    def sql(self, query, ok_error=False):
        p = subprocess.run([f"{self.bindir}/psql", "-X", "-q", "-At", "-F", "\x1f", "-h", self.sock,
                            "-p", self.port, "-U", "unit", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                            "-c", query], capture_output=True, text=True)
        if p.returncode != 0 and not ok_error:
            raise RuntimeError(f"{query}\n{p.stderr}")
        return p.stdout, p.stderr

    def stop(self):
        subprocess.run([f"{self.bindir}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"],
                       capture_output=True)


def b64url_decode(s):
    check("jwt part is base64url without padding", re.fullmatch(r"[A-Za-z0-9_-]+", s) is not None, s[:20])
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_jwt(label, jwt, alg, chain, fixtures):
    """Check an assertion the way Entra ID would, with python3-cryptography."""
    leaf = x509.load_pem_x509_certificate(open(f"{fixtures}/leaf.crt", "rb").read())
    ca = x509.load_pem_x509_certificate(open(f"{fixtures}/ca.crt", "rb").read())
    der = leaf.public_bytes(serialization.Encoding.DER)
    parts = jwt.split(".")
    check(f"{label}: three parts", len(parts) == 3)
    if len(parts) != 3:
        return None
    header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    sig = b64url_decode(parts[2])
    check(f"{label}: alg {alg}, typ JWT", header.get("alg") == alg and header.get("typ") == "JWT", header)
    sha1 = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
    sha256 = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    if alg == "RS256":
        check(f"{label}: x5t is the SHA-1 thumbprint", header.get("x5t") == sha1 and "x5t#S256" not in header, header)
    else:
        check(f"{label}: x5t#S256 is the SHA-256 thumbprint",
              header.get("x5t#S256") == sha256 and "x5t" not in header, header)
    if chain:
        expect = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in (leaf, ca)]
        check(f"{label}: x5c is the chain, leaf first, standard base64", header.get("x5c") == expect)
    else:
        check(f"{label}: no x5c unless asked", "x5c" not in header, header)
    signed = f"{parts[0]}.{parts[1]}".encode()
    try:
        if alg == "RS256":
            leaf.public_key().verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            leaf.public_key().verify(sig, signed, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                              salt_length=32), hashes.SHA256())
        good = True
    except Exception as e:  # noqa: BLE001
        good = False
        print(e)
    check(f"{label}: signature verified with the certificate's public key", good)
    try:
        leaf.public_key().verify(sig, signed + b"x", padding.PKCS1v15(), hashes.SHA256())
        tampered = False
    except Exception:  # noqa: BLE001
        tampered = True
    check(f"{label}: a tampered assertion does not verify", tampered)
    now = time.time()
    check(f"{label}: aud is the exact token URL", claims.get("aud") == TOKEN_URL, claims)
    check(f"{label}: iss = sub = client_id", claims.get("iss") == CLIENT_ID and claims.get("sub") == CLIENT_ID, claims)
    check(f"{label}: jti is a random UUID",
          re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                       str(claims.get("jti"))) is not None, claims)
    check(f"{label}: nbf = iat = now", claims.get("nbf") == claims.get("iat") and abs(claims["iat"] - now) < 60, claims)
    check(f"{label}: exp = iat + 600", claims.get("exp") == claims.get("iat", 0) + 600, claims)
    check(f"{label}: claims are exactly aud iss sub jti nbf iat exp",
          set(claims) == {"aud", "iss", "sub", "jti", "nbf", "iat", "exp"}, sorted(claims))
    return claims.get("jti")


def main():
    global verbose
    ap = argparse.ArgumentParser()
    ap.add_argument("--bindir", required=True)
    ap.add_argument("--module", required=True)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    verbose = args.verbose

    root = tempfile.mkdtemp(prefix="asr-unit-")
    fixtures = f"{root}/fixtures"
    make_fixtures(fixtures)
    inst = Instance(args.bindir, root)
    secrets_seen = [FILE_SECRET, P12_PASSWORD, PEM_PASSWORD]
    try:
        so = args.module
        inst.sql(f"""
            CREATE FUNCTION asr_unit_run(text) RETURNS TABLE (name text, ok boolean, detail text)
                LANGUAGE C STRICT AS '{so}', 'asr_unit_run';
            CREATE FUNCTION asr_unit_assertion(text, text, text, boolean, text, text) RETURNS text
                LANGUAGE C AS '{so}', 'asr_unit_assertion';
            CREATE FUNCTION asr_unit_lookup(text, oid) RETURNS text
                LANGUAGE C STRICT AS '{so}', 'asr_unit_lookup';
            CREATE FUNCTION asr_azure_validator(text[], oid) RETURNS void
                LANGUAGE C STRICT AS '{so}', 'asr_azure_validator';
            CREATE FOREIGN DATA WRAPPER asr_azure VALIDATOR asr_azure_validator;
            CREATE FOREIGN DATA WRAPPER other_fdw;""")

        # 1. the C scenarios
        out, _ = inst.sql(f"SELECT name, ok, coalesce(detail, '') FROM asr_unit_run('{fixtures}')")
        for line in out.splitlines():
            name, ok, detail = line.split("\x1f")
            check(f"c: {name}", ok == "t", detail)

        # 2. assertions checked by an independent verifier
        jtis = []
        cases = [("leaf.pem", None, "RS256", False), ("leaf.pem", None, "PS256", True),
                 ("leaf.p12", P12_PASSWORD, "RS256", True), ("leaf.p12", P12_PASSWORD, "PS256", False),
                 ("leaf-enc.pem", PEM_PASSWORD, "RS256", False)]
        for f, pw, alg, chain in cases:
            pwsql = "NULL" if pw is None else f"'{pw}'"
            out, _ = inst.sql(f"SELECT asr_unit_assertion('{fixtures}/{f}', {pwsql}, '{alg}', {chain}, "
                              f"'{TOKEN_URL}', '{CLIENT_ID}')")
            jwt = out.strip()
            secrets_seen.append(jwt)
            jtis.append(verify_jwt(f"jwt {f} {alg}{' x5c' if chain else ''}", jwt, alg, chain, fixtures))
        check("jwt: every assertion has its own jti", len(set(jtis)) == len(jtis), jtis)

        # 3. the credential lookup, as the worker does it
        inst.sql(f"""
            CREATE ROLE worker;
            CREATE SERVER s_cloud FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id '{TENANT}');
            CREATE SERVER s_gov FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id '{TENANT}', cloud 'azureusgovernment');
            CREATE SERVER s_china FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id '{TENANT}', cloud 'AzureChinaCloud');
            CREATE SERVER s_emu FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id '{TENANT}', cloud 'AzureUSGovernment',
                arm_endpoint 'https://127.0.0.1:8443/', login_endpoint 'https://Localhost:9443',
                imds_endpoint 'http://127.0.0.1:8080', arm_scope 'https://emulator.test/.default');
            CREATE SERVER s_mi FOREIGN DATA WRAPPER asr_azure;
            CREATE SERVER s_notenant FOREIGN DATA WRAPPER asr_azure;
            CREATE SERVER s_other FOREIGN DATA WRAPPER other_fdw;
            CREATE SERVER s_nomap FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id '{TENANT}');
            CREATE USER MAPPING FOR PUBLIC SERVER s_cloud OPTIONS (auth 'client_secret', client_id '{CLIENT_ID}',
                client_secret_file '{fixtures}/secret.txt');
            CREATE USER MAPPING FOR worker SERVER s_gov OPTIONS (auth 'certificate', client_id '{CLIENT_ID}',
                certificate_file '{fixtures}/leaf.p12', certificate_password '{P12_PASSWORD}',
                send_certificate_chain 'on', jwt_algorithm 'PS256');
            CREATE USER MAPPING FOR PUBLIC SERVER s_gov OPTIONS (auth 'client_secret', client_id '{CLIENT_ID}',
                client_secret_file '{fixtures}/secret-loose.txt');
            CREATE USER MAPPING FOR PUBLIC SERVER s_china OPTIONS (auth 'certificate', client_id '{CLIENT_ID}',
                certificate_file '{fixtures}/leaf-loose.pem');
            CREATE USER MAPPING FOR PUBLIC SERVER s_emu OPTIONS (auth 'client_secret', client_id '{CLIENT_ID}',
                client_secret 'unit-inline-secret');
            CREATE USER MAPPING FOR PUBLIC SERVER s_mi OPTIONS (auth 'managed_identity');
            CREATE USER MAPPING FOR PUBLIC SERVER s_notenant OPTIONS (auth 'client_secret', client_id '{CLIENT_ID}',
                client_secret 'unit-inline-secret');""")

        def lookup(server, role="worker"):
            return inst.sql(f"SELECT asr_unit_lookup('{server}', '{role}'::regrole)", ok_error=True)

        out, err = lookup("s_cloud")
        check("lookup: AzureCloud defaults, PUBLIC mapping, secret read from its file, newline trimmed",
              "cloud=AzureCloud arm=https://management.azure.com login=https://login.microsoftonline.com "
              "imds=http://169.254.169.254 scope=https://management.azure.com/.default "
              f"resource=https://management.azure.com/ token_url={TOKEN_URL} auth=0 "
              f"client_id={CLIENT_ID} public=yes secret_len={len(FILE_SECRET)} cert_len=0 password=none "
              "chain=no alg=RS256 fingerprint=64" == out.strip(), out + err)
        out, err = lookup("s_gov")
        check("lookup: AzureUSGovernment, the role's own mapping wins over PUBLIC, certificate read",
              out.startswith("cloud=AzureUSGovernment arm=https://management.usgovcloudapi.net "
                             "login=https://login.microsoftonline.us imds=http://169.254.169.254 "
                             "scope=https://management.core.usgovcloudapi.net/.default "
                             "resource=https://management.core.usgovcloudapi.net/ "
                             f"token_url=https://login.microsoftonline.us/{TENANT}/oauth2/v2.0/token auth=1 ")
              and "public=no secret_len=-1" in out and "password=set chain=yes alg=PS256" in out
              and f"cert_len={os.path.getsize(fixtures + '/leaf.p12')}" in out, out + err)
        out, err = lookup("s_gov", "unit")
        check("lookup: a group-readable secret file is refused like ssl_key_file",
              'client_secret_file "' in err and "has group or world access" in err
              and "0600" in err and FILE_SECRET not in err, err)
        out, err = lookup("s_china")
        check("lookup: a group-readable certificate file (not root's) is refused",
              "certificate_file" in err and "has group or world access" in err, err)
        os.chmod(f"{fixtures}/leaf-loose.pem", 0o600)
        out, err = lookup("s_china")
        check("lookup: AzureChinaCloud endpoints",
              out.startswith("cloud=AzureChinaCloud arm=https://management.chinacloudapi.cn "
                             "login=https://login.chinacloudapi.cn ")
              and "scope=https://management.chinacloudapi.cn/.default" in out
              and f"token_url=https://login.chinacloudapi.cn/{TENANT}/oauth2/v2.0/token" in out, out + err)
        out, err = lookup("s_emu")
        check("lookup: explicit endpoints override the cloud's, normalized to scheme://host[:port]",
              "arm=https://127.0.0.1:8443 login=https://Localhost:9443 imds=http://127.0.0.1:8080 "
              "scope=https://emulator.test/.default resource=https://emulator.test "
              f"token_url=https://Localhost:9443/{TENANT}/oauth2/v2.0/token" in out
              and "secret_len=18" in out, out + err)
        out, err = lookup("s_mi")
        check("lookup: managed identity needs no tenant; token URL is IMDS's",
              "token_url=http://169.254.169.254/metadata/identity/oauth2/token auth=2 client_id=none" in out, out + err)
        out, err = lookup("s_notenant")
        check("lookup: a client secret without tenant_id is explained",
              'server "s_notenant" has no option "tenant_id"' in err and "unit-inline-secret" not in err, err)
        out, err = lookup("s_nomap")
        check("lookup: no user mapping is explained",
              'no user mapping for role "worker" on server "s_nomap"' in err
              and "CREATE USER MAPPING FOR worker SERVER s_nomap" in err, err)
        out, err = lookup("s_other")
        check("lookup: a server of another wrapper is refused", "is not an asr_azure server" in err, err)
        out, err = lookup("s_missing")
        check("lookup: a missing server is explained", 'server "s_missing" does not exist' in err, err)
        os.chmod(f"{fixtures}/secret.txt", 0o000)
        out, err = lookup("s_cloud")
        check("lookup: an unreadable secret file is explained",
              "could not open client_secret_file" in err and "Permission denied" in err, err)
        os.chmod(f"{fixtures}/secret.txt", 0o600)
        out, err = lookup("s_cloud")
        check("lookup: fixed file is read again", "secret_len=" in out, err)
        o1, _ = lookup("s_cloud")
        with open(f"{fixtures}/secret.txt", "w") as f:
            f.write("unit-rotated-secret\n")
        o2, _ = lookup("s_cloud")
        check("lookup: a rotated secret file is seen at the next lookup", o1 != o2 and "secret_len=19" in o2, o2)
        secrets_seen.append("unit-rotated-secret")
    finally:
        inst.stop()

    # 4. nothing secret in the server log, at debug5
    log = open(inst.log, errors="replace").read()
    check("log: debug5 output was captured", "DEBUG" in log, len(log))
    for s in secrets_seen:
        check("log: no secret, password or assertion in the server log", s not in log, s[:12] + "...")
    for t in ("unit-token-a", "unit-token-b", "unit-Secret"):
        check(f"log: no token or secret from the scenarios ({t[:10]}...)", t not in log)

    if failed == 0 and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"files kept in {root}")
    print(f"unit: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
