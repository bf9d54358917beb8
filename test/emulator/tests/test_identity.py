"""Entra token endpoint (secret and real client-assertion verification), OIDC discovery, IMDS, and
ARM's bearer-token checks (missing, tampered, expired, revoked, wrong tenant)."""
import base64
import hashlib
import json
import time
import unittest
import urllib.parse
import urllib.request
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .harness import Emulator


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Identity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator(scale=60)
        r = cls.emu.ready
        pem = open(r["certificate_file"], "rb").read()
        cls.key = serialization.load_pem_private_key(pem, None)
        cls.cert = x509.load_pem_x509_certificate(pem)
        cls.der = cls.cert.public_bytes(serialization.Encoding.DER)
        cls.token_url = "%s/%s/oauth2/v2.0/token" % (r["login_endpoint"], r["tenant_id"])

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def setUp(self):
        self.emu.reset()

    def post_token(self, form, tenant=None):
        st, h, b = self.emu.https("POST", "/%s/oauth2/v2.0/token" % (tenant or self.emu.ready["tenant_id"]),
                                  raw_body=urllib.parse.urlencode(form).encode(),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        return st, json.loads(b)

    def assertion(self, alg="RS256", key=None, **claims):
        now = int(time.time())
        c = {"aud": self.token_url, "iss": self.emu.ready["cert_client_id"], "sub": self.emu.ready["cert_client_id"],
             "jti": str(uuid.uuid4()), "iat": now, "nbf": now, "exp": now + 600}
        c.update(claims)
        c = {k: v for k, v in c.items() if v is not None}
        if alg == "RS256":
            header = {"typ": "JWT", "alg": "RS256", "x5t": b64(hashlib.sha1(self.der).digest())}
        else:
            header = {"typ": "JWT", "alg": "PS256", "x5t#S256": b64(hashlib.sha256(self.der).digest())}
        si = (b64(json.dumps(header).encode()) + "." + b64(json.dumps(c).encode())).encode()
        k = key or self.key
        if alg == "RS256":
            sig = k.sign(si, padding.PKCS1v15(), hashes.SHA256())
        else:
            sig = k.sign(si, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
        return si.decode() + "." + b64(sig)

    def cert_form(self, jwt):
        return {"grant_type": "client_credentials", "client_id": self.emu.ready["cert_client_id"],
                "scope": "https://management.azure.com/.default",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": jwt}

    def assertAadsts(self, resp, status, error, code):
        st, body = resp
        self.assertEqual((st, body["error"], body["error_codes"]), (status, error, [code]), body)
        self.assertTrue(body["error_description"].startswith("AADSTS%d:" % code))
        for k in ("timestamp", "trace_id", "correlation_id"):
            self.assertIn(k, body)

    # ------------------------------------------------------------------ secrets
    def test_client_secret(self):
        r = self.emu.ready
        st, body = self.post_token({"grant_type": "client_credentials", "client_id": r["client_id"],
                                    "client_secret": r["client_secret"], "scope": "https://management.azure.com/.default"})
        self.assertEqual(st, 200)
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["expires_in"], 3599)
        claims = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[1] + "=="))
        self.assertEqual((claims["tid"], claims["appid"], claims["aud"]), (r["tenant_id"], r["client_id"], "https://management.azure.com/"))
        log = self.emu.requests(listener="login")[-1]
        self.assertEqual(log["body"]["client_secret"], "***")

    def test_secret_errors(self):
        r = self.emu.ready
        base = {"grant_type": "client_credentials", "client_id": r["client_id"], "client_secret": "wrong",
                "scope": "https://management.azure.com/.default"}
        self.assertAadsts(self.post_token(base), 401, "invalid_client", 7000215)
        self.assertAadsts(self.post_token(dict(base, client_secret=r["client_secret"]), tenant=str(uuid.uuid4())),
                          400, "invalid_request", 90002)
        self.assertAadsts(self.post_token(dict(base, client_id=str(uuid.uuid4()))), 400, "unauthorized_client", 700016)
        self.assertAadsts(self.post_token(dict(base, client_secret=r["client_secret"], scope="https://management.azure.com/")),
                          400, "invalid_scope", 1002012)
        self.assertAadsts(self.post_token(dict(base, grant_type="password")), 400, "unsupported_grant_type", 70003)

    def test_openid_configuration(self):
        r = self.emu.ready
        st, h, b = self.emu.https("GET", "/%s/v2.0/.well-known/openid-configuration" % r["tenant_id"])
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(b)["token_endpoint"], self.token_url)

    # ------------------------------------------------------------------ client assertions
    def test_assertion_rs256_and_ps256(self):
        for alg in ("RS256", "PS256"):
            st, body = self.post_token(self.cert_form(self.assertion(alg)))
            self.assertEqual(st, 200, body)
            self.assertIn("access_token", body)

    def test_assertion_checks(self):
        rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.assertAadsts(self.post_token(self.cert_form(self.assertion(key=rogue))), 401, "invalid_client", 700027)
        self.assertAadsts(self.post_token(self.cert_form(self.assertion("PS256", key=rogue))), 401, "invalid_client", 700027)
        good = self.assertion()
        h, c, s = good.split(".")
        tampered = h + "." + b64(json.dumps(dict(json.loads(base64.urlsafe_b64decode(c + "==")), sub="x")).encode()) + "." + s
        self.assertAadsts(self.post_token(self.cert_form(tampered)), 401, "invalid_client", 700027)
        self.assertAadsts(self.post_token(self.cert_form(self.assertion(aud="https://login.microsoftonline.com/x/oauth2/v2.0/token"))),
                          401, "invalid_client", 700023)
        self.assertAadsts(self.post_token(self.cert_form(self.assertion(iss="someone-else"))), 401, "invalid_client", 700021)
        self.assertAadsts(self.post_token(self.cert_form(self.assertion(sub="someone-else"))), 401, "invalid_client", 700021)
        self.assertAadsts(self.post_token(self.cert_form(self.assertion(exp=int(time.time()) - 3600))), 401, "invalid_client", 700024)
        self.assertAadsts(self.post_token(self.cert_form(self.assertion(nbf=int(time.time()) + 3600))), 401, "invalid_client", 700024)
        self.assertAadsts(self.post_token(self.cert_form(self.assertion(exp=None))), 400, "invalid_request", 50027)
        self.assertAadsts(self.post_token(self.cert_form("not-a-jwt")), 400, "invalid_request", 50027)
        # unregistered certificate (thumbprint unknown)
        other = x509.CertificateBuilder().subject_name(self.cert.subject).issuer_name(self.cert.subject) \
            .public_key(rogue.public_key()).serial_number(7).not_valid_before(self.cert.not_valid_before) \
            .not_valid_after(self.cert.not_valid_after).sign(rogue, hashes.SHA256())
        saved = self.der
        try:
            type(self).der = other.public_bytes(serialization.Encoding.DER)
            self.assertAadsts(self.post_token(self.cert_form(self.assertion(key=rogue))), 401, "invalid_client", 700027)
        finally:
            type(self).der = saved

    # ------------------------------------------------------------------ IMDS
    def imds(self, query, metadata=True):
        url = self.emu.ready["imds_endpoint"] + "/metadata/identity/oauth2/token?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, headers={"Metadata": "true"} if metadata else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def test_imds(self):
        q = {"api-version": "2018-02-01", "resource": "https://management.azure.com/"}
        st, body = self.imds(q, metadata=False)
        self.assertEqual((st, body["error"]), (400, "invalid_request"))
        st, body = self.imds(q)
        self.assertEqual(st, 200)
        self.assertEqual(body["token_type"], "Bearer")
        for k in ("expires_in", "expires_on", "not_before"):
            self.assertIsInstance(body[k], str)
        st, body = self.imds(dict(q, client_id=self.emu.ready["managed_identity_client_id"]))
        self.assertEqual(st, 200)
        st, _ = self.imds(dict(q, client_id=str(uuid.uuid4())))
        self.assertEqual(st, 400)
        st, body = self.imds({"api-version": "2018-02-01"})
        self.assertEqual(st, 400)
        # the managed identity's token works on ARM
        st, _, doc = self.emu.arm("GET", self.emu.vault_path + "/replicationProtectedItems", token=self.imds(q)[1]["access_token"])
        self.assertEqual(st, 200)
        self.assertEqual(len(doc["value"]), 3)

    def test_sdk_managed_identity_credential(self):
        """azure-identity's documented AZURE_POD_IDENTITY_AUTHORITY_HOST points it at our IMDS."""
        import os
        from azure.identity import ManagedIdentityCredential
        from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
        r = self.emu.ready
        os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = r["imds_endpoint"]
        try:
            cred = ManagedIdentityCredential(client_id=r["managed_identity_client_id"])
            c = SiteRecoveryManagementClient(cred, r["subscription_id"], r["resource_group"], r["vault"],
                                             base_url=r["arm_endpoint"], connection_verify=r["ca_file"])
            self.assertEqual(len(list(c.replication_protected_items.list())), 3)
        finally:
            del os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"]
        imds = self.emu.requests(listener="imds")
        self.assertTrue(imds)
        self.assertTrue(all(not x["authorization"] for x in imds))
        self.assertEqual(imds[-1]["query"]["client_id"], r["managed_identity_client_id"])

    # ------------------------------------------------------------------ ARM bearer checks
    def test_arm_rejects_bad_tokens(self):
        path = self.emu.vault_path + "/replicationProtectedItems"
        st, h, doc = self.emu.arm("GET", path, token="")
        self.assertEqual((st, doc["error"]["code"]), (401, "AuthenticationFailed"))
        self.assertIn("www-authenticate", h)
        tok = self.emu.token()
        st, _, doc = self.emu.arm("GET", path, token=tok[:-4] + "AAAA")
        self.assertEqual((st, doc["error"]["code"]), (401, "InvalidAuthenticationToken"))
        st, _, _ = self.emu.arm("GET", path, token=tok)
        self.assertEqual(st, 200)
        self.emu.control("POST", "/tokens/revoke", {})
        st, _, doc = self.emu.arm("GET", path, token=tok)
        self.assertEqual((st, doc["error"]["code"]), (401, "InvalidAuthenticationToken"))

    def test_tokens_expire(self):
        self.emu.control("POST", "/tokens", {"lifetime_seconds": 1})
        r = self.emu.ready
        st, body = self.post_token({"grant_type": "client_credentials", "client_id": r["client_id"],
                                    "client_secret": r["client_secret"], "scope": "https://management.azure.com/.default"})
        self.assertEqual(body["expires_in"], 1)
        time.sleep(2.1)
        st, _, doc = self.emu.arm("GET", self.emu.vault_path + "/replicationProtectedItems", token=body["access_token"])
        self.assertEqual((st, doc["error"]["code"]), (401, "ExpiredAuthenticationToken"))
        self.emu.control("POST", "/tokens", {"lifetime_seconds": 3599})

    def test_sdk_refreshes_expired_token(self):
        self.emu.control("POST", "/tokens", {"lifetime_seconds": 2})
        c = self.emu.sdk("secret")
        self.assertEqual(len(list(c.replication_protected_items.list())), 3)
        time.sleep(2.5)
        self.assertEqual(len(list(c.replication_protected_items.list())), 3)
        self.assertGreaterEqual(len(self.emu.requests(listener="login", method="POST")), 2)
        self.emu.control("POST", "/tokens", {"lifetime_seconds": 3599})


if __name__ == "__main__":
    unittest.main()
