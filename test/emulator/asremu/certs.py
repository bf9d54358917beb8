"""Certificate generation with the openssl command-line tool.

Creates, in the state directory, a throwaway CA (`ca.pem`, what `asr.ca_file` points at), the HTTPS
server certificate signed by it (SANs IP:127.0.0.1 and DNS:localhost only - 127.0.0.2 is deliberately
absent), and one RSA client certificate per certificate service principal of the world: a PEM with
private key + certificate and a PKCS#12 (.pfx) variant with a password.  Existing files are reused so
that restarts are fast and clients keep trusting the same CA.
"""
import os
import subprocess

OPENSSL = "openssl"


def _run(args, cwd=None):
    subprocess.run([OPENSSL] + args, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ensure_ca(state_dir):
    ca_key = os.path.join(state_dir, "ca.key")
    ca_pem = os.path.join(state_dir, "ca.pem")
    if not (os.path.exists(ca_key) and os.path.exists(ca_pem)):
        _run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", ca_key, "-out", ca_pem, "-days", "30", "-sha256",
              "-subj", "/CN=asr-emulator throwaway test CA",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign",
              "-addext", "subjectKeyIdentifier=hash"])
        os.chmod(ca_key, 0o600)
    return ca_pem, ca_key


def ensure_server_cert(state_dir, ca_pem, ca_key):
    key = os.path.join(state_dir, "server.key")
    crt = os.path.join(state_dir, "server.pem")
    if os.path.exists(key) and os.path.exists(crt):
        return crt, key
    csr = os.path.join(state_dir, "server.csr")
    ext = os.path.join(state_dir, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid,issuer\n")
    _run(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
          "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"])
    _run(["x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
          "-out", crt, "-days", "30", "-sha256", "-extfile", ext])
    os.chmod(key, 0o600)
    return crt, key


def make_client_cert(path_prefix, common_name, password):
    """RSA-2048 self-signed client certificate: PREFIX.pem (key + cert), PREFIX.pfx, PREFIX.crt."""
    pem = path_prefix + ".pem"
    pfx = path_prefix + ".pfx"
    crt = path_prefix + ".crt"
    key = path_prefix + ".key"
    if all(os.path.exists(p) for p in (pem, pfx, crt)):
        return pem, pfx, crt
    _run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
          "-days", "30", "-sha256", "-subj", "/CN=" + common_name])
    with open(pem, "wb") as out:
        for p in (key, crt):
            with open(p, "rb") as f:
                out.write(f.read())
    _run(["pkcs12", "-export", "-inkey", key, "-in", crt, "-out", pfx,
          "-passout", "pass:" + password])
    os.chmod(pem, 0o600)
    os.chmod(pfx, 0o600)
    os.unlink(key)
    return pem, pfx, crt


def cert_der(crt_path):
    out = subprocess.run([OPENSSL, "x509", "-in", crt_path, "-outform", "DER"],
                         check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return out.stdout
