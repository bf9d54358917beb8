/*-------------------------------------------------------------------------
 *
 * arm.h
 *	  Azure Resource Manager and Site Recovery protocol: URLs, request
 *	  bodies, long-running-operation rules, job and item documents.
 *
 * Pure functions over strings and jsonb: no SQL, no network.  The worker
 * feeds them responses and sends what they build.
 *
 * IDENTIFICATION
 *	  src/arm.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_ARM_H
#define ASR_ARM_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "http.h"

/* The segments of a replicated item's ARM id (compared case-insensitively). */
typedef struct AsrItemPath
{
	char	   *subscription;
	char	   *resource_group;
	char	   *vault;
	char	   *fabric;
	char	   *container;
	char	   *item;
} AsrItemPath;

extern bool asr_arm_parse_item_id(const char *arm_id, AsrItemPath *path);
extern bool asr_arm_ids_equal(const char *a, const char *b);

/* URLs: base is the ARM endpoint, paths are ARM ids as Azure spells them */
extern char *asr_arm_url(const char *base, const char *path, const char *suffix);
extern char *asr_arm_vault_path(const char *subscription, const char *rg,
								const char *vault);
extern char *asr_arm_container_path(const char *item_arm_id);

/* request bodies (JSON text) */
extern char *asr_arm_failover_body(const char *point_id, bool shutdown_source);
extern char *asr_arm_test_failover_body(const char *point_id, const char *network_id);
extern char *asr_arm_test_failover_cleanup_body(const char *notes);
extern char *asr_arm_apply_point_body(const char *point_id);
extern char *asr_arm_resume_body(const char *comment);

/* the initial answer of an action */
extern char *asr_arm_job_name(const AsrHttpResponse *resp);

/* retry and pacing */
typedef enum AsrRetryClass
{
	ASR_OK,						/* 2xx */
	ASR_RETRY,					/* transport error, 408, 429, 5xx but 501/505 */
	ASR_FATAL					/* any other status: the request was refused */
} AsrRetryClass;

extern AsrRetryClass asr_arm_classify(const AsrHttpResponse *resp);
extern long asr_arm_retry_after_ms(const AsrHttpResponse *resp, long fallback_ms);
extern long asr_arm_backoff_ms(int attempt);
extern bool asr_arm_ratelimit_remaining(const AsrHttpResponse *resp,
										const char *kind, long *remaining);

/* ARM / ASR error bodies, in words a DBA can act on */
typedef struct AsrArmError
{
	char	   *code;
	char	   *message;
	char	   *possible_causes;
	char	   *recommended_action;
} AsrArmError;

extern AsrArmError *asr_arm_parse_error(const AsrHttpResponse *resp);
extern char *asr_arm_error_text(const AsrArmError *err);

/* an ASR job document (replicationJobs/{name}) */
typedef struct AsrJobDoc
{
	char	   *name;
	char	   *state;			/* as Azure spells it */
	char	   *state_description;
	char	   *scenario;
	char	   *activity_id;
	int			progress;		/* 0..100 */
	char	   *current_task;	/* friendly name of the running task */
	char	   *tasks_json;		/* properties.tasks as text */
	AsrArmError *error;			/* first job-level or task-level error */
	char	   *new_item_id;	/* switch protection */
	char	   *failover_point_id;	/* protectedItemDetails[0].recoveryPointId */
	List	   *allowed_actions;	/* of char * */
} AsrJobDoc;

typedef enum AsrJobOutcome
{
	ASR_JOB_RUNNING,
	ASR_JOB_SUSPENDED,
	ASR_JOB_SUCCEEDED,
	ASR_JOB_FAILED,
	ASR_JOB_CANCELLED
} AsrJobOutcome;

extern AsrJobDoc *asr_arm_parse_job(const char *body, size_t len, char **error);
extern AsrJobOutcome asr_arm_job_outcome(const char *state);

/* operation status documents (Azure-AsyncOperation) */
extern AsrJobOutcome asr_arm_operation_outcome(const char *body, size_t len,
											   char **error);

#endif							/* ASR_ARM_H */
