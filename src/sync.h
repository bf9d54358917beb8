/*-------------------------------------------------------------------------
 *
 * sync.h
 *	  Refreshing items and recovery points from Azure.
 *
 * IDENTIFICATION
 *	  src/sync.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_SYNC_H
#define ASR_SYNC_H

#include "utils/jsonb.h"

#include "creds.h"

/*
 * Read one item (GET its ARM id) and its recovery points, store both, then
 * call done(arg, error) from the worker loop; error is NULL on success.
 * old_arm_id is the id the item had in our table (it differs from arm_id
 * after a reprotect moved the item to the other region).
 */
typedef void (*AsrSyncDone) (void *arg, const char *error);

extern void asr_sync_item(AsrVault *v, int64 item_id, const char *arm_id,
						  MemoryContext cxt, AsrSyncDone done, void *arg);

/*
 * Start the refresh of every vault that is due (asr.sync_interval, asr_sync
 * requests); returns when the next one comes due.
 */
extern TimestampTz asr_sync_collect(void);

/* inside a transaction: store what Azure returned */
extern int64 asr_sync_store_item(int vault_id, int64 item_id, Jsonb *doc);
extern void asr_sync_store_points(int64 item_id, Jsonb *list);

#endif							/* ASR_SYNC_H */
