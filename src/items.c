/*-------------------------------------------------------------------------
 *
 * items.c
 *	  Replicated items as the SQL functions and the worker read them:
 *	  lookup by name, ARM id or vault-qualified name.
 *
 * A DBA names an item the way Azure's portal shows it (the VM's name),
 * and only when that is ambiguous as "vault/name" or by its ARM id.  ARM
 * ids are compared case-insensitively: Azure mixes "/Subscriptions/" and
 * "/subscriptions/".  The worker's writes of Azure's documents into these
 * tables are in itemstore.c.
 *
 * IDENTIFICATION
 *	  src/items.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "armid.h"
#include "items.h"
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
