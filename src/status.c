/*-------------------------------------------------------------------------
 *
 * status.c
 *	  asr_worker_status: what the worker publishes in shared memory, as a
 *	  row a DBA can query.
 *
 * IDENTIFICATION
 *	  src/status.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "asr.h"

PG_FUNCTION_INFO_V1(asr_worker_status_internal);

/*
 * One row: pid, started_at, last_poll_at, requests_in_flight, last_error,
 * throttled_until, phase.  NULLs where the worker does not run or has
 * nothing to say, so that "WHERE pid IS NULL" reads as "no worker".
 */
Datum
asr_worker_status_internal(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7];
	AsrSharedState snap;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	SpinLockAcquire(&asr_shared->mutex);
	memcpy(&snap, asr_shared, sizeof(snap));
	SpinLockRelease(&asr_shared->mutex);

	memset(nulls, 0, sizeof(nulls));
	values[0] = Int32GetDatum(snap.worker_pid);
	nulls[0] = (snap.worker_pid == 0);
	values[1] = TimestampTzGetDatum(snap.started_at);
	nulls[1] = (snap.started_at == 0);
	values[2] = TimestampTzGetDatum(snap.last_poll_at);
	nulls[2] = (snap.last_poll_at == 0);
	values[3] = Int32GetDatum(snap.requests_in_flight);
	values[4] = CStringGetTextDatum(snap.last_error);
	nulls[4] = (snap.last_error[0] == '\0');
	values[5] = TimestampTzGetDatum(snap.throttled_until);
	nulls[5] = (snap.throttled_until == 0 ||
				snap.throttled_until <= GetCurrentTimestamp());
	values[6] = CStringGetTextDatum(snap.phase[0] ? snap.phase : "stopped");

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
