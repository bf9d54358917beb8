/*-------------------------------------------------------------------------
 *
 * points.c
 *	  Recovery point choices: latest, latest_processed,
 *	  latest_app_consistent, latest_crash_consistent, a point's name (or
 *	  ARM id), or a timestamp (the newest point at or before it).
 *
 * An A2A item request has no "point type" field (asr-rest.md §4): latest
 * means "send no point, let Azure process pending data first"; every other
 * choice becomes one listed point's ARM id, chosen here from
 * asr_recovery_points by time, never by list order.  A point unknown or
 * already expired is an error naming the newest points there are.
 *
 * IDENTIFICATION
 *	  src/points.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "util.h"
#include "validate.h"

#define POINT_CHOICES "latest_processed, latest_app_consistent, latest_crash_consistent, a point name from asr_recovery_points, or a timestamp"

#define POINT_COLUMNS \
	"name, arm_id, point_type, point_time, disks_covered, disks_total, " \
	"format('%%s (%%s UTC, %%s)', name, to_char(point_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), point_type)"

/* "the newest points are: ..." for an errdetail; SPI is connected */
static char *
newest_points(int64 item_id)
{
	Oid			type = INT8OID;
	Datum		id = Int64GetDatum(item_id);
	StringInfoData buf;
	uint64		i;

	asr_spi(psprintf("SELECT " POINT_COLUMNS " FROM %s WHERE item_id = $1 "
					 "ORDER BY point_time DESC, name LIMIT 3",
					 asr_rel("asr_recovery_points")),
			1, &type, &id, NULL, true, 0);
	if (SPI_processed == 0)
		return pstrdup("asr knows no recovery point of this item (they exist only while it replicates, and a commit deletes them).");
	initStringInfo(&buf);
	appendStringInfoString(&buf, "The newest recovery points are: ");
	for (i = 0; i < SPI_processed; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", asr_spi_text((int) i, 7));
	appendStringInfoChar(&buf, '.');
	return buf.data;
}

/* An AsrPointChoice in cxt from the first row of a POINT_COLUMNS query. */
static void
fill_choice(MemoryContext cxt, AsrPointChoice *c)
{
	bool		isnull;
	Datum		d;

	c->latest = false;
	c->name = MemoryContextStrdup(cxt, asr_spi_text(0, 1));
	c->arm_id = MemoryContextStrdup(cxt, asr_spi_text(0, 2));
	c->point_type = MemoryContextStrdup(cxt, asr_spi_text(0, 3));
	c->point_time = DatumGetTimestampTz(asr_spi_datum(0, 4, &isnull));
	d = asr_spi_datum(0, 5, &isnull);
	c->disks_covered = isnull ? -1 : DatumGetInt16(d);
	d = asr_spi_datum(0, 6, &isnull);
	c->disks_total = isnull ? -1 : DatumGetInt16(d);
	c->label = MemoryContextStrdup(cxt, asr_spi_text(0, 7));
}

/*
 * Resolve the point a caller of "function" wrote for item.  allow_latest
 * is false where Azure needs an existing point (change of recovery point).
 */
void
asr_point_resolve(const AsrItem *item, const char *point, bool allow_latest,
				  const char *function, AsrPointChoice *choice)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			types[3] = {INT8OID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3];
	const char *type_filter = NULL;
	const char *kind = NULL;
	TimestampTz ts;
	int			nestlevel;

	memset(choice, 0, sizeof(*choice));
	choice->disks_covered = choice->disks_total = -1;

	if (point == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("recovery point must not be NULL"),
				 errhint("Use %s" POINT_CHOICES ".", allow_latest ? "latest, " : "")));
	if (point[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recovery point must not be empty"),
				 errhint("Use %s" POINT_CHOICES ".", allow_latest ? "latest, " : "")));

	if (pg_strcasecmp(point, "latest") == 0)
	{
		if (!allow_latest)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s() cannot use recovery point \"latest\"", function),
					 errdetail("\"latest\" asks Azure to process pending data first, which only a failover or a test failover does; this call needs an existing recovery point."),
					 errhint("Use " POINT_CHOICES ".")));
		choice->latest = true;
		choice->label = pstrdup("latest");
		return;
	}
	if (pg_strcasecmp(point, "latest_processed") == 0)
		kind = "";
	else if (pg_strcasecmp(point, "latest_app_consistent") == 0)
		kind = "app-consistent ", type_filter = "app_consistent";
	else if (pg_strcasecmp(point, "latest_crash_consistent") == 0)
		kind = "crash-consistent ", type_filter = "crash_consistent";

	values[0] = Int64GetDatum(item->item_id);
	values[1] = CStringGetTextDatum(type_filter ? type_filter : point);

	SPI_connect();
	nestlevel = asr_pin_search_path();

	if (kind)
	{
		asr_spi(psprintf("SELECT " POINT_COLUMNS " FROM %s WHERE item_id = $1 "
						 "AND ($2 IS NULL OR point_type = $2) "
						 "ORDER BY point_time DESC, name LIMIT 1",
						 asr_rel("asr_recovery_points")),
				2, types, values, type_filter ? NULL : " n", true, 0);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("\"%s\" has no %srecovery point", item->name, kind),
					 errdetail("%s", newest_points(item->item_id)),
					 errhint("Run asr_sync() to refresh the recovery points%s.",
							 allow_latest ? ", or use latest" : "")));
		fill_choice(cxt, choice);
	}
	else
	{
		asr_spi(psprintf("SELECT " POINT_COLUMNS " FROM %s WHERE item_id = $1 "
						 "AND (lower(name) = lower($2) OR lower(arm_id) = lower(rtrim($2, '/')))",
						 asr_rel("asr_recovery_points")),
				2, types, values, NULL, true, 0);
		if (SPI_processed == 1)
			fill_choice(cxt, choice);
		else if (asr_timestamp_in(point, &ts, NULL, NULL))
		{
			if (ts > GetCurrentTransactionStartTimestamp())
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("recovery point time \"%s\" is in the future", point),
						 errdetail("A timestamp chooses the newest recovery point at or before it, and no point can be newer than the current time."),
						 errhint("Use latest%s, or a time in the past.",
								 allow_latest ? "" : "_processed")));
			values[2] = TimestampTzGetDatum(ts);
			asr_spi(psprintf("SELECT " POINT_COLUMNS " FROM %s WHERE item_id = $1 "
							 "AND point_time <= $3 ORDER BY point_time DESC, name LIMIT 1",
							 asr_rel("asr_recovery_points")),
					3, types, values, NULL, true, 0);
			if (SPI_processed == 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("\"%s\" has no recovery point at or before %s",
								item->name, timestamptz_to_str(ts)),
						 errdetail("%s Older points have expired (Azure keeps them for the replication policy's retention only).",
								   newest_points(item->item_id)),
						 errhint("Choose a later time, or one of the newest points.")));
			fill_choice(cxt, choice);
		}
		else if (point[0] == '/' || strlen(point) == 36)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("recovery point \"%s\" of \"%s\" does not exist", point, item->name),
					 errdetail("It may have expired or been deleted by a commit. %s",
							   newest_points(item->item_id)),
					 errhint("Use latest%s, " POINT_CHOICES ".", allow_latest ? "" : "_processed")));
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid recovery point \"%s\"", point),
					 errdetail("It is neither a known choice, nor the name of a recovery point of \"%s\", nor a timestamp. %s",
							   item->name, newest_points(item->item_id)),
					 errhint("Use %s" POINT_CHOICES ".", allow_latest ? "latest, " : "")));
	}

	asr_unpin_search_path(nestlevel);
	SPI_finish();
}

/*
 * A point that misses some of the VM's disks ("1 of 2 disks", e.g. taken
 * before a data disk joined replication) is accepted, but said out loud;
 * the job records the coverage.
 */
void
asr_point_warn_coverage(const AsrItem *item, const AsrPointChoice *choice)
{
	if (choice->latest || choice->disks_covered < 0 || choice->disks_total < 0 ||
		choice->disks_covered >= choice->disks_total)
		return;
	ereport(WARNING,
			(errcode(ERRCODE_WARNING),
			 errmsg("recovery point %s covers %d of %d disks of \"%s\"",
					choice->name, choice->disks_covered, choice->disks_total, item->name),
			 errdetail("Disks that are not in the point are not recovered to it; the job records the coverage in asr_jobs.disks_covered and disks_total."),
			 errhint("If that is not what you want, roll back this transaction and choose a point that covers every disk.")));
}
