/*-------------------------------------------------------------------------
 *
 * asr_unit.h
 *	  Helpers shared by the unit-test files of test/unit (asr_unit.c and
 *	  asr_unit_backoff.c): result rows, fixture credentials and answers.
 *
 * IDENTIFICATION
 *	  test/unit/asr_unit.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_UNIT_H
#define ASR_UNIT_H

#include "datatype/timestamp.h"

#include "fdw.h"
#include "http.h"

#define SEC(n) ((TimestampTz) (n) * USECS_PER_SEC)

/* one result row of asr_unit_run() */
extern void check(const char *name, bool ok, const char *detail);

/* a credential as fdw.c would return it, with a fresh identity */
extern AsrCredential *make_cred(AsrAuthMode auth);

/* an answer with that status, body and (when not NULL) Retry-After */
extern AsrHttpResponse *make_resp(long status, const char *body,
								  const char *retry_after);

/* strstr that accepts a NULL haystack */
extern bool contains(const char *hay, const char *needle);

/* the retry schedule after failed token requests (asr_unit_backoff.c) */
extern void test_backoff(void);

#endif							/* ASR_UNIT_H */
