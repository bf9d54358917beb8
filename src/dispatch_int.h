/*-------------------------------------------------------------------------
 *
 * dispatch_int.h
 *	  What the rooms of the job engine share: dispatch.c (the job
 *	  contexts, their transactions, picking up work), submit.c (sending an
 *	  action, reconciling it, routing Azure's answers by phase),
 *	  reconcile.c (looking for jobs in their vault's job list, one listing
 *	  for many jobs) and poll.c (following the ASR job to its end, one job
 *	  or a whole vault at a time).
 *
 * Nothing outside those files (and the fuzz harness) includes this
 * header; the worker sees only dispatch.h.
 *
 * IDENTIFICATION
 *	  src/dispatch_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_DISPATCH_INT_H
#define ASR_DISPATCH_INT_H

#include "arm.h"
#include "client.h"
#include "creds.h"
#include "jobs.h"
#include "json.h"

/* How many jobs the worker works on at once (the rest wait in the table). */
#define MAX_ACTIVE_JOBS 2000
/*
 * Claim at most this many queued jobs per turn of the worker loop.  ARM
 * takes 200 writes at once and 10 a second after that, so claiming a
 * wave of a thousand at once only delays its first request by the time
 * it takes to check all thousand; a hundred at a time keeps requests
 * going out while the rest are claimed (the loop turns every 250 ms while
 * busy).
 */
#define CLAIM_PER_TURN 100
/*
 * ARM gives a resource provider 60 s to answer a proxied request (504
 * after that), so ASR may still act on a request until then: a request
 * whose outcome is unknown (timed out, answer lost, worker gone) is
 * reconciled only once it can no longer land.
 */
#define ARM_PROXY_TIMEOUT_S 60
#define RECONCILE_DELAY_MS() \
	(((int64) Max(asr_http_timeout, ARM_PROXY_TIMEOUT_S) + 10) * 1000)
/* Look this far before a job's request time in Azure's job list. */
#define RECONCILE_WINDOW_S 600
/* Tries of a poll before its job records the error and waits. */
#define READ_ATTEMPTS 4
/* Poll a vault through its job list while more jobs than this run. */
#define VAULT_LIST_THRESHOLD 5

typedef enum Phase
{
	PH_CHECK_ITEM,				/* GET the item, check allowedOperations */
	PH_POST,					/* send the action */
	PH_LIST_JOBS,				/* reconcile: the vault's job list */
	PH_RECONCILE_ITEM,			/* reconcile: the item's currentScenario */
	PH_SCENARIO_JOB,			/* reconcile: the job named there */
	PH_POLL,					/* GET replicationJobs/{name} */
	PH_CONTROL,					/* cancel / resume the ASR job */
	PH_FINAL					/* re-read the item, then finish */
} Phase;

typedef struct JobCtx
{
	int64		job_id;
	MemoryContext cxt;
	Phase		phase;
	bool		finished;
	AsrJob		job;
	int			vault_id;
	bool		lookup;			/* waiting for its vault's job list (reconcile.c) */
	bool		conflict_seen;	/* a 409 was already reconciled once */
	AsrJobDoc  *doc;			/* the finished ASR job */
	struct VaultPoll *vp;		/* the job list polling for this job */
} JobCtx;

/* One GET of a vault's job list standing for the polls of many jobs. */
typedef struct VaultPoll
{
	MemoryContext cxt;
	MemoryContext page_cxt;		/* the page being asked for: its call */
	int			vault_id;
	List	   *jobs;			/* of JobCtx *, all in PH_POLL */
	List	   *seen;			/* of JobCtx * the list has answered for */
	bool		finished;
} VaultPoll;


/* What the vault's job list said of a job looked for (reconcile.c). */
typedef struct AsrLookupResult
{
	const char *found;			/* the name of the job's ASR job, or NULL */
	const char *error;			/* the list could not be read: why */
} AsrLookupResult;

/* dispatch.c: job contexts and their steps */
extern void asr_dx_run_step(JobCtx *jc, void (*fn) (JobCtx *jc, void *arg), void *arg);
extern const char *asr_dx_required_operation(const char *action);
extern AsrVault *asr_dx_vault(JobCtx *jc);
extern void asr_dx_update(int64 job_id, const char *expected, AsrJobUpdate *u);
extern void asr_dx_fail(JobCtx *jc, const char *code, const char *message);
extern void asr_dx_wait(JobCtx *jc, long ms, const char *last_error);
extern char *asr_dx_json_text(JsonbContainer *c, const char *key);
extern bool asr_dx_is_active(int64 job_id);
extern JobCtx *asr_dx_new_ctx(int64 job_id);
extern bool asr_dx_load(JobCtx *jc);

/* submit.c: sending, reconciling, and routing Azure's answers by phase */
extern void asr_dx_answer_step(JobCtx *jc, void *arg);
extern void asr_dx_on_response(AsrCall *call, AsrHttpResponse *resp, void *arg);
extern void asr_dx_start_phase(JobCtx *jc);
extern char *asr_dx_job_list_url(AsrVault *v, TimestampTz since);
extern void asr_dx_fail_azure(JobCtx *jc, AsrHttpResponse *resp, const char *doing);
extern void asr_dx_on_item_read(void *arg, Jsonb *doc, AsrHttpResponse *resp,
								const char *error);
extern void asr_dx_answer_post(JobCtx *jc, AsrHttpResponse *resp);
extern void asr_dx_answer_lookup(JobCtx *jc, void *arg);
extern void asr_dx_answer_reconcile_item(JobCtx *jc, AsrHttpResponse *resp);
extern void asr_dx_answer_scenario_job(JobCtx *jc, AsrHttpResponse *resp);

/* reconcile.c: one job-list listing per vault for the jobs looked for */
extern void asr_dx_look_for_job(JobCtx *jc);
extern void asr_dx_start_lookups(void);
extern bool asr_dx_lookups_pending(void);

/* poll.c: following ASR jobs */
extern void asr_dx_answer_poll(JobCtx *jc, AsrHttpResponse *resp);
extern void asr_dx_answer_control(JobCtx *jc, AsrHttpResponse *resp);
extern void asr_dx_start_polls(List *polls);
extern void asr_dx_on_final_synced(void *arg, const char *error);
extern void asr_dx_reap_polls(void);

#endif							/* ASR_DISPATCH_INT_H */
