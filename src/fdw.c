/*-------------------------------------------------------------------------
 *
 * fdw.c
 *	  The asr_azure foreign-data wrapper's option validator.
 *
 * Credentials follow the postgres_fdw / dblink model (pg-practice.md §4):
 * a SERVER holds what everybody may read (tenant, cloud, endpoints), a
 * USER MAPPING holds the application and its secret, and pg_user_mappings
 * shows a mapping's options only to those entitled to them.  The validator
 * therefore refuses secrets on a server outright, and refuses unknown
 * options and malformed values when the DBA types them rather than when
 * the worker first needs a token hours later.
 *
 * File options (client_secret_file, certificate_file) make the server
 * process read a file and send what it holds to a login endpoint, so only
 * roles that may read server files can set them, and the files themselves
 * must be protected the way ssl_key_file must be (credlookup.c reads them).
 *
 * Arrows: PostgreSQL calls asr_azure_validator() on CREATE/ALTER SERVER
 * and USER MAPPING; credlookup.c calls asr_fdw_validate_options() and
 * asr_fdw_base_url() again on what it reads.  This file calls only the
 * cloud table (auth.c), the GUID check (armid.c) and libcurl's URL parser;
 * it never reads a file or touches the network.
 *
 * IDENTIFICATION
 *	  src/fdw.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "access/reloptions.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "armid.h"
#include "auth.h"
#include "fdw.h"

PG_FUNCTION_INFO_V1(asr_azure_validator);

typedef struct AsrOption
{
	const char *name;
	Oid			context;		/* ForeignServerRelationId or
								 * UserMappingRelationId */
	bool		secret;			/* never on a server */
} AsrOption;

static const AsrOption asr_options[] = {
	/* server: readable by everyone, so nothing secret */
	{"tenant_id", ForeignServerRelationId, false},
	{"cloud", ForeignServerRelationId, false},
	{"arm_endpoint", ForeignServerRelationId, false},
	{"login_endpoint", ForeignServerRelationId, false},
	{"imds_endpoint", ForeignServerRelationId, false},
	{"arm_scope", ForeignServerRelationId, false},
	/* user mapping */
	{"auth", UserMappingRelationId, false},
	{"client_id", UserMappingRelationId, false},
	{"client_secret", UserMappingRelationId, true},
	{"client_secret_file", UserMappingRelationId, false},
	{"certificate_file", UserMappingRelationId, false},
	{"certificate_password", UserMappingRelationId, true},
	{"send_certificate_chain", UserMappingRelationId, false},
	{"jwt_algorithm", UserMappingRelationId, false},
	{NULL, InvalidOid, false}
};

/* the options a mapping may carry besides auth and client_id, per mode */
static const char *const secret_mode_options[] = {
	"client_secret", "client_secret_file", NULL
};
static const char *const certificate_mode_options[] = {
	"certificate_file", "certificate_password", "send_certificate_chain",
	"jwt_algorithm", NULL
};

typedef struct MappingOptions
{
	const char *auth;
	const char *client_id;
	const char *client_secret;
	const char *client_secret_file;
	const char *certificate_file;
	const char *certificate_password;
	const char *send_certificate_chain;
	const char *jwt_algorithm;
} MappingOptions;

static void refuse_option(const char *name, Oid context);
static void check_value(DefElem *def, bool check_privileges);
static void check_mapping(const MappingOptions *m, bool check_privileges);
static const char *check_base_url(const char *url, const char *scheme,
								  bool path_allowed, char **normalized);

/*
 * The validator of asr_azure.  PostgreSQL calls it with the complete
 * option list an object will have after CREATE or ALTER, so combinations
 * (auth-specific requirements) are checked here as well as single values.
 */
Datum
asr_azure_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);

	asr_fdw_validate_options(options, catalog, true);

	PG_RETURN_VOID();
}

/*
 * Check every option of one object.  The credential lookup runs this again
 * on what it reads (without the privilege checks, which concern whoever
 * sets an option, not the worker that uses it).
 */
void
asr_fdw_validate_options(List *options, Oid context, bool check_privileges)
{
	MappingOptions m;
	ListCell   *lc;

	memset(&m, 0, sizeof(m));

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);
		const AsrOption *opt;
		bool		found = false;

		for (opt = asr_options; opt->name; opt++)
		{
			if (opt->context == context && strcmp(opt->name, def->defname) == 0)
			{
				found = true;
				break;
			}
		}
		if (!found)
			refuse_option(def->defname, context);

		check_value(def, check_privileges);

		if (context == UserMappingRelationId)
		{
			const char *v = defGetString(def);

			if (strcmp(def->defname, "auth") == 0)
				m.auth = v;
			else if (strcmp(def->defname, "client_id") == 0)
				m.client_id = v;
			else if (strcmp(def->defname, "client_secret") == 0)
				m.client_secret = v;
			else if (strcmp(def->defname, "client_secret_file") == 0)
				m.client_secret_file = v;
			else if (strcmp(def->defname, "certificate_file") == 0)
				m.certificate_file = v;
			else if (strcmp(def->defname, "certificate_password") == 0)
				m.certificate_password = v;
			else if (strcmp(def->defname, "send_certificate_chain") == 0)
				m.send_certificate_chain = v;
			else if (strcmp(def->defname, "jwt_algorithm") == 0)
				m.jwt_algorithm = v;
		}
	}

	if (context == UserMappingRelationId)
		check_mapping(&m, check_privileges);
}

/*
 * An option that does not belong here.  Secrets get their own message:
 * the DBA meant well, and needs to know where the secret should go rather
 * than a bare list of valid names.
 */
static void
refuse_option(const char *name, Oid context)
{
	const AsrOption *opt;
	StringInfoData valid;
	const AsrOption *elsewhere = NULL;

	initStringInfo(&valid);
	for (opt = asr_options; opt->name; opt++)
	{
		if (opt->context == context)
			appendStringInfo(&valid, "%s%s", valid.len ? ", " : "", opt->name);
		else if (strcmp(opt->name, name) == 0)
			elsewhere = opt;
	}

	if (elsewhere && elsewhere->secret && context == ForeignServerRelationId)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("option \"%s\" is a secret and is not accepted on a server", name),
				 errdetail("Options of a server are readable by every user."),
				 errhint("Put %s in a user mapping: CREATE USER MAPPING FOR <role> SERVER <server> OPTIONS (%s '...').",
						 name, name)));

	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
			 errmsg("invalid option \"%s\"", name),
			 elsewhere ? errdetail("\"%s\" is an option of a %s.", name,
								   elsewhere->context == ForeignServerRelationId ?
								   "server" : "user mapping") : 0,
			 valid.len > 0 ?
			 errhint("Valid options in this context are: %s.", valid.data) :
			 errhint("Foreign-data wrapper %s takes no options; set them on a server or a user mapping.",
					 ASR_FDW_NAME)));
}

/*
 * Check one value on its own.  Error messages may quote a value except
 * for the two secrets, whose content never appears anywhere.
 */
static void
check_value(DefElem *def, bool check_privileges)
{
	const char *name = def->defname;
	const char *value = defGetString(def);

	if (value[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"%s\" must not be empty", name)));

	if (strcmp(name, "tenant_id") == 0 || strcmp(name, "client_id") == 0)
	{
		if (!asr_is_guid(value))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid value for option \"%s\": \"%s\"", name, value),
					 errdetail("%s must be a GUID such as 00000000-0000-0000-0000-000000000000.",
							   name),
					 errhint("%s",
							 strcmp(name, "tenant_id") == 0 ?
							 "Use the directory (tenant) ID shown in the app registration's overview, not a domain name." :
							 "Use the application (client) ID shown in the app registration's overview.")));
	}
	else if (strcmp(name, "cloud") == 0)
	{
		if (asr_cloud_lookup(value) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid value for option \"cloud\": \"%s\"", value),
					 errhint("Valid values are: %s.", asr_cloud_names())));
	}
	else if (strcmp(name, "arm_endpoint") == 0 ||
			 strcmp(name, "login_endpoint") == 0)
		(void) asr_fdw_base_url(name, value, "https");
	else if (strcmp(name, "imds_endpoint") == 0)
		(void) asr_fdw_base_url(name, value, "http");
	else if (strcmp(name, "arm_scope") == 0)
	{
		const char *why = check_base_url(value, "https", true, NULL);

		if (why)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid value for option \"arm_scope\": \"%s\"", value),
					 errdetail("%s", why),
					 errhint("A scope is an https URI such as https://management.azure.com/.default.")));
	}
	else if (strcmp(name, "auth") == 0)
	{
		if (strcmp(value, "client_secret") != 0 &&
			strcmp(value, "certificate") != 0 &&
			strcmp(value, "managed_identity") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid value for option \"auth\": \"%s\"", value),
					 errhint("Valid values are: client_secret, certificate, managed_identity.")));
	}
	else if (strcmp(name, "jwt_algorithm") == 0)
	{
		if (strcmp(value, "RS256") != 0 && strcmp(value, "PS256") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid value for option \"jwt_algorithm\": \"%s\"", value),
					 errhint("Valid values are: RS256 (the default, with an x5t SHA-1 thumbprint), PS256 (with an x5t#S256 SHA-256 thumbprint).")));
	}
	else if (strcmp(name, "send_certificate_chain") == 0)
	{
		bool		b;

		if (!parse_bool(value, &b))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid value for option \"send_certificate_chain\": \"%s\"", value),
					 errhint("Use a boolean: true or false.")));
	}
	else if (strcmp(name, "client_secret_file") == 0 ||
			 strcmp(name, "certificate_file") == 0)
	{
		if (!is_absolute_path(value))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid value for option \"%s\": \"%s\"", name, value),
					 errdetail("The path must be absolute."),
					 errhint("The file is read by the server process, from the server's file system.")));
		if (check_privileges && !superuser() &&
			!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to set option \"%s\"", name),
					 errdetail("The server process reads this file and sends what it holds to the login endpoint."),
					 errhint("%s",
							 strcmp(name, "client_secret_file") == 0 ?
							 "Only superusers and members of pg_read_server_files may name a file; use option client_secret instead." :
							 "Only superusers and members of pg_read_server_files may name a file; ask one of them to set it.")));
	}
	/* client_secret, certificate_password: any non-empty string */
}

/*
 * The combination of a user mapping's options, by authentication mode.
 */
static void
check_mapping(const MappingOptions *m, bool check_privileges)
{
	const char *const *forbidden;
	const char *const *p;
	const char *mode = m->auth;
	const char *hint;

	if (mode == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("user mapping option \"auth\" is required"),
				 errhint("Set auth to client_secret, certificate or managed_identity.")));

	if (strcmp(mode, "client_secret") == 0)
	{
		forbidden = certificate_mode_options;
		hint = "Options with auth 'client_secret': client_id, and one of client_secret, client_secret_file.";
		if (m->client_secret && m->client_secret_file)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("options \"client_secret\" and \"client_secret_file\" cannot both be set"),
					 errhint("Keep one of them: DROP the other with ALTER USER MAPPING ... OPTIONS (DROP ...).")));
		if (!m->client_secret && !m->client_secret_file)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("auth 'client_secret' needs option \"client_secret\" or \"client_secret_file\""),
					 errhint("%s", hint)));
	}
	else if (strcmp(mode, "certificate") == 0)
	{
		forbidden = secret_mode_options;
		hint = "Options with auth 'certificate': client_id, certificate_file, certificate_password, send_certificate_chain, jwt_algorithm.";
		if (!m->certificate_file)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("auth 'certificate' needs option \"certificate_file\""),
					 errhint("Name a PEM file holding the private key and the certificate, or a PKCS#12 file (with certificate_password).")));
	}
	else
	{
		static const char *const all[] = {
			"client_secret", "client_secret_file", "certificate_file",
			"certificate_password", "send_certificate_chain",
			"jwt_algorithm", NULL
		};

		forbidden = all;
		hint = "Options with auth 'managed_identity': client_id (of a user-assigned identity; omit it for the system-assigned one).";
		if (check_privileges && !superuser())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to use auth 'managed_identity'"),
					 errdetail("A managed identity belongs to the machine PostgreSQL runs on, not to any role."),
					 errhint("Ask a superuser to create this user mapping.")));
	}

	if (strcmp(mode, "managed_identity") != 0 && m->client_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("auth '%s' needs option \"client_id\"", mode),
				 errhint("%s", hint)));

	for (p = forbidden; *p; p++)
	{
		bool		set;

		set = (strcmp(*p, "client_secret") == 0 && m->client_secret) ||
			(strcmp(*p, "client_secret_file") == 0 && m->client_secret_file) ||
			(strcmp(*p, "certificate_file") == 0 && m->certificate_file) ||
			(strcmp(*p, "certificate_password") == 0 && m->certificate_password) ||
			(strcmp(*p, "send_certificate_chain") == 0 && m->send_certificate_chain) ||
			(strcmp(*p, "jwt_algorithm") == 0 && m->jwt_algorithm);
		if (set)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" cannot be used with auth '%s'", *p, mode),
					 errhint("%s", hint)));
	}
}

/*
 * Parse url with libcurl's URL API and check it is scheme://host[:port]
 * (a path only when path_allowed), with no userinfo, query or fragment.
 * Returns NULL when it is, else a sentence saying what is wrong.  When
 * normalized is given it receives "scheme://host[:port]", palloc'd.
 * libcurl's handle is released before returning, so the caller may
 * ereport freely.
 */
static const char *
check_base_url(const char *url, const char *scheme, bool path_allowed,
			   char **normalized)
{
	CURLU	   *u = curl_url();
	const char *why = NULL;
	char	   *part = NULL;
	char	   *host = NULL;
	char	   *port = NULL;
	char	   *probe = NULL;

	if (u == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));

	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		why = "It is not a valid absolute URL.";
	else if (curl_url_get(u, CURLUPART_SCHEME, &part, 0) != CURLUE_OK ||
			 pg_strcasecmp(part, scheme) != 0)
		why = strcmp(scheme, "https") == 0 ?
			"The URL must use https." :
			"The URL must use plain http (the instance metadata service speaks nothing else).";
	else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
			 host[0] == '\0')
		why = "The URL must name a host.";

	if (why == NULL &&
		curl_url_get(u, CURLUPART_USER, &probe, 0) != CURLUE_NO_USER)
		why = "The URL must not contain a user name or password.";
	curl_free(probe);
	probe = NULL;
	if (why == NULL &&
		curl_url_get(u, CURLUPART_PASSWORD, &probe, 0) != CURLUE_NO_PASSWORD)
		why = "The URL must not contain a user name or password.";
	curl_free(probe);
	probe = NULL;
	if (why == NULL &&
		curl_url_get(u, CURLUPART_QUERY, &probe, 0) != CURLUE_NO_QUERY)
		why = "The URL must not contain a query.";
	curl_free(probe);
	probe = NULL;
	if (why == NULL &&
		curl_url_get(u, CURLUPART_FRAGMENT, &probe, 0) != CURLUE_NO_FRAGMENT)
		why = "The URL must not contain a fragment.";
	curl_free(probe);
	probe = NULL;
	if (why == NULL && !path_allowed &&
		curl_url_get(u, CURLUPART_PATH, &probe, 0) == CURLUE_OK &&
		strcmp(probe, "/") != 0 && probe[0] != '\0')
		why = "The URL must be a base URL (scheme://host[:port]) without a path.";
	curl_free(probe);
	probe = NULL;

	if (why == NULL && normalized)
	{
		char	   *h = pstrdup(host);
		char	   *s = pstrdup(part);

		if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
			*normalized = psprintf("%s://%s:%s", s, h, port);
		else
			*normalized = psprintf("%s://%s", s, h);
		pfree(h);
		pfree(s);
	}

	curl_free(port);
	curl_free(host);
	curl_free(part);
	curl_url_cleanup(u);
	return why;
}

/*
 * An endpoint option's value as a normalized base URL, or an error that
 * quotes it (endpoints are not secret).
 */
char *
asr_fdw_base_url(const char *option, const char *value, const char *scheme)
{
	char	   *normalized = NULL;
	const char *why = check_base_url(value, scheme, false, &normalized);

	if (why)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"", option, value),
				 errdetail("%s", why),
				 errhint("Write %s://host or %s://host:port.", scheme, scheme)));
	return normalized;
}
