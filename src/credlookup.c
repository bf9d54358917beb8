/*-------------------------------------------------------------------------
 *
 * credlookup.c
 *	  Credential lookup: a vault's asr_azure server and user mapping turned
 *	  into one self-contained AsrCredential for the token code.
 *
 * The worker names a server; this file finds its user mapping (the
 * worker role's own, else PUBLIC's), checks the options once more, fills
 * in the cloud's default endpoints, reads client_secret_file and
 * certificate_file under the rules PostgreSQL applies to ssl_key_file,
 * and fingerprints the result so that auth.c notices a rotated secret.
 * Every secret read here is zeroed when the caller's memory context goes.
 *
 * Arrows: called by creds.c (the worker's vault cache) and the unit
 * tests; calls the catalog (foreign servers and user mappings), the
 * validator's checks in fdw.c, the cloud table in auth.c and OpenSSL's
 * SHA-256.  Runs inside a transaction; never touches the network.
 *
 * IDENTIFICATION
 *	  src/credlookup.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "catalog/pg_foreign_server.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "auth.h"
#include "fdw.h"

/* Largest secret or certificate file we read. */
#define ASR_MAX_CREDENTIAL_FILE (1024 * 1024)

static char *read_credential_file(const char *path, const char *option,
								  size_t *len);
static void credential_reset_callback(void *arg);
static void credential_fingerprint(AsrCredential *cred);

/*
 * Credentials of a server for a role, resolved and self-contained.
 *
 * The token code must never go back to the catalog or the file system
 * (it runs outside transactions, between network events), so everything
 * it will need is resolved here, inside the caller's transaction: the
 * endpoints with the cloud's defaults, the secret files' contents, and a
 * fingerprint of the whole.  Options are validated again because a
 * catalog row may predate a stricter validator.
 */
AsrCredential *
asr_credential_lookup(const char *server_name, Oid roleid)
{
	ForeignServer *server;
	ForeignDataWrapper *fdw;
	UserMapping *um;
	AsrCredential *cred;
	MemoryContextCallback *cb;
	const AsrCloud *cloud;
	Oid			mapping_user;
	const char *arm_scope = NULL;
	const char *arm = NULL;
	const char *login = NULL;
	const char *imds = NULL;
	const char *auth = NULL;
	const char *jwt = NULL;
	const char *chain = NULL;
	ListCell   *lc;

	server = GetForeignServerByName(server_name, true);
	if (server == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" does not exist", server_name),
				 errhint("Create it with CREATE SERVER %s FOREIGN DATA WRAPPER %s OPTIONS (tenant_id '...').",
						 quote_identifier(server_name), ASR_FDW_NAME)));
	fdw = GetForeignDataWrapper(server->fdwid);
	if (strcmp(fdw->fdwname, ASR_FDW_NAME) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not an %s server", server_name, ASR_FDW_NAME),
				 errdetail("It belongs to foreign-data wrapper \"%s\".", fdw->fdwname)));

	if (SearchSysCacheExists2(USERMAPPINGUSERSERVER,
							  ObjectIdGetDatum(roleid),
							  ObjectIdGetDatum(server->serverid)))
		mapping_user = roleid;
	else if (SearchSysCacheExists2(USERMAPPINGUSERSERVER,
								   ObjectIdGetDatum(InvalidOid),
								   ObjectIdGetDatum(server->serverid)))
		mapping_user = InvalidOid;
	else
	{
		char	   *role = GetUserNameFromId(roleid, true);

		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no user mapping for role \"%s\" on server \"%s\"",
						role ? role : "?", server_name),
				 errdetail("The asr worker authenticates to Azure with the user mapping of its role, or the one for PUBLIC."),
				 errhint("Create one: CREATE USER MAPPING FOR %s SERVER %s OPTIONS (auth 'client_secret', client_id '...', client_secret '...').",
						 role ? quote_identifier(role) : "PUBLIC",
						 quote_identifier(server_name))));
	}
	um = GetUserMapping(roleid, server->serverid);

	/* the validator ran when they were set; check again, cheaply */
	asr_fdw_validate_options(server->options, ForeignServerRelationId, false);
	asr_fdw_validate_options(um->options, UserMappingRelationId, false);

	cred = palloc0(sizeof(AsrCredential));
	cb = palloc0(sizeof(MemoryContextCallback));
	cb->func = credential_reset_callback;
	cb->arg = cred;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);

	cred->server_name = pstrdup(server->servername);
	cred->server_id = server->serverid;
	cred->mapping_user = mapping_user;
	cred->cloud = ASR_DEFAULT_CLOUD;

	foreach(lc, server->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);
		char	   *v = defGetString(def);

		if (strcmp(def->defname, "tenant_id") == 0)
			cred->tenant_id = pstrdup(v);
		else if (strcmp(def->defname, "cloud") == 0)
			cred->cloud = v;
		else if (strcmp(def->defname, "arm_endpoint") == 0)
			arm = v;
		else if (strcmp(def->defname, "login_endpoint") == 0)
			login = v;
		else if (strcmp(def->defname, "imds_endpoint") == 0)
			imds = v;
		else if (strcmp(def->defname, "arm_scope") == 0)
			arm_scope = v;
	}
	foreach(lc, um->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);
		char	   *v = defGetString(def);

		if (strcmp(def->defname, "auth") == 0)
			auth = v;
		else if (strcmp(def->defname, "client_id") == 0)
			cred->client_id = pstrdup(v);
		else if (strcmp(def->defname, "client_secret") == 0)
			cred->client_secret = pstrdup(v);
		else if (strcmp(def->defname, "client_secret_file") == 0)
			cred->client_secret_file = pstrdup(v);
		else if (strcmp(def->defname, "certificate_file") == 0)
			cred->certificate_file = pstrdup(v);
		else if (strcmp(def->defname, "certificate_password") == 0)
			cred->certificate_password = pstrdup(v);
		else if (strcmp(def->defname, "send_certificate_chain") == 0)
			chain = v;
		else if (strcmp(def->defname, "jwt_algorithm") == 0)
			jwt = v;
	}

	/* our copies of the catalog's option strings: zero the secrets */
	foreach(lc, um->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "client_secret") == 0 ||
			strcmp(def->defname, "certificate_password") == 0)
		{
			char	   *v = defGetString(def);

			explicit_bzero(v, strlen(v));
		}
	}

	cloud = asr_cloud_lookup(cred->cloud);
	Assert(cloud != NULL);
	cred->cloud = pstrdup(cloud->name);
	cred->arm_endpoint = asr_fdw_base_url("arm_endpoint",
										   arm ? arm : cloud->arm_endpoint,
										   "https");
	cred->login_endpoint = asr_fdw_base_url("login_endpoint",
											 login ? login : cloud->login_endpoint,
											 "https");
	cred->imds_endpoint = asr_fdw_base_url("imds_endpoint",
											imds ? imds : ASR_DEFAULT_IMDS_ENDPOINT,
											"http");
	if (arm_scope)
	{
		size_t		n = strlen(arm_scope);
		size_t		suffix = strlen("/.default");

		cred->scope = pstrdup(arm_scope);
		if (n > suffix && strcmp(arm_scope + n - suffix, "/.default") == 0)
			cred->imds_resource = pnstrdup(arm_scope, n - suffix);
		else
			cred->imds_resource = pstrdup(arm_scope);
	}
	else
	{
		cred->scope = pstrdup(cloud->scope);
		cred->imds_resource = pstrdup(cloud->imds_resource);
	}

	if (strcmp(auth, "client_secret") == 0)
		cred->auth = ASR_AUTH_CLIENT_SECRET;
	else if (strcmp(auth, "certificate") == 0)
		cred->auth = ASR_AUTH_CERTIFICATE;
	else
		cred->auth = ASR_AUTH_MANAGED_IDENTITY;
	cred->jwt_algorithm = (jwt && strcmp(jwt, "PS256") == 0) ?
		ASR_JWT_PS256 : ASR_JWT_RS256;
	cred->send_certificate_chain = false;
	if (chain)
		(void) parse_bool(chain, &cred->send_certificate_chain);

	if (cred->auth != ASR_AUTH_MANAGED_IDENTITY)
	{
		if (cred->tenant_id == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("server \"%s\" has no option \"tenant_id\"", server_name),
					 errdetail("Auth '%s' signs in to a Microsoft Entra ID tenant.", auth),
					 errhint("ALTER SERVER %s OPTIONS (ADD tenant_id '...') with the directory (tenant) ID.",
							 quote_identifier(server_name))));
		cred->token_url = psprintf("%s/%s/oauth2/v2.0/token",
								   cred->login_endpoint, cred->tenant_id);
	}
	else
		cred->token_url = psprintf("%s/metadata/identity/oauth2/token",
								   cred->imds_endpoint);

	if (cred->client_secret_file)
	{
		size_t		len;
		char	   *data = read_credential_file(cred->client_secret_file,
												"client_secret_file", &len);

		/* a trailing newline is an artefact of the editor, not the secret */
		while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' ||
						   data[len - 1] == ' ' || data[len - 1] == '\t'))
			data[--len] = '\0';
		if (len == 0 || memchr(data, '\0', len) != NULL)
		{
			explicit_bzero(data, len);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("client_secret_file \"%s\" does not hold a client secret",
							cred->client_secret_file),
					 errdetail("The file is empty or holds binary data."),
					 errhint("Write the secret's value (not its ID) on the file's only line.")));
		}
		cred->client_secret = data;
	}
	if (cred->certificate_file)
		cred->certificate_data = read_credential_file(cred->certificate_file,
													  "certificate_file",
													  &cred->certificate_len);

	credential_fingerprint(cred);
	return cred;
}

/*
 * Read a file that holds a secret or a private key, refusing it unless
 * only the database user (or root, for group-readable files) can read it:
 * the same rule PostgreSQL applies to ssl_key_file.  The result is
 * NUL-terminated; the caller owns it and must zero it.
 */
static char *
read_credential_file(const char *path, const char *option, size_t *len)
{
	struct stat st;
	int			fd;
	char	   *buf;
	ssize_t		got;
	size_t		total = 0;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open %s \"%s\": %m", option, path),
				 errhint("The file is read by the PostgreSQL server process (operating system user of the server).")));
	if (fstat(fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat %s \"%s\": %m", option, path)));
	if (!S_ISREG(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" is not a regular file", option, path)));
	if ((st.st_uid == geteuid() && (st.st_mode & (S_IRWXG | S_IRWXO))) ||
		(st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO))))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" has group or world access", option, path),
				 errdetail("File must have permissions u=rw (0600) or less if owned by the database user, or permissions u=rw,g=r (0640) or less if owned by root."),
				 errhint("Run chmod 600 on the file.")));
	if (st.st_uid != geteuid() && st.st_uid != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" must be owned by the database user or root", option, path),
				 errhint("Run chown on the file so the operating system user of the server owns it.")));
	if (st.st_size > ASR_MAX_CREDENTIAL_FILE)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" is too large", option, path),
				 errdetail("The file has %lld bytes; at most %d are read.",
						   (long long) st.st_size, ASR_MAX_CREDENTIAL_FILE)));

	buf = palloc(st.st_size + 1);
	while (total < (size_t) st.st_size)
	{
		got = read(fd, buf + total, st.st_size - total);
		if (got < 0)
		{
			int			save = errno;

			explicit_bzero(buf, total);
			errno = save;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read %s \"%s\": %m", option, path)));
		}
		if (got == 0)
			break;
		total += got;
	}
	buf[total] = '\0';
	CloseTransientFile(fd);
	*len = total;
	return buf;
}

/*
 * Zero the secret fields of a credential, so that nothing of a secret
 * survives the memory context it was read into.
 */
void
asr_credential_wipe(AsrCredential *cred)
{
	if (cred->client_secret)
	{
		explicit_bzero(cred->client_secret, strlen(cred->client_secret));
		cred->client_secret = NULL;
	}
	if (cred->certificate_password)
	{
		explicit_bzero(cred->certificate_password,
					   strlen(cred->certificate_password));
		cred->certificate_password = NULL;
	}
	if (cred->certificate_data)
	{
		explicit_bzero(cred->certificate_data, cred->certificate_len);
		cred->certificate_data = NULL;
		cred->certificate_len = 0;
	}
}

/*
 * Runs when the lookup's memory context is reset or deleted, so that a
 * caller that merely drops its context leaves no secret behind.
 */
static void
credential_reset_callback(void *arg)
{
	asr_credential_wipe((AsrCredential *) arg);
}

/*
 * SHA-256 over every field, so that a changed secret, file or endpoint
 * makes a new token state (auth.c) instead of reusing a token obtained
 * with what the DBA has just replaced.
 */
static void
credential_fingerprint(AsrCredential *cred)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	const char *fields[16];
	char		flags[3];
	int			n = 0;
	int			i;
	bool		ok;

	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));

	fields[n++] = cred->tenant_id;
	fields[n++] = cred->cloud;
	fields[n++] = cred->arm_endpoint;
	fields[n++] = cred->login_endpoint;
	fields[n++] = cred->imds_endpoint;
	fields[n++] = cred->scope;
	fields[n++] = cred->imds_resource;
	fields[n++] = cred->token_url;
	fields[n++] = cred->client_id;
	fields[n++] = cred->client_secret;
	fields[n++] = cred->certificate_password;
	flags[0] = '0' + (int) cred->auth;
	flags[1] = '0' + (int) cred->jwt_algorithm + 2 * cred->send_certificate_chain;
	flags[2] = '\0';
	fields[n++] = flags;

	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
	for (i = 0; ok && i < n; i++)
	{
		const char *f = fields[i] ? fields[i] : "";

		/* the terminating NUL separates fields; NULL and "" are alike */
		ok = EVP_DigestUpdate(ctx, f, strlen(f) + 1) == 1;
	}
	if (ok && cred->certificate_data)
		ok = EVP_DigestUpdate(ctx, cred->certificate_data,
							  cred->certificate_len) == 1;
	if (ok)
		ok = EVP_DigestFinal_ex(ctx, md, &mdlen) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a SHA-256 digest")));

	for (i = 0; i < (int) mdlen && i < 32; i++)
		snprintf(cred->fingerprint + 2 * i, 3, "%02x", md[i]);
	explicit_bzero(md, sizeof(md));
}
