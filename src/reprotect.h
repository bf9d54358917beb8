/*-------------------------------------------------------------------------
 *
 * reprotect.h
 *	  The inputs of an A2A reprotect (switch protection), derived from the
 *	  item and the options.
 *
 * IDENTIFICATION
 *	  src/reprotect.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_REPROTECT_H
#define ASR_REPROTECT_H

#include "items.h"

extern void asr_check_reprotect_options(Jsonb *options, const char *where);
extern Jsonb *asr_reprotect_plan(const AsrItem *item, Jsonb *call_options,
								 Jsonb **request, Jsonb **merged_options);

#endif							/* ASR_REPROTECT_H */
