/*-------------------------------------------------------------------------
 *
 * util.h
 *	  Small helpers shared by the SQL-facing rooms: the extension's schema,
 *	  a pinned search_path, SPI shorthands.
 *
 * IDENTIFICATION
 *	  src/util.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_UTIL_H
#define ASR_UTIL_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* unfinished job states, as an SQL array literal */
#define ASR_UNFINISHED_STATES "'{queued,submitting,running,suspended}'::text[]"

extern char *asr_rel(const char *relname);
extern int	asr_pin_search_path(void);
extern void asr_unpin_search_path(int nestlevel);
extern int	asr_spi(const char *query, int nargs, Oid *argtypes,
					Datum *values, const char *nulls, bool read_only, long count);
extern char *asr_spi_text(int row, int col);
extern char *asr_spi_copy_text(MemoryContext cxt, int col);
extern void asr_spi_copy_texts(MemoryContext cxt, int first_col,...);
extern Jsonb *asr_spi_copy_jsonb(MemoryContext cxt, int col);
extern bool asr_spi_isnull(int row, int col);
extern Datum asr_spi_datum(int row, int col, bool *isnull);
extern void asr_check_writable(const char *function_name);
extern int64 asr_timeout_argument(FunctionCallInfo fcinfo, int argno);
extern bool asr_timestamp_in(const char *str, TimestampTz *result,
							 struct pg_tm *tm, fsec_t *fsec);

#endif							/* ASR_UTIL_H */
