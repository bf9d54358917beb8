"""Entra ID and IMDS emulation: token issuing, client-assertion verification, bearer checks.

* `POST /{tenant}/oauth2/v2.0/token` - client_credentials with `client_secret`, or with a
  `client_assertion` JWT verified for real (RS256 + `x5t` = SHA-1 thumbprint, PS256 + `x5t#S256` =
  SHA-256 thumbprint; signature with python3-cryptography against the certificate registered for
  the service principal; `aud`, `iss`, `sub`, `exp`, `nbf` checked).  Errors use Entra's body
  (`error`, `error_description` "AADSTSnnnn: ...", `error_codes`, `trace_id`, `correlation_id`...).
* `GET /{tenant}/v2.0/.well-known/openid-configuration` - what MSAL reads before the first token.
* `GET /metadata/identity/oauth2/token` on the plain-http IMDS listener (`Metadata: true` required).
* Access tokens are HS256-signed JWTs (key private to this emulator run) carrying tid/oid/appid and
  an expiry in real seconds; `check_bearer()` validates them on every ARM call and produces ARM's 401
  bodies (`AuthenticationFailed`, `InvalidAuthenticationToken`, `ExpiredAuthenticationToken`,
  `InvalidAuthenticationTokenTenant`).
"""
import base64
import hashlib
import hmac
import json
import os
import time
import urllib.parse
import uuid

from . import util

ARM_RESOURCES = ("https://management.azure.com/", "https://management.azure.com",
                 "https://management.core.windows.net/", "https://management.core.windows.net")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
IGNORED_SCOPES = ("openid", "profile", "offline_access")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenError(Exception):
    def __init__(self, status, error, aadsts, message):
        super().__init__(message)
        self.status, self.error, self.aadsts, self.message = status, error, aadsts, message


class Identity:
    """Principals of the world and the tokens issued to them."""

    def __init__(self, world, login_hosts):
        self.world = world
        self.login_hosts = login_hosts          # e.g. ["127.0.0.1:8443", "localhost:8443"]
        self.key = os.urandom(32)
        self.lifetime = int(world.settings.get("token_lifetime_seconds", 3599))
        self.generation = 1             # bumped by revoke_all(); tokens carry the generation they were issued in
        self.issued = 0

    # ---------------------------------------------------------------- token minting
    def mint(self, tenant, principal, resource, kind):
        now = int(time.time())
        claims = {
            "aud": resource, "iss": "https://sts.windows.net/%s/" % tenant,
            "iat": now, "nbf": now, "exp": now + self.lifetime,
            "appid": principal["client_id"], "oid": principal["object_id"],
            "sub": principal["object_id"], "tid": tenant, "idtyp": "app",
            "uti": util.new_guid(), "ver": "1.0", "xms_idrel": kind, "xms_gen": self.generation,
        }
        header = {"typ": "JWT", "alg": "HS256", "kid": "asr-emulator"}
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        sig = hmac.new(self.key, signing_input.encode(), hashlib.sha256).digest()
        self.issued += 1
        return signing_input + "." + b64url(sig), claims

    def check_bearer(self, auth_header):
        """Return (claims, None) or (None, (status, code, message))."""
        if not auth_header:
            return None, (401, "AuthenticationFailed",
                          "Authentication failed. The 'Authorization' header is missing.")
        parts = auth_header.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer":
            return None, (401, "AuthenticationFailed",
                          "Authentication failed. The 'Authorization' header is provided in an invalid format.")
        token = parts[1].strip()
        try:
            h, c, s = token.split(".")
            expect = hmac.new(self.key, (h + "." + c).encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expect, b64url_decode(s)):
                raise ValueError("signature")
            claims = json.loads(b64url_decode(c))
        except Exception:
            return None, (401, "InvalidAuthenticationToken",
                          "The access token is invalid.")
        now = time.time()
        if claims.get("exp", 0) <= now:
            return None, (401, "ExpiredAuthenticationToken",
                          "The access token expiry UTC time '%s' is earlier than current UTC time '%s'."
                          % (util.fmt_time(claims.get("exp", 0), 0), util.fmt_time(now, 0)))
        if claims.get("xms_gen") != self.generation:
            return None, (401, "InvalidAuthenticationToken",
                          "The access token has been revoked.")
        if claims.get("aud") not in ARM_RESOURCES:
            return None, (401, "InvalidAuthenticationToken",
                          "The access token has been obtained for wrong audience or resource '%s'. "
                          "It should exactly match with one of the allowed audiences "
                          "'https://management.core.windows.net/','https://management.azure.com/'."
                          % claims.get("aud"))
        return claims, None

    def revoke_all(self):
        self.generation += 1

    # ---------------------------------------------------------------- OIDC discovery
    def openid_configuration(self, base, tenant):
        if not self.world.tenant(tenant):
            return 400, {"error": "invalid_tenant",
                         "error_description": self._desc(90002, "Tenant '%s' not found. Check to make sure you have "
                                                         "the correct tenant ID and are signing into the correct cloud." % tenant),
                         "error_codes": [90002]}
        tid = self.world.tenant(tenant)["id"]
        return 200, {
            "token_endpoint": "%s/%s/oauth2/v2.0/token" % (base, tid),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": "%s/%s/discovery/v2.0/keys" % (base, tid),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": "%s/%s/v2.0" % (base, tid),
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "%s/oidc/userinfo" % base,
            "authorization_endpoint": "%s/%s/oauth2/v2.0/authorize" % (base, tid),
            "device_authorization_endpoint": "%s/%s/oauth2/v2.0/devicecode" % (base, tid),
            "http_logout_supported": True, "frontchannel_logout_supported": True,
            "end_session_endpoint": "%s/%s/oauth2/v2.0/logout" % (base, tid),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid"],
            "tenant_region_scope": "NA", "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net", "msgraph_host": "graph.microsoft.com",
        }

    # ---------------------------------------------------------------- token endpoint
    @staticmethod
    def _desc(code, message):
        return ("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s"
                % (code, message, util.new_guid(), util.new_guid(),
                   time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())))

    def error_body(self, err):
        trace, corr = util.new_guid(), util.new_guid()
        ts = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        return {
            "error": err.error,
            "error_description": "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s"
                                 % (err.aadsts, err.message, trace, corr, ts),
            "error_codes": [err.aadsts], "timestamp": ts, "trace_id": trace,
            "correlation_id": corr, "error_uri": "https://login.microsoftonline.com/error?code=%d" % err.aadsts,
        }

    def token(self, tenant_in_path, form, auth_header, request_host):
        """Handle a token request; returns (status, body)."""
        try:
            return 200, self._token(tenant_in_path, form, auth_header, request_host)
        except TokenError as e:
            return e.status, self.error_body(e)

    def _token(self, tenant_in_path, form, auth_header, request_host):
        tenant = self.world.tenant(tenant_in_path)
        if tenant is None:
            raise TokenError(400, "invalid_request", 90002,
                             "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are "
                             "signing into the correct cloud." % tenant_in_path)
        grant = form.get("grant_type")
        if not grant:
            raise TokenError(400, "invalid_request", 900144,
                             "The request body must contain the following parameter: 'grant_type'.")
        if grant != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", 70003,
                             "The app requested an unsupported grant type '%s'." % grant)
        client_id = form.get("client_id")
        secret = form.get("client_secret")
        if auth_header and auth_header.lower().startswith("basic "):
            try:
                raw = base64.b64decode(auth_header.split(None, 1)[1]).decode()
                cid, _, sec = raw.partition(":")
                client_id = client_id or urllib.parse.unquote_plus(cid)
                secret = urllib.parse.unquote_plus(sec)
            except Exception:
                raise TokenError(401, "invalid_client", 7000216, "The client credentials are malformed.")
        if not client_id:
            raise TokenError(400, "invalid_request", 900144,
                             "The request body must contain the following parameter: 'client_id'.")
        sp = self.world.service_principal(client_id)
        if sp is None or not util.ieq(sp["tenant"], tenant["id"]):
            raise TokenError(400, "unauthorized_client", 700016,
                             "Application with identifier '%s' was not found in the directory '%s'. This can "
                             "happen if the application has not been installed by the administrator of the "
                             "tenant or consented to by any user in the tenant. You may have sent your "
                             "authentication request to the wrong tenant." % (client_id, tenant["domain"]))
        resource = self._resource_from_scope(form.get("scope"))
        assertion = form.get("client_assertion")
        if assertion:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise TokenError(400, "invalid_request", 50027,
                                 "client_assertion_type must be '%s'." % ASSERTION_TYPE)
            self.verify_assertion(assertion, sp, tenant, request_host)
        elif secret is not None:
            if not sp.get("secret"):
                raise TokenError(401, "invalid_client", 7000215,
                                 "Invalid client secret provided. Ensure the secret being sent in the request is "
                                 "the client secret value, not the client secret ID, for a secret added to app '%s'."
                                 % client_id)
            if not hmac.compare_digest(secret.encode(), sp["secret"].encode()):
                raise TokenError(401, "invalid_client", 7000215,
                                 "Invalid client secret provided. Ensure the secret being sent in the request is "
                                 "the client secret value, not the client secret ID, for a secret added to app '%s'."
                                 % client_id)
        else:
            raise TokenError(401, "invalid_client", 7000218,
                             "The request body must contain the following parameter: 'client_assertion' or "
                             "'client_secret'.")
        token, claims = self.mint(tenant["id"], sp, resource, "sp")
        return {"token_type": "Bearer", "expires_in": self.lifetime, "ext_expires_in": self.lifetime,
                "access_token": token}

    def _resource_from_scope(self, scope):
        if not scope:
            raise TokenError(400, "invalid_request", 900144,
                             "The request body must contain the following parameter: 'scope'.")
        scopes = [s for s in scope.split() if s not in IGNORED_SCOPES]
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise TokenError(400, "invalid_scope", 1002012,
                             "The provided value for scope %s is not valid. Client credential flows must have a "
                             "scope value with /.default suffixed to the resource identifier "
                             "(application ID URI)." % scope)
        resource = scopes[0][: -len(".default")]
        if resource not in ARM_RESOURCES:
            raise TokenError(400, "invalid_resource", 500011,
                             "The resource principal named %s was not found in the tenant named %s." % (
                                 resource, "the tenant"))
        return resource

    # ---------------------------------------------------------------- client assertion
    def verify_assertion(self, assertion, sp, tenant, request_host):
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            h64, c64, s64 = assertion.split(".")
            header = json.loads(b64url_decode(h64))
            claims = json.loads(b64url_decode(c64))
            signature = b64url_decode(s64)
        except Exception:
            raise TokenError(400, "invalid_request", 50027,
                             "JWT token is invalid or malformed.")
        alg = header.get("alg")
        certs = sp.get("certificates_der", [])
        cert = None
        if alg == "RS256":
            tp = header.get("x5t")
            for der in certs:
                if tp and b64url(hashlib.sha1(der).digest()) == tp.rstrip("="):
                    cert = der
        elif alg == "PS256":
            tp = header.get("x5t#S256")
            for der in certs:
                if tp and b64url(hashlib.sha256(der).digest()) == tp.rstrip("="):
                    cert = der
        else:
            raise TokenError(401, "invalid_client", 5002738,
                             "Invalid JWT token. '%s' is not a supported signature algorithm." % alg)
        if cert is None:
            raise TokenError(401, "invalid_client", 700027,
                             "The certificate with identifier used to sign the client assertion is not registered "
                             "on application. [Reason - The key was not found., Thumbprint of key used by client: "
                             "'%s']" % (header.get("x5t") or header.get("x5t#S256")))
        pub = x509.load_der_x509_certificate(cert).public_key()
        signing_input = (h64 + "." + c64).encode()
        try:
            if alg == "RS256":
                pub.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            else:
                pub.verify(signature, signing_input,
                           padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
        except InvalidSignature:
            raise TokenError(401, "invalid_client", 700027,
                             "Client assertion failed signature validation.")
        now = time.time()
        for claim in ("aud", "iss", "sub", "exp"):
            if claim not in claims:
                raise TokenError(400, "invalid_request", 50027,
                                 "JWT token is invalid or malformed: the '%s' claim is missing." % claim)
        auds = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        valid_auds = set()
        for host in self.login_hosts:
            for tid in (tenant["id"], tenant.get("domain")):
                valid_auds.add("https://%s/%s/oauth2/v2.0/token" % (host, tid))
        if not any(a in valid_auds for a in auds):
            raise TokenError(401, "invalid_client", 700023,
                             "Client assertion audience claim does not match Realm issuer. Review the "
                             "documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
        if claims["iss"] != sp["client_id"] or claims["sub"] != sp["client_id"]:
            raise TokenError(401, "invalid_client", 700021,
                             "Client assertion application identifier doesn't match 'client_id' parameter. "
                             "Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
        skew = 300
        if float(claims["exp"]) < now - skew or ("nbf" in claims and float(claims["nbf"]) > now + skew):
            raise TokenError(401, "invalid_client", 700024,
                             "Client assertion is not within its valid time range. Current time: %s, assertion "
                             "valid from %s, expiry time of assertion %s." % (
                                 util.fmt_time(now, 0), util.fmt_time(float(claims.get("nbf", claims.get("iat", 0))), 0),
                                 util.fmt_time(float(claims["exp"]), 0)))

    # ---------------------------------------------------------------- IMDS
    def imds_token(self, headers, query):
        """GET /metadata/identity/oauth2/token; returns (status, body)."""
        if (headers.get("Metadata") or "").lower() != "true":
            return 400, {"error": "invalid_request", "error_description": "Required metadata header not specified"}
        if not query.get("api-version"):
            return 400, {"error": "invalid_request", "error_description": "Required query variable 'api-version' is missing"}
        resource = query.get("resource")
        if not resource:
            return 400, {"error": "invalid_request", "error_description": "Required query variable 'resource' is missing"}
        if resource not in ARM_RESOURCES:
            return 400, {"error": "invalid_resource",
                         "error_description": "AADSTS500011: The resource principal named %s was not found in the tenant." % resource}
        mi = self.world.managed_identity(query.get("client_id"), query.get("object_id"), query.get("msi_res_id"))
        if mi is None:
            return 400, {"error": "invalid_request", "error_description": "Identity not found"}
        token, claims = self.mint(mi["tenant"], mi, resource, "mi")
        return 200, {"access_token": token, "client_id": mi["client_id"], "refresh_token": "",
                     "expires_in": str(self.lifetime), "expires_on": str(claims["exp"]),
                     "ext_expires_in": str(self.lifetime), "not_before": str(claims["nbf"]),
                     "resource": resource, "token_type": "Bearer"}
