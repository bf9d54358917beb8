/*-------------------------------------------------------------------------
 *
 * items.h
 *	  Replicated items and recovery points: lookup by name, ARM id or
 *	  vault-qualified name (items.c); the writes of the worker's sync
 *	  (itemstore.c).
 *
 * Every function runs in the caller's transaction, connects to SPI itself
 * and pins search_path while it runs SQL; results are palloc'd in the
 * caller's memory context.
 *
 * IDENTIFICATION
 *	  src/items.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_ITEMS_H
#define ASR_ITEMS_H

#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/timestamp.h"

/*
 * An item as last synced, with what validation needs of its vault; Azure's
 * whole document is read only on demand (asr_item_properties).
 */
typedef struct AsrItem
{
	int64		item_id;
	int32		vault_id;
	char	   *vault;			/* the vault's label (asr_vaults.name) */
	char	   *name;			/* the VM's name */
	char	   *arm_id;
	char	   *protection_state;
	char	   *protection_state_description;
	char	   *active_location;	/* Primary, Recovery or NULL */
	char	   *replication_health;
	char	   *test_failover_state;
	int			nops;
	char	  **allowed_operations;
	char	   *primary_region;
	char	   *recovery_region;
	Jsonb	   *vault_reprotect_options;
	TimestampTz synced_at;
} AsrItem;

/* lookups (SQL-facing), items.c */
extern void asr_item_resolve(const char *spec, bool lock, AsrItem *item);
extern bool asr_item_load(int64 item_id, bool lock, AsrItem *item);
extern Jsonb *asr_item_properties(const AsrItem *item);
extern char *asr_item_scenario(const AsrItem *item);

/* sync writes (the worker), itemstore.c */
extern bool asr_item_is_document(Jsonb *document);
extern int64 asr_item_upsert(int32 vault_id, Jsonb *document);
extern int	asr_recovery_points_replace(int64 item_id, Jsonb *points);
extern int	asr_recovery_points_store(int64 item_id, Jsonb *points, int *skipped);
extern int	asr_items_forget_unseen(int32 vault_id, TimestampTz sync_started);
extern void asr_vault_sync_result(int32 vault_id, const char *error);

#endif							/* ASR_ITEMS_H */
