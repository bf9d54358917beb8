/*-------------------------------------------------------------------------
 *
 * api.c
 *	  The SQL entry points of the action functions: argument checks, state
 *	  validation, enqueue.
 *
 * Every action function runs SECURITY DEFINER with a pinned search_path,
 * checks its arguments, finds and locks the item, validates the action
 * against the item's last known state and then records one queued job in
 * the caller's transaction; an invalid call raises an error and records
 * nothing.  No network I/O happens here: the worker sends the job after
 * the transaction commits.
 *
 * IDENTIFICATION
 *	  src/api.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "armid.h"
#include "items.h"
#include "jobs.h"
#include "reprotect.h"
#include "util.h"
#include "validate.h"

PG_FUNCTION_INFO_V1(asr_failover);
PG_FUNCTION_INFO_V1(asr_test_failover);
PG_FUNCTION_INFO_V1(asr_test_failover_cleanup);
PG_FUNCTION_INFO_V1(asr_change_recovery_point);
PG_FUNCTION_INFO_V1(asr_commit);
PG_FUNCTION_INFO_V1(asr_reprotect);
PG_FUNCTION_INFO_V1(asr_reprotect_preview);

/* Azure's limit on test failover cleanup comments */
#define ASR_MAX_COMMENT 1024

/*
 * A text argument, or an error naming it when NULL: none of the action
 * functions is STRICT, because a NULL that silently returns NULL would
 * look like success.
 */
static char *
required_text(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/* A text argument, NULL when SQL NULL. */
static char *
optional_text(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/* jsonb from JSON text built here (PostgreSQL's own parser). */
static Jsonb *
json_parse(const char *text)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

/* A JSON string, or null. */
static void
append_json_string(StringInfo buf, const char *s)
{
	if (s)
		escape_json(buf, s);
	else
		appendStringInfoString(buf, "null");
}

/*
 * {"method": "POST", "path": "<item>/<op>", "body": <body or absent>}
 */
static Jsonb *
item_request(const AsrItem *item, const char *operation, const char *body)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"method\": \"POST\", \"path\": ");
	escape_json(&buf, psprintf("%s/%s", item->arm_id, operation));
	if (body)
		appendStringInfo(&buf, ", \"body\": %s", body);
	appendStringInfoChar(&buf, '}');
	return json_parse(buf.data);
}

/* the A2A providerSpecificDetails with an optional recoveryPointId */
static char *
a2a_details(const AsrPointChoice *point)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"instanceType\": \"A2A\"");
	if (point && !point->latest)
	{
		appendStringInfoString(&buf, ", \"recoveryPointId\": ");
		escape_json(&buf, point->arm_id);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* fill the point columns of a job request */
static void
request_point(AsrJobRequest *req, const char *requested, const AsrPointChoice *point)
{
	req->requested_point = requested;
	req->recovery_point = point->latest ? NULL : point->arm_id;
	req->recovery_point_time = point->latest ? 0 : point->point_time;
	req->disks_covered = point->latest ? -1 : point->disks_covered;
	req->disks_total = point->latest ? -1 : point->disks_total;
	req->detail = psprintf("recovery point %s", point->label);
}

/*
 * The common start of every item action: refuse on a standby or in a
 * read-only transaction, find and lock the item, validate the action.
 */
static void
begin_action(const char *function, const char *action, const char *spec,
			 AsrItem *item)
{
	asr_check_writable(function);
	asr_item_resolve(spec, true, item);
	asr_validate_action(item, action);
}

/*
 * The common end of every item action: the request to POST to the item's
 * operation (unless req->request is set already), a warning for a point
 * that misses disks, and the job.  Without a point the job records no
 * coverage.
 */
static int64
enqueue(AsrJobRequest *req, const AsrItem *item, const char *action,
		const char *operation, const char *body, const AsrPointChoice *pc)
{
	req->item_id = item->item_id;
	req->item_name = item->name;
	req->action = action;
	if (operation)
		req->request = item_request(item, operation, body);
	if (pc)
		asr_point_warn_coverage(item, pc);
	else
		req->disks_covered = req->disks_total = -1;
	return asr_job_insert(req);
}

/*
 * asr_failover(item, point DEFAULT 'latest', shutdown_source DEFAULT true)
 *
 * Always PrimaryToRecovery of the item as Azure reports it now: after a
 * reprotect the item lives on the other side, so the same call fails back.
 */
Datum
asr_failover(PG_FUNCTION_ARGS)
{
	char	   *spec = optional_text(fcinfo, 0);
	char	   *point = optional_text(fcinfo, 1);
	bool		shutdown;
	AsrItem		item;
	AsrPointChoice pc;
	AsrJobRequest req = {0};
	StringInfoData body;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("shutdown_source must not be NULL"),
				 errhint("Pass true to shut the source VM down before the failover (best effort), false to leave it running.")));
	shutdown = PG_GETARG_BOOL(2);
	if (spec == NULL)
		(void) required_text(fcinfo, 0, "item");

	begin_action("asr_failover", "failover", spec, &item);
	asr_point_resolve(&item, point, true, "asr_failover", &pc);

	initStringInfo(&body);
	appendStringInfo(&body, "{\"properties\": {\"failoverDirection\": \"PrimaryToRecovery\", "
					 "\"sourceSiteOperations\": \"%s\", \"providerSpecificDetails\": %s}}",
					 shutdown ? "Required" : "NotRequired", a2a_details(&pc));

	request_point(&req, point, &pc);
	req.options = json_parse(shutdown ? "{\"shutdown_source\": true}" : "{\"shutdown_source\": false}");
	PG_RETURN_INT64(enqueue(&req, &item, "failover", "unplannedFailover", body.data, &pc));
}

/*
 * asr_test_failover(item, point DEFAULT 'latest_processed', network DEFAULT NULL)
 */
Datum
asr_test_failover(PG_FUNCTION_ARGS)
{
	char	   *spec = optional_text(fcinfo, 0);
	char	   *point = optional_text(fcinfo, 1);
	char	   *network = optional_text(fcinfo, 2);
	AsrItem		item;
	AsrPointChoice pc;
	AsrJobRequest req = {0};
	StringInfoData body;
	StringInfoData options;

	if (spec == NULL)
		(void) required_text(fcinfo, 0, "item");
	if (network != NULL)
	{
		if (network[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("network must not be empty"),
					 errhint("Give the ARM id of an isolated virtual network in the recovery region, or NULL to attach no network.")));
		asr_arm_id_check(network, ARM_SHAPE_VNET, "network");
	}

	begin_action("asr_test_failover", "test_failover", spec, &item);
	asr_point_resolve(&item, point, true, "asr_test_failover", &pc);

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"properties\": {\"failoverDirection\": \"PrimaryToRecovery\", ");
	if (network)
	{
		appendStringInfoString(&body, "\"networkType\": \"VmNetworkAsInput\", \"networkId\": ");
		escape_json(&body, network);
	}
	else
		appendStringInfoString(&body, "\"networkType\": \"NoNetworkAttachAsInput\"");
	appendStringInfo(&body, ", \"providerSpecificDetails\": %s}}", a2a_details(&pc));

	initStringInfo(&options);
	appendStringInfoString(&options, "{\"network\": ");
	append_json_string(&options, network);
	appendStringInfoChar(&options, '}');

	request_point(&req, point, &pc);
	req.options = json_parse(options.data);
	PG_RETURN_INT64(enqueue(&req, &item, "test_failover", "testFailover", body.data, &pc));
}

/*
 * asr_test_failover_cleanup(item, notes DEFAULT NULL)
 *
 * Azure keeps the notes with the test failover; without notes asr sends a
 * comment naming the requester (Azure's tools always send one).
 */
Datum
asr_test_failover_cleanup(PG_FUNCTION_ARGS)
{
	char	   *spec = optional_text(fcinfo, 0);
	char	   *notes = optional_text(fcinfo, 1);
	AsrItem		item;
	AsrJobRequest req = {0};
	StringInfoData body;
	StringInfoData options;

	if (spec == NULL)
		(void) required_text(fcinfo, 0, "item");
	if (notes && strlen(notes) > ASR_MAX_COMMENT)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("notes must be at most %d characters long", ASR_MAX_COMMENT),
				 errdetail("Azure accepts test failover cleanup comments of up to %d characters; these have %zu.",
						   ASR_MAX_COMMENT, strlen(notes))));

	begin_action("asr_test_failover_cleanup", "test_failover_cleanup", spec, &item);

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"properties\": {\"comments\": ");
	escape_json(&body, notes ? notes :
				psprintf("Test failover cleanup requested by %s",
						 GetUserNameFromId(GetSessionUserId(), false)));
	appendStringInfoString(&body, "}}");
	initStringInfo(&options);
	appendStringInfoString(&options, "{\"notes\": ");
	append_json_string(&options, notes);
	appendStringInfoChar(&options, '}');

	req.options = json_parse(options.data);
	PG_RETURN_INT64(enqueue(&req, &item, "test_failover_cleanup", "testFailoverCleanup",
							body.data, NULL));
}

/*
 * asr_change_recovery_point(item, point): only an existing point, never
 * "latest", while the failover is not committed.
 */
Datum
asr_change_recovery_point(PG_FUNCTION_ARGS)
{
	char	   *spec = optional_text(fcinfo, 0);
	char	   *point = optional_text(fcinfo, 1);
	AsrItem		item;
	AsrPointChoice pc;
	AsrJobRequest req = {0};
	StringInfoData body;

	if (spec == NULL)
		(void) required_text(fcinfo, 0, "item");
	if (point == NULL)
		(void) required_text(fcinfo, 1, "point");

	begin_action("asr_change_recovery_point", "change_recovery_point", spec, &item);
	asr_point_resolve(&item, point, false, "asr_change_recovery_point", &pc);

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"properties\": {\"recoveryPointId\": ");
	escape_json(&body, pc.arm_id);
	appendStringInfoString(&body, ", \"providerSpecificDetails\": {\"instanceType\": \"A2A\"}}}");

	request_point(&req, point, &pc);
	PG_RETURN_INT64(enqueue(&req, &item, "change_recovery_point", "applyRecoveryPoint",
							body.data, &pc));
}

/*
 * asr_commit(item): after it Azure deletes every recovery point.
 */
Datum
asr_commit(PG_FUNCTION_ARGS)
{
	char	   *spec = optional_text(fcinfo, 0);
	AsrItem		item;
	AsrJobRequest req = {0};

	if (spec == NULL)
		(void) required_text(fcinfo, 0, "item");
	begin_action("asr_commit", "commit", spec, &item);

	PG_RETURN_INT64(enqueue(&req, &item, "commit", "failoverCommit", NULL, NULL));
}

/*
 * The item of asr_reprotect and asr_reprotect_preview, after checking that
 * neither it nor the options are NULL.
 */
static char *
reprotect_arguments(FunctionCallInfo fcinfo)
{
	char	   *spec = required_text(fcinfo, 0, "item");

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("options must not be NULL"),
				 errhint("Pass '{}' to use the vault's reprotect_options alone.")));
	return spec;
}

/*
 * asr_reprotect(item, options DEFAULT '{}'): switch protection, every
 * input derived from the item but the cache storage account.
 */
Datum
asr_reprotect(PG_FUNCTION_ARGS)
{
	char	   *spec = reprotect_arguments(fcinfo);
	AsrItem		item;
	AsrJobRequest req = {0};
	Jsonb	   *request;
	Jsonb	   *merged;

	begin_action("asr_reprotect", "reprotect", spec, &item);
	(void) asr_reprotect_plan(&item, PG_GETARG_JSONB_P(1), &request, &merged);

	req.options = merged;
	req.request = request;
	PG_RETURN_INT64(enqueue(&req, &item, "reprotect", NULL, NULL, NULL));
}

/*
 * asr_reprotect_preview(item, options DEFAULT '{}'): what asr_reprotect
 * would send, validated the same way; records nothing.  Allowed on a
 * standby: it only reads.
 */
Datum
asr_reprotect_preview(PG_FUNCTION_ARGS)
{
	char	   *spec = reprotect_arguments(fcinfo);
	AsrItem		item;
	Jsonb	   *request;
	Jsonb	   *merged;

	asr_item_resolve(spec, false, &item);
	asr_validate_action(&item, "reprotect");
	PG_RETURN_JSONB_P(asr_reprotect_plan(&item, PG_GETARG_JSONB_P(1), &request, &merged));
}
