/*-------------------------------------------------------------------------
 *
 * fdw.h
 *	  The asr_azure foreign-data wrapper: where a DBA keeps Azure
 *	  credentials, and how the worker reads them back.
 *
 * A SERVER of asr_azure names a tenant and a cloud (and optionally
 * explicit endpoints); a USER MAPPING for the worker's role, or PUBLIC,
 * holds the application and its secret (DESIGN.md §4).  The validator
 * refuses secrets on a SERVER, unknown options and malformed values when
 * the DBA types them (fdw.c); asr_credential_lookup() turns a server name
 * into one self-contained AsrCredential for the token code (credlookup.c,
 * for auth.h).
 *
 * IDENTIFICATION
 *	  src/fdw.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_FDW_H
#define ASR_FDW_H

#include "fmgr.h"
#include "nodes/pg_list.h"

#define ASR_FDW_NAME "asr_azure"

typedef enum AsrAuthMode
{
	ASR_AUTH_CLIENT_SECRET,
	ASR_AUTH_CERTIFICATE,
	ASR_AUTH_MANAGED_IDENTITY
} AsrAuthMode;

typedef enum AsrJwtAlgorithm
{
	ASR_JWT_RS256,				/* RSASSA-PKCS1-v1_5 + x5t (SHA-1), default */
	ASR_JWT_PS256				/* RSASSA-PSS + x5t#S256 (SHA-256) */
} AsrJwtAlgorithm;

/*
 * Everything needed to obtain a token for one (server, role), resolved:
 * endpoints are never NULL (the cloud's defaults are filled in), file
 * contents are already read.  Strings are NUL-terminated and palloc'd in
 * the memory context that was current at lookup time; the secret fields
 * (client_secret, certificate_data, certificate_password) are zeroed when
 * that context is reset or deleted.  Never print a secret field.
 */
typedef struct AsrCredential
{
	char	   *server_name;
	Oid			server_id;
	Oid			mapping_user;	/* umuser: the role, or InvalidOid for
								 * PUBLIC */
	char	   *tenant_id;		/* NULL only for managed identity */
	char	   *cloud;			/* canonical spelling, e.g. "AzureCloud" */
	char	   *arm_endpoint;	/* https://host[:port], no trailing slash */
	char	   *login_endpoint; /* https://host[:port] */
	char	   *imds_endpoint;	/* http://host[:port] */
	char	   *scope;			/* e.g. https://management.azure.com/.default */
	char	   *imds_resource;	/* scope without "/.default" */
	char	   *token_url;		/* login/{tenant}/oauth2/v2.0/token, or the
								 * IMDS token URL for managed identity */

	AsrAuthMode auth;
	char	   *client_id;		/* NULL: system-assigned managed identity */

	/* client_secret: the secret itself, from the option or from the file */
	char	   *client_secret;
	char	   *client_secret_file; /* the path, for messages; may be NULL */

	/* certificate: the file's bytes (PEM or PKCS#12) and its password */
	char	   *certificate_file;
	char	   *certificate_data;
	size_t		certificate_len;
	char	   *certificate_password;	/* NULL when none */
	bool		send_certificate_chain;
	AsrJwtAlgorithm jwt_algorithm;

	/*
	 * Hex SHA-256 over every field above, secrets included: two lookups
	 * that give the same fingerprint may share a token.  Not secret in
	 * itself, but there is no reason to print it either.
	 */
	char		fingerprint[65];
} AsrCredential;

/* the validator (SQL: asr_azure_validator(text[], oid)) */
extern PGDLLEXPORT Datum asr_azure_validator(PG_FUNCTION_ARGS);

/*
 * The validator's checks, for the credential lookup: every option of one
 * object (context is ForeignServerRelationId or UserMappingRelationId;
 * check_privileges only when a role is setting them), and an endpoint
 * option's value as a normalized "scheme://host[:port]".  Both ereport
 * ERROR with the validator's messages.
 */
extern void asr_fdw_validate_options(List *options, Oid context,
									 bool check_privileges);
extern char *asr_fdw_base_url(const char *option, const char *value,
							  const char *scheme);

/*
 * Credentials of server_name for role roleid (its own user mapping, else
 * the PUBLIC one).  Must run inside a transaction; ereports ERROR with a
 * DBA-readable message when the server is missing or not an asr_azure
 * server, there is no user mapping, or a secret file cannot be used.
 */
extern AsrCredential *asr_credential_lookup(const char *server_name,
											Oid roleid);

/* zero the secret fields now (also done by the context reset callback) */
extern void asr_credential_wipe(AsrCredential *cred);

#endif							/* ASR_FDW_H */
