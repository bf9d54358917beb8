/*-------------------------------------------------------------------------
 *
 * dispatch.h
 *	  Jobs in flight: submission, reconciliation, polling, cancel/resume,
 *	  and the final re-read of the item.
 *
 * IDENTIFICATION
 *	  src/dispatch.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_DISPATCH_H
#define ASR_DISPATCH_H

#include "datatype/timestamp.h"

/*
 * Claim queued jobs and pick up due ones; run outside any transaction.
 * Returns when the next waiting job comes due.
 */
extern TimestampTz asr_dispatch_collect(void);
extern int	asr_dispatch_active(void);

#endif							/* ASR_DISPATCH_H */
