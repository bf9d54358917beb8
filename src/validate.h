/*-------------------------------------------------------------------------
 *
 * validate.h
 *	  Is an action allowed on an item in its last known state?  Recovery
 *	  point choices.
 *
 * IDENTIFICATION
 *	  src/validate.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_VALIDATE_H
#define ASR_VALIDATE_H

#include "items.h"
#include "jobs.h"

/* The recovery point a call resolved to. */
typedef struct AsrPointChoice
{
	bool		latest;			/* nothing sent: Azure processes pending data */
	char	   *name;
	char	   *arm_id;
	char	   *point_type;
	char	   *label;			/* "name (time, type)" for messages */
	TimestampTz point_time;
	int			disks_covered;	/* -1 = unknown */
	int			disks_total;	/* -1 = unknown */
} AsrPointChoice;

extern const char *asr_action_function(const char *action);
extern char *asr_describe_item(const AsrItem *item);
extern char *asr_allowed_hint(const AsrItem *item);
extern void asr_refuse_unfinished(const AsrItem *item, const char *action,
								  const AsrJob *job);
extern void asr_validate_action(const AsrItem *item, const char *action);

extern void asr_point_resolve(const AsrItem *item, const char *point,
							  bool allow_latest, const char *function,
							  AsrPointChoice *choice);
extern void asr_point_warn_coverage(const AsrItem *item,
									const AsrPointChoice *choice);

#endif							/* ASR_VALIDATE_H */
