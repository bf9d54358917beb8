/*-------------------------------------------------------------------------
 *
 * items.c
 *	  Replicated items and recovery points: lookup by name, ARM id or
 *	  vault-qualified name; the writes of the worker's sync.
 *
 * A DBA names an item the way Azure's portal shows it (the VM's name),
 * and only when that is ambiguous as "vault/name" or by its ARM id.  ARM
 * ids are compared case-insensitively: Azure mixes "/Subscriptions/" and
 * "/subscriptions/".  The sync side maps Azure's documents onto the
 * columns with PostgreSQL's jsonb, keeping the whole document in
 * properties for what the columns do not cover.
 *
 * IDENTIFICATION
 *	  src/items.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "armid.h"
#include "items.h"
#include "json.h"
#include "util.h"



/*
 * The columns of an AsrItem, read by fill_item() from the first row of a
 * query "SELECT " ITEM_COLUMNS " FROM asr_items i JOIN asr_vaults v ...".
 * Azure's whole item document (properties, some kB, TOASTed) is not among
 * them: only a refusal and a reprotect need it, and fetching and
 * decompressing it was a good part of every call.
 */
#define ITEM_COLUMNS \
	"i.item_id, i.vault_id, v.name, i.name, i.arm_id, " \
	"i.protection_state, i.protection_state_description, i.active_location, " \
	"i.replication_health, i.test_failover_state, i.allowed_operations, " \
	"i.primary_region, i.recovery_region, v.reprotect_options, i.synced_at "

/*
 * The text of a jsonb value as the ->> operator gives it: a string as is,
 * other scalars and containers as JSON, null as NULL.
 */
static char *
jsonb_value_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return NULL;
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBinary:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		default:
			elog(ERROR, "asr: unexpected jsonb value type %d", (int) v->type);
	}
	return NULL;				/* keep compiler quiet */
}

/* The member key of a jsonb object container as a container, or NULL. */
static JsonbContainer *
member_container(JsonbContainer *obj, const char *key, JsonbValue *v)
{
	if (obj == NULL || !JsonContainerIsObject(obj) ||
		getKeyJsonValueFromContainer(obj, key, strlen(key), v) == NULL ||
		v->type != jbvBinary)
		return NULL;
	return v->val.binary.data;
}

/* An AsrItem in cxt from the first row of an ITEM_COLUMNS query. */
static void
fill_item(MemoryContext cxt, AsrItem *item)
{
	bool		isnull;
	Datum		d;

	item->item_id = DatumGetInt64(asr_spi_datum(0, 1, &isnull));
	item->vault_id = DatumGetInt32(asr_spi_datum(0, 2, &isnull));
	asr_spi_copy_texts(cxt, 3, &item->vault, &item->name, &item->arm_id,
					   &item->protection_state, &item->protection_state_description,
					   &item->active_location, &item->replication_health,
					   &item->test_failover_state, NULL);
	d = asr_spi_datum(0, 11, &isnull);
	item->nops = 0;
	item->allowed_operations = NULL;
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *enulls;
		int			n,
					i;
		MemoryContext old;

		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false,
						  TYPALIGN_INT, &elems, &enulls, &n);
		old = MemoryContextSwitchTo(cxt);
		item->allowed_operations = palloc0(sizeof(char *) * (n + 1));
		for (i = 0; i < n; i++)
			if (!enulls[i])
				item->allowed_operations[item->nops++] = TextDatumGetCString(elems[i]);
		MemoryContextSwitchTo(old);
	}
	asr_spi_copy_texts(cxt, 12, &item->primary_region, &item->recovery_region, NULL);
	item->vault_reprotect_options = asr_spi_copy_jsonb(cxt, 14);
	item->synced_at = DatumGetTimestampTz(asr_spi_datum(0, 15, &isnull));
}

/*
 * Load one item by id; false when it does not exist.  With lock, the row
 * is locked FOR NO KEY UPDATE until the end of the transaction: two
 * sessions acting on the same item queue up here, and the second one sees
 * the first one's job once it gets the lock.
 */
bool
asr_item_load(int64 item_id, bool lock, AsrItem *item)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			type = INT8OID;
	Datum		id = Int64GetDatum(item_id);
	bool		found;
	int			nestlevel;

	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("SELECT " ITEM_COLUMNS "FROM %s i JOIN %s v USING (vault_id) "
					 "WHERE i.item_id = $1%s",
					 asr_rel("asr_items"), asr_rel("asr_vaults"),
					 lock ? " FOR NO KEY UPDATE OF i" : ""),
			1, &type, &id, NULL, !lock, 0);
	found = (SPI_processed == 1);
	if (found)
		fill_item(cxt, item);
	asr_unpin_search_path(nestlevel);
	SPI_finish();
	return found;
}

/* "a, b, c" from column col of every row of the last result */
static char *
join_column(int col, const char *quote)
{
	StringInfoData buf;
	uint64		i;

	initStringInfo(&buf);
	for (i = 0; i < SPI_processed; i++)
		appendStringInfo(&buf, "%s%s%s%s", i > 0 ? ", " : "", quote,
						 asr_spi_text((int) i, col), quote);
	return buf.data;
}

/*
 * Azure's document of an item as last synced (asr_items.properties), in
 * the caller's memory context; NULL when the item is gone.
 */
Jsonb *
asr_item_properties(const AsrItem *item)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			type = INT8OID;
	Datum		id = Int64GetDatum(item->item_id);
	Jsonb	   *properties = NULL;
	int			nestlevel;

	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("SELECT properties FROM %s WHERE item_id = $1", asr_rel("asr_items")),
			1, &type, &id, NULL, true, 0);
	if (SPI_processed == 1)
		properties = asr_spi_copy_jsonb(cxt, 1);
	asr_unpin_search_path(nestlevel);
	SPI_finish();
	return properties;
}

/*
 * The operation Azure is running on an item
 * (properties->'currentScenario'->>'scenarioName'), NULL for none or
 * "None".
 */
char *
asr_item_scenario(const AsrItem *item)
{
	Jsonb	   *properties = asr_item_properties(item);
	JsonbContainer *c;
	JsonbValue	v;
	char	   *scenario;

	c = member_container(properties ? &properties->root : NULL, "currentScenario", &v);
	if (c == NULL || !JsonContainerIsObject(c) ||
		getKeyJsonValueFromContainer(c, "scenarioName", strlen("scenarioName"), &v) == NULL)
		return NULL;
	scenario = jsonb_value_text(&v);
	return (scenario && strcmp(scenario, "None") != 0) ? scenario : NULL;
}

/*
 * Find the item a DBA means by spec: "vm", "vault/vm" or an ARM id, and
 * load it (locked when lock) with the same statement.  Every way of not
 * finding exactly one item is an error saying what exists instead (the
 * lists of an ambiguous name are read again, in order, for the message).
 */
void
asr_item_resolve(const char *spec, bool lock, AsrItem *item)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	int			nestlevel;
	const char *slash;
	const char *lock_clause = lock ? " FOR NO KEY UPDATE OF i" : "";
	char	   *trimmed;

	if (spec == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("item must not be NULL"),
				 errhint("Name the VM, as in asr_item_status.name, or give the item's ARM id.")));
	trimmed = pstrdup(spec);
	while (*trimmed == ' ' || *trimmed == '\t')
		trimmed++;
	if (*trimmed == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("item must not be empty"),
				 errhint("Name the VM, as in asr_item_status.name, or give the item's ARM id.")));

	SPI_connect();
	nestlevel = asr_pin_search_path();

	if (spec[0] == '/')
	{
		asr_arm_id_check(spec, ARM_SHAPE_ITEM, "item");
		values[0] = CStringGetTextDatum(spec);
		asr_spi(psprintf("SELECT " ITEM_COLUMNS "FROM %s i JOIN %s v USING (vault_id) "
						 "WHERE lower(i.arm_id) = lower(rtrim($1, '/'))%s",
						 asr_rel("asr_items"), asr_rel("asr_vaults"), lock_clause),
				1, types, values, NULL, !lock, 0);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("replicated item \"%s\" does not exist", spec),
					 errdetail("No item known to asr has this ARM id."),
					 errhint("Run asr_sync() if the VM was protected or reprotected recently; asr_items lists the known items.")));
	}
	else if ((slash = strchr(spec, '/')) != NULL)
	{
		char	   *vault = pnstrdup(spec, slash - spec);
		const char *name = slash + 1;

		values[0] = CStringGetTextDatum(vault);
		values[1] = CStringGetTextDatum(name);
		asr_spi(psprintf("SELECT " ITEM_COLUMNS "FROM %s i JOIN %s v USING (vault_id) "
						 "WHERE v.name = $1 AND lower(i.name) = lower($2)%s",
						 asr_rel("asr_items"), asr_rel("asr_vaults"), lock_clause),
				2, types, values, NULL, !lock, 0);
		if (SPI_processed == 0)
		{
			asr_spi(psprintf("SELECT 1 FROM %s WHERE name = $1", asr_rel("asr_vaults")),
					1, types, values, NULL, true, 0);
			if (SPI_processed == 0)
			{
				asr_spi(psprintf("SELECT name FROM %s ORDER BY name", asr_rel("asr_vaults")),
						0, NULL, NULL, NULL, true, 0);
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("vault \"%s\" does not exist", vault),
						 SPI_processed > 0 ?
						 errdetail("Known vaults: %s.", join_column(1, "")) :
						 errdetail("No vault has been added yet."),
						 errhint("Write \"vault/name\" with a vault from asr_vaults.name, or add the vault with asr_add_vault().")));
			}
			asr_spi(psprintf("SELECT DISTINCT v.name FROM %s i JOIN %s v USING (vault_id) "
							 "WHERE lower(i.name) = lower($2) ORDER BY v.name",
							 asr_rel("asr_items"), asr_rel("asr_vaults")),
					2, types, values, NULL, true, 0);
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("replicated item \"%s\" does not exist in vault \"%s\"", name, vault),
					 SPI_processed > 0 ?
					 errdetail("An item of that name is in vault %s.", join_column(1, "")) :
					 errdetail("No vault has an item of that name."),
					 errhint("Run asr_sync('%s') if the VM was protected recently.", vault)));
		}
		if (SPI_processed > 1)
		{
			asr_spi(psprintf("SELECT i.arm_id FROM %s i JOIN %s v USING (vault_id) "
							 "WHERE v.name = $1 AND lower(i.name) = lower($2) ORDER BY i.item_id",
							 asr_rel("asr_items"), asr_rel("asr_vaults")),
					2, types, values, NULL, true, 0);
			ereport(ERROR,
					(errcode(ERRCODE_AMBIGUOUS_PARAMETER),
					 errmsg("item name \"%s\" is ambiguous in vault \"%s\"", name, vault),
					 errdetail("Items of that name: %s.", join_column(1, "")),
					 errhint("Give the item's ARM id.")));
		}
	}
	else
	{
		values[1] = CStringGetTextDatum(spec);
		asr_spi(psprintf("SELECT " ITEM_COLUMNS "FROM %s i JOIN %s v USING (vault_id) "
						 "WHERE lower(i.name) = lower($2)%s",
						 asr_rel("asr_items"), asr_rel("asr_vaults"), lock_clause),
				2, types, values, "n ", !lock, 0);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("replicated item \"%s\" does not exist", spec),
					 errhint("Run asr_sync() if the VM was protected recently; asr_items lists the known items.")));
		if (SPI_processed > 1)
		{
			char	   *vaults;

			asr_spi(psprintf("SELECT v.name FROM %s i JOIN %s v USING (vault_id) "
							 "WHERE lower(i.name) = lower($2) ORDER BY v.name, i.item_id",
							 asr_rel("asr_items"), asr_rel("asr_vaults")),
					2, types, values, "n ", true, 0);
			vaults = join_column(1, "");

			ereport(ERROR,
					(errcode(ERRCODE_AMBIGUOUS_PARAMETER),
					 errmsg("item name \"%s\" is ambiguous", spec),
					 errdetail("Items of that name are in vaults %s.", vaults),
					 errhint("Write \"vault/%s\" with one of these vaults, or give the item's ARM id.", spec)));
		}
	}
	fill_item(cxt, item);
	asr_unpin_search_path(nestlevel);
	SPI_finish();
}

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
