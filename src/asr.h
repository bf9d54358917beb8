/*-------------------------------------------------------------------------
 *
 * asr.h
 *	  Settings and shared state every room of asr may read.
 *
 * The settings are defined in asr.c and documented in DESIGN.md §3; the
 * shared-memory block (shmem.c) is the only channel between SQL-facing
 * backends and the background worker besides the job tables themselves.
 *
 * IDENTIFICATION
 *	  src/asr.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_H
#define ASR_H

#include "postgres.h"

#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#define ASR_WORKER_TYPE "asr worker"
#define ASR_EXTENSION_NAME "asr"

/* settings (asr.c) */
extern char *asr_database;
extern char *asr_worker_role;
extern int	asr_poll_interval;
extern int	asr_sync_interval;
extern int	asr_max_concurrent_requests;
extern int	asr_http_timeout;
extern char *asr_ca_file;
extern char *asr_api_version;
extern int	asr_job_timeout;

/*
 * What the worker publishes about itself, and what backends use to wake it.
 * Everything here is plain data: no process-local pointer except the latch,
 * which lives in the worker's PGPROC and is cleared when the worker exits.
 */
typedef struct AsrSharedState
{
	slock_t		mutex;
	pid_t		worker_pid;		/* 0 when no worker runs */
	Latch	   *worker_latch;	/* NULL when no worker runs */
	TimestampTz started_at;
	TimestampTz last_poll_at;
	int			requests_in_flight;
	TimestampTz throttled_until;	/* 0 = not throttled */
	char		last_error[256];
	char		phase[32];		/* what the worker is doing, for humans */
	uint64		wakeups;		/* number of wake requests received */

	/* asr_wait sleeps here; broadcast when a job change commits */
	ConditionVariable job_cv;

	/*
	 * asr_sync: a backend bumps sync_requested (0 = all vaults in
	 * sync_vault_id, or the one vault asked for while no other request is
	 * pending); the worker refreshes, then sets sync_done to the generation
	 * it served and broadcasts sync_cv.
	 */
	uint64		sync_requested;
	uint64		sync_done;
	int32		sync_vault_id;
	ConditionVariable sync_cv;
} AsrSharedState;

/* shmem.c */
extern AsrSharedState *asr_shared;
extern void asr_shmem_init(void);
extern void asr_wake_worker(void);
extern void asr_wake_worker_at_commit(void);
extern void asr_worker_publish_start(void);
extern void asr_worker_set_phase(const char *phase);
extern void asr_worker_set_error(const char *error);
extern void asr_wake_waiters_at_commit(void);
extern uint64 asr_sync_request(int32 vault_id);
extern bool asr_sync_pending(uint64 *generation, int32 *vault_id);
extern void asr_sync_finished(uint64 generation);

/* worker.c */
extern PGDLLEXPORT void asr_worker_main(Datum main_arg) pg_attribute_noreturn();

#endif							/* ASR_H */
