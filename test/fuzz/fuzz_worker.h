/*-------------------------------------------------------------------------
 *
 * fuzz_worker.h
 *	  The targets of fuzz_worker.c (the worker's readers of item documents,
 *	  recovery point listings and list pages) and what they share with the
 *	  stubbed engine of fuzz_stubs.c.
 *
 * IDENTIFICATION
 *	  test/fuzz/fuzz_worker.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_FUZZ_WORKER_H
#define ASR_FUZZ_WORKER_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "client.h"
#include "creds.h"

/* the targets (asr_fuzz.c's table) */
extern void fuzz_target_item(const char *data, size_t size);
extern void fuzz_target_points(const char *data, size_t size);
extern void fuzz_target_list(const char *data, size_t size);

/* fuzz_stubs.c: a call queued by asr_client_call(), for pump() to answer */
typedef struct FuzzCall
{
	AsrCallDone done;
	void	   *arg;
	char	   *method;
	char	   *url;
	const char *arm_base;
} FuzzCall;

extern List *fuzz_calls;		/* of FuzzCall *, in fuzz_input_cxt */
extern List *fuzz_posts;		/* URLs POSTed during this input */
extern MemoryContext fuzz_input_cxt;	/* the input's context */
extern AsrVault *fuzz_vault;	/* the vault of fuzz_setup.sql */
extern bool fuzz_debug;			/* ASR_FUZZ_DEBUG: print every call */
extern TimestampTz fuzz_clock_skew; /* added to the code's clock */
extern int	fuzz_tx_depth;		/* worker transactions open */

extern void fuzz_note_refusal(const char *msg);

#endif							/* ASR_FUZZ_WORKER_H */
