/*-------------------------------------------------------------------------
 *
 * itemstore.c
 *	  The worker's sync writes: Azure's item documents and recovery point
 *	  listings stored in asr_items and asr_recovery_points, a vault's
 *	  items not seen by a sync forgotten, the sync's outcome recorded.
 *
 * Azure's documents are mapped onto the columns with PostgreSQL's jsonb,
 * field by field: what asr cannot read in one field is NULL in its column
 * (or the point is skipped) instead of refusing the whole document, and
 * the whole document stays in properties for what the columns do not
 * cover.  Lookups of the stored items are in items.c.
 *
 * IDENTIFICATION
 *	  src/itemstore.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "armid.h"
#include "items.h"
#include "json.h"
#include "util.h"

/*
 * A timestamp as Azure writes it ("2025-04-09T08:37:42.6483072Z"), read
 * without raising: false for anything else.  The shape is checked before
 * PostgreSQL's own parser runs, because DecodeDateTime() of release 15
 * raises an ERROR for an unknown time zone name instead of returning an
 * error code.  Azure's "never" (.NET's DateTime.MinValue,
 * 0001-01-01T00:00:00) is no time either.
 */
static bool
azure_timestamp(const char *str, TimestampTz *result)
{
	static const char shape[] = "dddd-dd-ddTdd:dd";
	const char *p = str;
	int			i;
	struct pg_tm tt;
	fsec_t		fsec;

	if (str == NULL || strlen(str) >= MAXDATELEN)
		return false;
	for (i = 0; shape[i] != '\0'; i++, p++)
	{
		if (shape[i] == 'd' ? !isdigit((unsigned char) *p) :
			shape[i] == 'T' ? (*p != 'T' && *p != ' ') : *p != shape[i])
			return false;
	}
	if (p[0] == ':' && isdigit((unsigned char) p[1]) && isdigit((unsigned char) p[2]))
	{
		p += 3;
		if (p[0] == '.' && isdigit((unsigned char) p[1]))
			for (p++; isdigit((unsigned char) *p); p++)
				;
	}
	if (*p == 'Z')
		p++;
	else if ((*p == '+' || *p == '-') &&
			 isdigit((unsigned char) p[1]) && isdigit((unsigned char) p[2]))
	{
		p += 3;
		if (*p == ':')
			p++;
		if (isdigit((unsigned char) p[0]) && isdigit((unsigned char) p[1]))
			p += 2;
	}
	if (*p != '\0')
		return false;

	if (!asr_timestamp_in(str, result, &tt, &fsec))
		return false;
	/* .NET's DateTime.MinValue */
	return !(tt.tm_year == 1 && tt.tm_mon == 1 && tt.tm_mday == 1 &&
			 tt.tm_hour == 0 && tt.tm_min == 0 && tt.tm_sec == 0 && fsec == 0);
}

/*
 * Azure's rpoInSeconds as the integer column takes it, false when it
 * cannot: a JSON number only (not null, not a string), not negative, a
 * fraction rounded to the nearest second (half away from zero, as
 * PostgreSQL's numeric-to-integer cast does), at most 2^31 - 1.
 */
static bool
azure_seconds(JsonbValue *v, int32 *result)
{
	bool		overflow = false;
	Datum		zero;

	if (v == NULL || v->type != jbvNumeric)
		return false;
	zero = NumericGetDatum(int64_to_numeric(0));
	if (DatumGetBool(DirectFunctionCall2(numeric_lt, NumericGetDatum(v->val.numeric), zero)))
		return false;
	*result = numeric_int4_opt_error(v->val.numeric, &overflow);
	return !overflow;
}

/* A string member of obj, NULL when missing, empty or not a string. */
static char *
nonempty_string(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = asr_json_member(obj, key);

	if (v == NULL || v->type != jbvString || v->val.string.len == 0)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * The text of a string member of the item's properties ($2), NULL for
 * anything else: a column never gets the JSON text of a number or an
 * object Azure put where a string belongs.
 */
#define PROP_STRING(key) \
	"CASE jsonb_typeof($2->'properties'->'" key "') WHEN 'string' " \
	"  THEN $2->'properties'->>'" key "' END"
#define A2A_STRING(key) \
	"CASE jsonb_typeof($2->'properties'->'providerSpecificDetails'->'" key "') WHEN 'string' " \
	"  THEN $2->'properties'->'providerSpecificDetails'->>'" key "' END"

/*
 * The columns of asr_items, from an item document $2 (see
 * asr_item_upsert), with the name ($3), rpo_seconds ($4) and
 * last_failover_at ($5) read by asr_item_upsert.
 */
#define ITEM_FROM_DOCUMENT \
	"$3, $2->>'id', " \
	"coalesce(nullif(" PROP_STRING("protectionState") ", ''), 'Unknown'), " \
	PROP_STRING("protectionStateDescription") ", " \
	"CASE WHEN " PROP_STRING("activeLocation") " = ANY ('{Primary,Recovery}') " \
	"  THEN $2->'properties'->>'activeLocation' END, " \
	PROP_STRING("replicationHealth") ", " \
	PROP_STRING("testFailoverState") ", " \
	"ARRAY(SELECT o #>> '{}' FROM jsonb_array_elements(CASE WHEN jsonb_typeof($2->'properties'->'allowedOperations') = 'array' " \
	"  THEN $2->'properties'->'allowedOperations' ELSE '[]' END) o WHERE jsonb_typeof(o) = 'string'), " \
	A2A_STRING("primaryFabricLocation") ", " \
	A2A_STRING("recoveryFabricLocation") ", " \
	"$4, $5, $2->'properties', now()"

/*
 * Read what makes a document an item document: a string "id" of an item's
 * ARM id shape and a "properties" object.  NULL id when it is not one.
 */
static void
item_document_parts(Jsonb *document, char **arm_id, JsonbContainer **props)
{
	JsonbValue *v;

	*arm_id = NULL;
	*props = NULL;
	if (document == NULL || JB_ROOT_IS_SCALAR(document) || !JB_ROOT_IS_OBJECT(document))
		return;
	v = getKeyJsonValueFromContainer(&document->root, "properties", 10, NULL);
	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		return;
	*props = v->val.binary.data;
	v = getKeyJsonValueFromContainer(&document->root, "id", 2, NULL);
	if (v == NULL || v->type != jbvString)
		return;
	*arm_id = pnstrdup(v->val.string.val, v->val.string.len);
	if (!asr_arm_id_matches(*arm_id, ARM_SHAPE_ITEM))
		*arm_id = NULL;
}

/*
 * Would asr_item_upsert store this document?  For a caller storing many
 * (a page of the vault's item list), to leave out the one that is no item
 * document instead of losing the page to its ERROR.  Never raises.
 */
bool
asr_item_is_document(Jsonb *document)
{
	char	   *arm_id;
	JsonbContainer *props;

	item_document_parts(document, &arm_id, &props);
	return arm_id != NULL;
}

/*
 * The sync: store one item document as Azure returns it ({"id", "name",
 * "properties": {...}}) in vault vault_id; returns item_id.
 *
 * The item is matched by ARM id, and failing that by its Azure name within
 * the vault: after a reprotect Azure reports the same item name under the
 * other region's fabric and container, and the row (with its jobs) must
 * follow it rather than be duplicated.
 *
 * Only a document without an item's ARM id or without a properties object
 * is refused (it is no item document).  Any other field is read on its
 * own: what cannot be read is NULL in its column (an operation that is no
 * string is left out of allowed_operations, an unreadable protectionState
 * is 'Unknown'), and the item is stored with Azure's whole properties
 * document, so that a malformed field never hides the rest of what Azure
 * said about the item (during a regional outage, above all).  The name is
 * friendlyName, else Azure's name, else the last segment of the ARM id.
 */
int64
asr_item_upsert(int32 vault_id, Jsonb *document)
{
	Oid			types[6] = {INT4OID, JSONBOID, TEXTOID, INT4OID, TIMESTAMPTZOID, INT8OID};
	Datum		values[6];
	char		nulls[7] = "      ";
	JsonbContainer *props;
	char	   *arm_id;
	char	   *name;
	char	   *when;
	int32		rpo;
	TimestampTz failover_at;
	int64		item_id;
	bool		isnull;
	int			nestlevel;

	item_document_parts(document, &arm_id, &props);
	if (arm_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("not a replication protected item document"),
				 errdetail("Expected {\"id\": \"/subscriptions/.../replicationProtectedItems/{name}\", \"name\": ..., \"properties\": {...}}.")));

	name = nonempty_string(props, "friendlyName");
	if (name == NULL)
		name = nonempty_string(&document->root, "name");
	if (name == NULL)
		name = asr_arm_id_segment(arm_id, asr_arm_id_nsegments(arm_id) - 1);

	values[0] = Int32GetDatum(vault_id);
	values[1] = JsonbPGetDatum(document);
	values[2] = CStringGetTextDatum(name);
	if (azure_seconds(asr_json_member(asr_json_object(props, "providerSpecificDetails"),
									  "rpoInSeconds"), &rpo))
		values[3] = Int32GetDatum(rpo);
	else
		nulls[3] = 'n';
	when = nonempty_string(props, "lastSuccessfulFailoverTime");
	if (azure_timestamp(when, &failover_at))
		values[4] = TimestampTzGetDatum(failover_at);
	else
		nulls[4] = 'n';

	SPI_connect();
	nestlevel = asr_pin_search_path();

	asr_spi(psprintf("SELECT item_id FROM %s WHERE lower(arm_id) = lower($2->>'id') "
					 "UNION ALL "
					 "(SELECT item_id FROM %s WHERE vault_id = $1 "
					 "   AND lower(regexp_replace(arm_id, '^.*/', '')) = lower($2->>'name') "
					 "   AND NOT EXISTS (SELECT 1 FROM %s WHERE lower(arm_id) = lower($2->>'id')) "
					 " LIMIT 2)",
					 asr_rel("asr_items"), asr_rel("asr_items"), asr_rel("asr_items")),
			2, types, values, NULL, false, 0);

	if (SPI_processed == 1)
	{
		item_id = DatumGetInt64(asr_spi_datum(0, 1, &isnull));
		values[5] = Int64GetDatum(item_id);
		asr_spi(psprintf("UPDATE %s SET (name, arm_id, protection_state, "
						 "protection_state_description, active_location, replication_health, "
						 "test_failover_state, allowed_operations, primary_region, recovery_region, "
						 "rpo_seconds, last_failover_at, properties, synced_at) = "
						 "(SELECT " ITEM_FROM_DOCUMENT ") WHERE item_id = $6",
						 asr_rel("asr_items")),
				6, types, values, nulls, false, 0);
	}
	else
	{
		asr_spi(psprintf("INSERT INTO %s (vault_id, name, arm_id, protection_state, "
						 "protection_state_description, active_location, replication_health, "
						 "test_failover_state, allowed_operations, primary_region, recovery_region, "
						 "rpo_seconds, last_failover_at, properties, synced_at) "
						 "SELECT $1, " ITEM_FROM_DOCUMENT " RETURNING item_id",
						 asr_rel("asr_items")),
				5, types, values, nulls, false, 0);
		item_id = DatumGetInt64(asr_spi_datum(0, 1, &isnull));
	}

	asr_unpin_search_path(nestlevel);
	SPI_finish();
	return item_id;
}

/*
 * The sync: replace the recovery points of an item by the list Azure
 * returned (an array of recovery point resources, or the {"value": [...]}
 * page itself); returns the number of points stored.  See
 * asr_recovery_points_store.
 */
int
asr_recovery_points_replace(int64 item_id, Jsonb *points)
{
	int			skipped;

	return asr_recovery_points_store(item_id, points, &skipped);
}

/*
 * The sync: replace the recovery points of an item by the list Azure
 * returned; returns the number of points stored and sets *skipped to the
 * number of points that could not be read.
 *
 * A point is stored only with a name and an ARM id (non-empty strings:
 * the id is what a failover sends) and a valid recoveryPointTime (every
 * point choice is made by time): a point without them could never be
 * chosen, and is skipped rather than refusing the whole listing, which
 * would leave the item with no point to fail over to at all.  The skipped
 * ones are counted for the caller and in the server log at DEBUG1 (the
 * sync lists every item again and again: a LOG line each time would
 * flood the log during an outage).  A point type that is not a string is
 * 'unknown'.
 *
 * Coverage ("1 of 2 disks") is derived: covered = the point's
 * providerSpecificDetails.disks that are protected managed disks of the
 * item (ARM ids compared case-insensitively), total = the item's protected
 * managed disks.  A point that lists no disks has unknown coverage (NULL),
 * never "complete"; so has one of an item with more disks than the
 * smallint columns hold.
 */
int
asr_recovery_points_store(int64 item_id, Jsonb *points, int *skipped)
{
	Oid			types[4] = {INT8OID, JSONBOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		values[4];
	JsonbContainer *list = NULL;
	Datum	   *idx;
	Datum	   *times;
	int			total;
	int			nvalid = 0;
	int			i;
	int			nestlevel;
	int			n;

	/* the same list as the statement's "list" below: exact key "value" */
	if (!JB_ROOT_IS_SCALAR(points) && JB_ROOT_IS_ARRAY(points))
		list = &points->root;
	else if (!JB_ROOT_IS_SCALAR(points))
	{
		JsonbValue *v = getKeyJsonValueFromContainer(&points->root, "value", 5, NULL);

		if (v && v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
			list = v->val.binary.data;
	}
	total = asr_json_array_size(list);
	idx = palloc(sizeof(Datum) * (total + 1));
	times = palloc(sizeof(Datum) * (total + 1));
	for (i = 0; i < total; i++)
	{
		JsonbContainer *p = asr_json_array_container(list, i);
		JsonbValue *v;
		TimestampTz t;

		if (p == NULL || !JsonContainerIsObject(p))
			continue;
		v = getKeyJsonValueFromContainer(p, "name", 4, NULL);
		if (v == NULL || v->type != jbvString || v->val.string.len == 0)
			continue;
		v = getKeyJsonValueFromContainer(p, "id", 2, NULL);
		if (v == NULL || v->type != jbvString || v->val.string.len == 0)
			continue;
		v = getKeyJsonValueFromContainer(p, "properties", 10, NULL);
		p = (v && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data)) ?
			v->val.binary.data : NULL;
		v = p ? getKeyJsonValueFromContainer(p, "recoveryPointTime",
											 strlen("recoveryPointTime"), NULL) : NULL;
		if (v == NULL || v->type != jbvString ||
			!azure_timestamp(pnstrdup(v->val.string.val, v->val.string.len), &t))
			continue;
		idx[nvalid] = Int32GetDatum(i);
		times[nvalid] = TimestampTzGetDatum(t);
		nvalid++;
	}
	*skipped = total - nvalid;
	if (*skipped > 0)
		ereport(DEBUG1,
				(errmsg_internal("asr: %d of %d recovery points of item %lld skipped: no name, ARM id or valid recoveryPointTime",
								 *skipped, total, (long long) item_id)));

	values[0] = Int64GetDatum(item_id);
	values[1] = JsonbPGetDatum(points);
	values[2] = PointerGetDatum(construct_array(idx, nvalid, INT4OID, sizeof(int32),
												true, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(times, nvalid, TIMESTAMPTZOID,
												sizeof(TimestampTz), FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));

	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("DELETE FROM %s WHERE item_id = $1", asr_rel("asr_recovery_points")),
			1, types, values, NULL, false, 0);
	asr_spi(psprintf("WITH item AS ("
					 "  SELECT i.item_id, CASE WHEN jsonb_typeof(i.properties->'providerSpecificDetails'->'protectedManagedDisks') = 'array' "
					 "    THEN ARRAY(SELECT lower(d->>'diskId') FROM jsonb_array_elements(i.properties->'providerSpecificDetails'->'protectedManagedDisks') d) "
					 "    END AS disks FROM %s i WHERE i.item_id = $1), "
					 "item_disks AS (SELECT item_id, CASE WHEN cardinality(disks) <= 32767 THEN disks END AS disks "
					 "  FROM item), "
					 "list AS (SELECT CASE WHEN jsonb_typeof($2) = 'array' THEN $2 "
					 "  WHEN jsonb_typeof($2->'value') = 'array' THEN $2->'value' ELSE '[]' END AS l) "
					 "INSERT INTO %s (item_id, name, arm_id, point_time, point_type, "
					 "  disks_covered, disks_total, properties) "
					 "SELECT item.item_id, p->>'name', p->>'id', v.t, "
					 "  CASE WHEN jsonb_typeof(p->'properties'->'recoveryPointType') <> 'string' THEN 'unknown' "
					 "    WHEN p->'properties'->>'recoveryPointType' = 'ApplicationConsistent' THEN 'app_consistent' "
					 "    WHEN p->'properties'->>'recoveryPointType' = 'CrashConsistent' THEN 'crash_consistent' "
					 "    ELSE coalesce(nullif(lower(p->'properties'->>'recoveryPointType'), ''), 'unknown') END, "
					 "  CASE WHEN item.disks IS NOT NULL AND jsonb_typeof(p->'properties'->'providerSpecificDetails'->'disks') = 'array' "
					 "    THEN (SELECT count(DISTINCT lower(x)) FROM jsonb_array_elements_text(p->'properties'->'providerSpecificDetails'->'disks') x "
					 "          WHERE lower(x) = ANY (item.disks)) END, "
					 "  cardinality(item.disks), "
					 "  p->'properties' "
					 "FROM item_disks item, list, unnest($3, $4) WITH ORDINALITY AS v(i, t, o), "
					 "  LATERAL (SELECT list.l -> v.i AS p) pt "
					 "ORDER BY v.o "
					 "ON CONFLICT (item_id, name) DO NOTHING",
					 asr_rel("asr_items"), asr_rel("asr_recovery_points")),
			4, types, values, NULL, false, 0);
	n = (int) SPI_processed;
	asr_unpin_search_path(nestlevel);
	SPI_finish();
	return n;
}

/*
 * The sync, after a complete listing of a vault started at sync_started:
 * items Azure no longer reports are deleted, unless jobs refer to them;
 * those stay for the audit trail with no operation allowed.  Returns the
 * number of items deleted or marked.
 */
int
asr_items_forget_unseen(int32 vault_id, TimestampTz sync_started)
{
	Oid			types[2] = {INT4OID, TIMESTAMPTZOID};
	Datum		values[2];
	int			nestlevel;
	int			n;

	values[0] = Int32GetDatum(vault_id);
	values[1] = TimestampTzGetDatum(sync_started);
	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("DELETE FROM %s i WHERE vault_id = $1 AND synced_at < $2 "
					 "AND NOT EXISTS (SELECT 1 FROM %s j WHERE j.item_id = i.item_id)",
					 asr_rel("asr_items"), asr_rel("asr_jobs")),
			2, types, values, NULL, false, 0);
	n = (int) SPI_processed;
	asr_spi(psprintf("UPDATE %s SET allowed_operations = '{}', "
					 "protection_state_description = 'No longer reported by Azure' "
					 "WHERE vault_id = $1 AND synced_at < $2",
					 asr_rel("asr_items")),
			2, types, values, NULL, false, 0);
	n += (int) SPI_processed;
	asr_unpin_search_path(nestlevel);
	SPI_finish();
	return n;
}

/*
 * The sync: the outcome of a refresh of one vault (error NULL = success),
 * which asr_sync reports to its caller.
 */
void
asr_vault_sync_result(int32 vault_id, const char *error)
{
	Oid			types[2] = {INT4OID, TEXTOID};
	Datum		values[2];
	char		nulls[3] = "  ";
	int			nestlevel;

	values[0] = Int32GetDatum(vault_id);
	values[1] = error ? CStringGetTextDatum(error) : (Datum) 0;
	nulls[1] = error ? ' ' : 'n';
	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("UPDATE %s SET synced_at = CASE WHEN $2 IS NULL THEN now() ELSE synced_at END, "
					 "sync_error = $2 WHERE vault_id = $1", asr_rel("asr_vaults")),
			2, types, values, nulls, false, 0);
	asr_unpin_search_path(nestlevel);
	SPI_finish();
}
