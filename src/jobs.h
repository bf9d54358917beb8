/*-------------------------------------------------------------------------
 *
 * jobs.h
 *	  Job rows: insert, claim, state transitions, the audit trail.
 *
 * The worker's whole interface to asr_jobs and asr_job_events.  Every
 * function runs in the caller's transaction (the caller starts and commits
 * it), connects to SPI itself, and pins search_path while it runs SQL.
 * Strings returned are palloc'd in the caller's memory context.
 *
 * IDENTIFICATION
 *	  src/jobs.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_JOBS_H
#define ASR_JOBS_H

#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* A new job, as the action functions record it. */
typedef struct AsrJobRequest
{
	int64		item_id;
	const char *item_name;		/* the item's name, for the NOTIFY payload */
	const char *action;			/* failover, commit, ... (asr_jobs.action) */
	const char *requested_point;	/* as the caller wrote it, or NULL */
	const char *recovery_point; /* ARM id to send; NULL = latest */
	TimestampTz recovery_point_time;	/* 0 = none */
	int			disks_covered;	/* -1 = unknown */
	int			disks_total;	/* -1 = unknown */
	Jsonb	   *options;		/* NULL = {} */
	Jsonb	   *request;		/* {"method","path","body"} or NULL */
	int64		restart_of;		/* 0 = not a restart */
	const char *azure_job;		/* a restart's ASR job, else NULL */
	const char *detail;			/* extra words for the 'queued' event */
} AsrJobRequest;

/*
 * A change to a job.  NULL / -1 / 0 members leave the column as it is.
 * A new state writes an asr_job_events row, NOTIFY asr_jobs, and (like any
 * change) wakes asr_wait callers once the transaction commits.
 */
typedef struct AsrJobUpdate
{
	const char *state;			/* new state, NULL = unchanged */
	const char *detail;			/* event detail (with a new state) */
	int			progress;		/* 0..100, -1 = unchanged */
	Jsonb	   *tasks;			/* Azure's properties.tasks */
	const char *azure_job;		/* ASR job name (GUID) */
	const char *azure_state;	/* ASR job state as Azure spells it */
	const char *error_code;
	const char *error_message;
	const char *used_recovery_point;	/* item's failoverRecoveryPointId */
	const char *new_item_arm_id;	/* newReplicationProtectedItemId */
	const char *operation_url;	/* Azure-AsyncOperation */
	const char *location_url;	/* Location */
	TimestampTz next_poll_at;	/* 0 = unchanged */
	const char *last_error;		/* "" clears it */
	bool		count_attempt;	/* attempts = attempts + 1 */
	bool		clear_control;	/* a cancel/resume request was handled */
} AsrJobUpdate;

/* A job as loaded by asr_job_load(). */
typedef struct AsrJob
{
	int64		job_id;
	int64		item_id;
	char	   *item_name;
	char	   *item_arm_id;
	char	   *action;
	char	   *state;
	int			progress;
	char	   *current_task;	/* friendlyName of the task in progress */
	char	   *azure_job;
	char	   *azure_state;
	char	   *error_code;
	char	   *error_message;
	char	   *recovery_point;
	char	   *control;		/* pending cancel/resume, or NULL */
	char	   *requested_by;
	TimestampTz requested_at;
	int64		restart_of;
	char	   *client_request_id;
	Jsonb	   *request;
	Jsonb	   *options;
	bool		created_here;	/* inserted by the current transaction */
} AsrJob;

extern bool asr_job_state_is_final(const char *state);
extern int64 asr_job_insert(const AsrJobRequest *req);
extern bool asr_job_transition(int64 job_id, const char *expected_state,
							   const AsrJobUpdate *update);
extern bool asr_job_load(int64 job_id, bool lock, AsrJob *job);
extern bool asr_job_unfinished_for_item(int64 item_id, AsrJob *job);
extern int64 asr_job_claim_next(void);
extern int	asr_jobs_due(TimestampTz now, int64 *job_ids, int max);
extern void asr_job_request_control(int64 job_id, const char *control,
									const char *comment, const char *detail);

#endif							/* ASR_JOBS_H */
