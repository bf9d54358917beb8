/*-------------------------------------------------------------------------
 *
 * itemread.h
 *	  Re-reading replicated items: one GET each, or one vault listing for
 *	  many at once.
 *
 * IDENTIFICATION
 *	  src/itemread.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_ITEMREAD_H
#define ASR_ITEMREAD_H

#include "utils/jsonb.h"

#include "creds.h"
#include "http.h"

/*
 * The answer to one read.  doc is Azure's current document of the item,
 * allocated in the reader's context; when it is NULL, error says why and
 * resp (may be NULL) is the failed answer of the item's own GET.  Called
 * from the worker loop, outside a transaction.
 */
typedef void (*AsrItemReadDone) (void *arg, Jsonb *doc,
								 AsrHttpResponse *resp, const char *error);

extern void asr_item_read(AsrVault *v, const char *arm_id, bool gather,
						  MemoryContext cxt, AsrItemReadDone done, void *arg);
extern void asr_item_read_flush(void);
extern void asr_item_read_note_pages(int vault_id, int pages);
extern bool asr_item_read_pending(void);

#endif							/* ASR_ITEMREAD_H */
