"""asremu: a local emulator of the Azure endpoints the asr PostgreSQL extension talks to.

Entra ID (token endpoint, OIDC discovery), the Azure VM managed-identity endpoint (IMDS) and
Azure Resource Manager for Azure Site Recovery (A2A), plus a control API for faults and a request
log.  Standard library only, apart from Debian's python3-cryptography for JWT signature checks.
The package is split by responsibility; see each module's docstring.
"""
