"""World file loading.

A world (JSON, see worlds/default.json and README) describes tenants, service principals (secret
and/or certificate; certificates can be generated into the state directory), managed identities,
subscriptions, vaults with their A2A regions (fabric + container per region), container mappings,
replication policies and the replicated VMs with their managed disks.  This module validates the
file and offers look-ups; the mutable ASR state built from it lives in `model.py`.
"""
import json
import os

from . import certs, util


class WorldError(Exception):
    pass


class World:
    def __init__(self, path, state_dir):
        self.path = os.path.abspath(path)
        with open(self.path) as f:
            self.doc = json.load(f)
        self.state_dir = state_dir
        self.settings = self.doc.get("settings", {})
        self.tenants = self.doc.get("tenants", [])
        self.sps = self.doc.get("service_principals", [])
        self.mis = self.doc.get("managed_identities", [])
        self.subscriptions = self.doc.get("subscriptions", [])
        if not self.tenants or not self.subscriptions:
            raise WorldError("world needs at least one tenant and one subscription")
        self._prepare_certificates()

    def _prepare_certificates(self):
        for sp in self.sps:
            c = sp.get("certificate")
            sp["certificates_der"] = []
            if not c:
                continue
            if c.get("generate"):
                prefix = os.path.join(self.state_dir, "sp-%s" % sp["client_id"])
                pem, pfx, crt = certs.make_client_cert(prefix, sp["name"], c.get("password", ""))
                c["pem_file"], c["pfx_file"], c["crt_file"] = pem, pfx, crt
            for path in [c.get("crt_file")] + list(c.get("extra_certificate_files", [])):
                if path:
                    sp["certificates_der"].append(certs.cert_der(path))

    # ------------------------------------------------------------------ look-ups
    def tenant(self, ident):
        for t in self.tenants:
            if util.ieq(t["id"], ident) or util.ieq(t.get("domain"), ident):
                return t
        return None

    def service_principal(self, client_id):
        for sp in self.sps:
            if util.ieq(sp["client_id"], client_id):
                return sp
        return None

    def principal_by_object_id(self, oid):
        for p in self.sps + self.mis:
            if util.ieq(p["object_id"], oid):
                return p
        return None

    def managed_identity(self, client_id=None, object_id=None, res_id=None):
        for mi in self.mis:
            if client_id and util.ieq(mi["client_id"], client_id):
                return mi
            if object_id and util.ieq(mi["object_id"], object_id):
                return mi
            if res_id and util.ieq(mi.get("resource_id"), res_id):
                return mi
        if client_id or object_id or res_id:
            return None
        system = [m for m in self.mis if m.get("type") == "SystemAssigned"]
        if system:
            return system[0]
        if len(self.mis) == 1:
            return self.mis[0]
        return None

    def subscription(self, sub_id):
        for s in self.subscriptions:
            if util.ieq(s["id"], sub_id):
                return s
        return None

    def first(self):
        """Credentials of the first secret SP, certificate SP, MI and vault (for ready.json)."""
        sub = self.subscriptions[0]
        vault = sub["vaults"][0]
        out = {"tenant_id": sub["tenant"], "subscription_id": sub["id"],
               "resource_group": vault["resource_group"], "vault": vault["name"]}
        for sp in self.sps:
            if sp.get("secret") and "client_id" not in out:
                out["client_id"], out["client_secret"] = sp["client_id"], sp["secret"]
            c = sp.get("certificate")
            if c and "cert_client_id" not in out:
                out["cert_client_id"] = sp["client_id"]
                out["certificate_file"] = os.path.abspath(c.get("pem_file", ""))
                out["certificate_pfx"] = os.path.abspath(c.get("pfx_file", ""))
                out["certificate_password"] = c.get("password", "")
        if self.mis:
            out["managed_identity_client_id"] = self.mis[0]["client_id"]
        return out
