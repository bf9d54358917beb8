/*-------------------------------------------------------------------------
 *
 * asr.c
 *	  Library entry point: settings, the background worker, shared memory.
 *
 * asr must be loaded through shared_preload_libraries: its worker is a
 * static background worker and its wake-up channel lives in shared memory
 * that can only be reserved while the postmaster starts.  Loading the
 * library any other way is refused with a hint, so that a DBA never ends up
 * with job tables that nobody processes.
 *
 * IDENTIFICATION
 *	  src/asr.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/guc.h"

#include "asr.h"

PG_MODULE_MAGIC;

char	   *asr_database = NULL;
char	   *asr_worker_role = NULL;
int			asr_poll_interval = 30;
int			asr_sync_interval = 300;
int			asr_max_concurrent_requests = 16;
int			asr_http_timeout = 60;
char	   *asr_ca_file = NULL;
char	   *asr_api_version = NULL;
int			asr_job_timeout = 86400;

void		_PG_init(void);

static void asr_define_settings(void);
static void asr_register_worker(void);

/*
 * Load-time set-up.  Everything that needs the postmaster (shared memory,
 * the static worker, postmaster-level settings) happens here, so the
 * library refuses to load anywhere else.
 */
void
_PG_init(void)
{
	if (IsBinaryUpgrade)
		return;

	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("asr must be loaded via shared_preload_libraries"),
				 errdetail("asr runs a background worker and needs shared memory reserved at server start."),
				 errhint("Add asr to shared_preload_libraries in postgresql.conf and restart the server.")));

	asr_define_settings();
	asr_shmem_init();
	asr_register_worker();
}

/*
 * The settings of DESIGN.md §3.  All are superuser-only: they steer what
 * the worker sends to Azure, and the CA file decides whom it trusts.
 * No setting ever holds a secret; credentials live in user mappings.
 */
static void
asr_define_settings(void)
{
	DefineCustomStringVariable("asr.database",
							   "Database the asr worker connects to.",
							   "CREATE EXTENSION asr is refused in any other database.",
							   &asr_database,
							   "postgres",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("asr.worker_role",
							   "Role the asr worker runs as; empty means the bootstrap superuser.",
							   NULL,
							   &asr_worker_role,
							   "",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("asr.poll_interval",
							"Interval between polls of a running job when Azure sends no Retry-After.",
							NULL,
							&asr_poll_interval,
							30, 1, 3600,
							PGC_SIGHUP,
							GUC_SUPERUSER_ONLY | GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("asr.sync_interval",
							"Interval between refreshes of items and recovery points of every vault.",
							NULL,
							&asr_sync_interval,
							300, 10, 86400,
							PGC_SIGHUP,
							GUC_SUPERUSER_ONLY | GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("asr.max_concurrent_requests",
							"Maximum number of HTTP requests the asr worker has in flight at once.",
							NULL,
							&asr_max_concurrent_requests,
							16, 1, 1024,
							PGC_SIGHUP,
							GUC_SUPERUSER_ONLY,
							NULL, NULL, NULL);

	DefineCustomIntVariable("asr.http_timeout",
							"Time limit of one HTTP request, from connect to last byte.",
							NULL,
							&asr_http_timeout,
							60, 1, 3600,
							PGC_SIGHUP,
							GUC_SUPERUSER_ONLY | GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("asr.ca_file",
							   "CA bundle used to verify Azure's TLS certificates; empty means the system's.",
							   NULL,
							   &asr_ca_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("asr.api_version",
							   "Azure Site Recovery api-version sent to Azure Resource Manager.",
							   NULL,
							   &asr_api_version,
							   "2022-10-01",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("asr.job_timeout",
							"A job still unfinished this long after submission is failed.",
							NULL,
							&asr_job_timeout,
							86400, 60, INT_MAX,
							PGC_SIGHUP,
							GUC_SUPERUSER_ONLY | GUC_UNIT_S,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("asr");
}

/*
 * One static worker for the whole cluster.  It exits non-zero on every
 * error so the postmaster starts it again after a short pause; a crash of
 * the worker never needs a restart of PostgreSQL by the DBA.
 */
static void
asr_register_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "asr");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "asr_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "asr worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, ASR_WORKER_TYPE);
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;

	RegisterBackgroundWorker(&worker);
}
