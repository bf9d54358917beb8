/*-------------------------------------------------------------------------
 *
 * reprotect.c
 *	  The inputs of an A2A reprotect (switch protection), derived from the
 *	  item and the options.
 *
 * For a failed-over, committed A2A item Azure's tools send
 * switchprotection to the container that holds the item (asr-rest.md
 * §3.7).  Everything but the cache storage account is derived the way
 * they do: the item's own container becomes the recovery container, the
 * original VM's resource group (from fabricObjectId) receives the replica
 * disks, and the failed-over VM's managed disks (recoveryTargetDiskId)
 * with their types become the disks to replicate.  The cache storage
 * account must be in the region where the VM now runs; it comes from the
 * options (an ARM id, or an object mapping regions to ARM ids), merged
 * over the vault's reprotect_options.
 *
 * IDENTIFICATION
 *	  src/reprotect.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/json.h"

#include "armid.h"
#include "reprotect.h"
#include "util.h"

#define REPROTECT_OPTIONS "cache_storage_account, resource_group, availability_set, proximity_placement_group, disk_type"

static const char *const disk_types[] = {"Standard_LRS", "Premium_LRS", "StandardSSD_LRS"};

/* Append ,"key": "value" (or "key": "value" when first) */
static void
json_str(StringInfo b, bool *first, const char *key, const char *value)
{
	if (!*first)
		appendStringInfoString(b, ", ");
	*first = false;
	escape_json(b, key);
	appendStringInfoString(b, ": ");
	if (value)
		escape_json(b, value);
	else
		appendStringInfoString(b, "null");
}

/* Append ,"key": <raw JSON>. */
static void
json_raw(StringInfo b, bool *first, const char *key, const char *raw)
{
	if (!*first)
		appendStringInfoString(b, ", ");
	*first = false;
	escape_json(b, key);
	appendStringInfo(b, ": %s", raw);
}

/* jsonb from JSON text built here (PostgreSQL's own parser). */
static Jsonb *
text_to_jsonb(const char *text)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

/* Azure's spelling of a disk account type, NULL when unknown. */
static const char *
canonical_disk_type(const char *t)
{
	int			i;

	for (i = 0; i < (int) lengthof(disk_types); i++)
		if (pg_strcasecmp(t, disk_types[i]) == 0)
			return disk_types[i];
	return NULL;
}

/*
 * Check reprotect options (a call's, or a vault's reprotect_options;
 * "where" names them in messages): a JSON object with known keys only,
 * each of the right shape.  SPI is connected.
 */
void
asr_check_reprotect_options(Jsonb *options, const char *where)
{
	Oid			type = JSONBOID;
	Datum		value = JsonbPGetDatum(options);
	uint64		i;
	int			nestlevel;

	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi("SELECT jsonb_typeof($1)", 1, &type, &value, NULL, true, 0);
	if (strcmp(asr_spi_text(0, 1), "object") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", where),
				 errhint("Known keys: " REPROTECT_OPTIONS ".")));
	asr_spi("SELECT key, jsonb_typeof(value), value #>> '{}', "
			"(SELECT string_agg(format('%s=%s', k, jsonb_typeof(v)), ',') FROM jsonb_each(CASE WHEN jsonb_typeof(value) = 'object' THEN value ELSE '{}' END) AS e(k, v)) "
			"FROM jsonb_each($1) ORDER BY key",
			1, &type, &value, NULL, true, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *key = asr_spi_text((int) i, 1);
		char	   *jtype = asr_spi_text((int) i, 2);
		char	   *val = asr_spi_text((int) i, 3);
		const char *shape = NULL;

		if (strcmp(key, "cache_storage_account") == 0 && strcmp(jtype, "object") == 0)
		{
			/* region -> ARM id: check each entry */
			Oid			t2[2] = {JSONBOID, TEXTOID};
			Datum		v2[2];
			SPITupleTable *outer = SPI_tuptable;
			uint64		outer_n = SPI_processed;
			uint64		k;

			v2[0] = value;
			v2[1] = CStringGetTextDatum(key);
			asr_spi("SELECT e.key, jsonb_typeof(e.value), e.value #>> '{}' FROM jsonb_each($1->$2) e ORDER BY 1",
					2, t2, v2, NULL, true, 0);
			for (k = 0; k < SPI_processed; k++)
			{
				if (strcmp(asr_spi_text((int) k, 2), "string") != 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("%s: cache_storage_account for region \"%s\" must be an ARM id string",
									where, asr_spi_text((int) k, 1))));
				asr_arm_id_check(asr_spi_text((int) k, 3), ARM_SHAPE_STORAGE,
								 psprintf("cache_storage_account (region %s)", asr_spi_text((int) k, 1)));
			}
			SPI_tuptable = outer;
			SPI_processed = outer_n;
			continue;
		}
		if (strcmp(key, "cache_storage_account") == 0)
			shape = ARM_SHAPE_STORAGE;
		else if (strcmp(key, "resource_group") == 0)
			shape = ARM_SHAPE_RESOURCE_GROUP;
		else if (strcmp(key, "availability_set") == 0)
			shape = ARM_SHAPE_AVSET;
		else if (strcmp(key, "proximity_placement_group") == 0)
			shape = ARM_SHAPE_PPG;
		else if (strcmp(key, "disk_type") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown reprotect option \"%s\" in %s", key, where),
					 errhint("Known keys: " REPROTECT_OPTIONS ".")));
		if (strcmp(jtype, "string") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("reprotect option \"%s\" in %s must be a string", key, where),
					 strcmp(key, "cache_storage_account") == 0 ?
					 errhint("Give an ARM id, or an object mapping regions to ARM ids.") : 0));
		if (shape)
			asr_arm_id_check(val, shape, key);
		else if (canonical_disk_type(val) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid disk_type \"%s\"", val),
					 errhint("Use Standard_LRS, Premium_LRS or StandardSSD_LRS.")));
	}
	asr_unpin_search_path(nestlevel);
	SPI_finish();
}

/*
 * Derive the switch-protection request of a committed item.  Returns the
 * preview document (what asr_reprotect_preview shows), and sets *request
 * to {"method", "path", "body"} for the job and *merged_options to the
 * options in force.  Raises an error with a hint for anything that can
 * be neither derived nor found in the options.
 */
Jsonb *
asr_reprotect_plan(const AsrItem *item, Jsonb *call_options,
				   Jsonb **request, Jsonb **merged_options)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			types[3] = {JSONBOID, JSONBOID, TEXTOID};
	Datum		values[3];
	int			nestlevel;
	const char *runs_in = (item->active_location && strcmp(item->active_location, "Recovery") == 0)
		? item->recovery_region : item->primary_region;
	const char *back_to = (runs_in == item->recovery_region) ? item->primary_region : item->recovery_region;
	char	   *cache = NULL,
			   *rg = NULL,
			   *avset = NULL,
			   *ppg = NULL,
			   *disk_type = NULL,
			   *source_vm,
			   *policy,
			   *reverse_from;
	char	   *container = asr_arm_id_prefix(item->arm_id, 12);
	char	   *rpi_name = asr_arm_id_segment(item->arm_id, 13);
	const char *rg_source;
	StringInfoData body,
				disks,
				create,
				preview;
	bool		first;
	uint64		i;
	Jsonb	   *merged;
	Jsonb	   *properties;

	asr_check_reprotect_options(call_options, "options");
	if (item->vault_reprotect_options)
		asr_check_reprotect_options(item->vault_reprotect_options,
									psprintf("reprotect_options of vault \"%s\"", item->vault));

	properties = asr_item_properties(item);
	if (properties == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("replicated item \"%s\" does not exist", item->name),
				 errdetail("It was removed while this call ran.")));

	SPI_connect();
	nestlevel = asr_pin_search_path();

	values[0] = item->vault_reprotect_options ? JsonbPGetDatum(item->vault_reprotect_options)
		: JsonbPGetDatum(text_to_jsonb("{}"));
	values[1] = JsonbPGetDatum(call_options);
	values[2] = CStringGetTextDatum(runs_in ? runs_in : "");
	asr_spi("SELECT $1 || $2, "
			"CASE WHEN jsonb_typeof(($1 || $2)->'cache_storage_account') = 'string' "
			"  THEN ($1 || $2)->>'cache_storage_account' "
			"  ELSE (SELECT e.value #>> '{}' FROM jsonb_each(($1 || $2)->'cache_storage_account') e "
			"        WHERE lower(replace(e.key, ' ', '')) = lower(replace($3, ' ', '')) LIMIT 1) END, "
			"($1 || $2)->>'resource_group', ($1 || $2)->>'availability_set', "
			"($1 || $2)->>'proximity_placement_group', ($1 || $2)->>'disk_type'",
			3, types, values, NULL, true, 0);
	{
		bool		isnull;
		Jsonb	   *m = DatumGetJsonbP(asr_spi_datum(0, 1, &isnull));

		merged = MemoryContextAlloc(cxt, VARSIZE(m));
		memcpy(merged, m, VARSIZE(m));
	}
	cache = asr_spi_text(0, 2);
	rg = asr_spi_text(0, 3);
	avset = asr_spi_text(0, 4);
	ppg = asr_spi_text(0, 5);
	disk_type = asr_spi_text(0, 6);
	if (disk_type)
		disk_type = (char *) canonical_disk_type(disk_type);

	if (cache == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reprotect of \"%s\" needs a cache storage account in %s",
						item->name, runs_in ? runs_in : "the region where the VM runs"),
				 errdetail("Azure stages the replicated writes of the VM in a storage account in the region where it now runs; asr cannot derive which one to use."),
				 errhint("Pass options => '{\"cache_storage_account\": \"/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Storage/storageAccounts/<account>\"}', or an object mapping regions to such ids, or give it as the vault's reprotect_options in asr_add_vault().")));

	/* what the item document tells */
	values[0] = JsonbPGetDatum(properties);
	asr_spi("SELECT $1->'providerSpecificDetails'->>'fabricObjectId', $1->>'policyId', "
			"$1->>'recoveryContainerId'",
			1, types, values, NULL, true, 0);
	source_vm = asr_spi_text(0, 1);
	policy = asr_spi_text(0, 2);
	reverse_from = asr_spi_text(0, 3);

	rg_source = "options.resource_group";
	if (rg == NULL)
	{
		if (source_vm == NULL || asr_arm_id_nsegments(source_vm) < 4)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot derive the resource group to reprotect \"%s\" into", item->name),
					 errdetail("The item's providerSpecificDetails.fabricObjectId (the original VM) is missing."),
					 errhint("Pass options => '{\"resource_group\": \"/subscriptions/<id>/resourceGroups/<group>\"}'.")));
		rg = psprintf("/subscriptions/%s/resourceGroups/%s",
					  asr_arm_id_segment(source_vm, 1), asr_arm_id_segment(source_vm, 3));
		rg_source = "providerSpecificDetails.fabricObjectId (the original VM's resource group)";
	}

	asr_spi("SELECT d->>'diskName', d->>'recoveryTargetDiskId', "
			"coalesce(d->>'recoveryTargetDiskAccountType', d->>'recoveryReplicaDiskAccountType'), "
			"d->>'diskId' "
			"FROM jsonb_array_elements(CASE WHEN jsonb_typeof($1->'providerSpecificDetails'->'protectedManagedDisks') = 'array' "
			"  THEN $1->'providerSpecificDetails'->'protectedManagedDisks' ELSE '[]' END) WITH ORDINALITY AS t(d, n) "
			"ORDER BY n",
			1, types, values, NULL, true, 0);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot reprotect \"%s\": no protected managed disks are recorded", item->name),
				 errdetail("The item's providerSpecificDetails.protectedManagedDisks is empty or missing."),
				 errhint("Run asr_sync() to refresh the item.")));

	initStringInfo(&disks);
	initStringInfo(&create);
	appendStringInfoChar(&disks, '[');
	appendStringInfoChar(&create, '[');
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *name = asr_spi_text((int) i, 1);
		char	   *target = asr_spi_text((int) i, 2);
		char	   *dtype = disk_type ? disk_type : asr_spi_text((int) i, 3);
		char	   *target_name;

		if (target == NULL || target[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot reprotect \"%s\": disk \"%s\" has no failed-over disk",
							item->name, name ? name : asr_spi_text((int) i, 4)),
					 errdetail("Its recoveryTargetDiskId is empty: Azure has not reported the disk the failed-over VM uses."),
					 errhint("Run asr_sync() to refresh the item after the failover.")));
		target_name = asr_arm_id_segment(target, asr_arm_id_nsegments(target) - 1);
		appendStringInfoString(&disks, i ? ", {" : "{");
		first = true;
		json_str(&disks, &first, "diskId", target);
		json_str(&disks, &first, "primaryStagingAzureStorageAccountId", cache);
		json_str(&disks, &first, "recoveryResourceGroupId", rg);
		if (dtype)
		{
			json_str(&disks, &first, "recoveryReplicaDiskAccountType", dtype);
			json_str(&disks, &first, "recoveryTargetDiskAccountType", dtype);
		}
		appendStringInfoChar(&disks, '}');

		appendStringInfoString(&create, i ? ", {" : "{");
		first = true;
		json_str(&create, &first, "resource", "replica managed disk");
		json_str(&create, &first, "name", psprintf("%s-ASRReplica", target_name));
		json_str(&create, &first, "resource_group", rg);
		json_str(&create, &first, "region", back_to);
		json_str(&create, &first, "disk_type", dtype);
		json_str(&create, &first, "replicates", target);
		appendStringInfoChar(&create, '}');
	}
	appendStringInfoChar(&disks, ']');
	appendStringInfoString(&create, ", {");
	first = true;
	json_str(&create, &first, "resource", "resource group");
	json_str(&create, &first, "id", rg);
	json_str(&create, &first, "region", back_to);
	json_str(&create, &first, "note", "created by Azure only if it does not exist");
	appendStringInfoChar(&create, '}');
	appendStringInfoChar(&create, ']');

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"properties\": {");
	first = true;
	json_str(&body, &first, "replicationProtectedItemName", rpi_name);
	appendStringInfoString(&body, ", \"providerSpecificDetails\": {");
	first = true;
	json_str(&body, &first, "instanceType", "A2A");
	json_str(&body, &first, "recoveryContainerId", container);
	json_str(&body, &first, "policyId", policy);
	json_str(&body, &first, "recoveryResourceGroupId", rg);
	if (avset)
		json_str(&body, &first, "recoveryAvailabilitySetId", avset);
	if (ppg)
		json_str(&body, &first, "recoveryProximityPlacementGroupId", ppg);
	json_raw(&body, &first, "vmManagedDisks", disks.data);
	json_raw(&body, &first, "vmDisks", "[]");
	appendStringInfoString(&body, "}}}");

	initStringInfo(&preview);
	appendStringInfoChar(&preview, '{');
	first = true;
	json_str(&preview, &first, "item", item->name);
	json_str(&preview, &first, "vault", item->vault);
	json_str(&preview, &first, "runs_in", runs_in);
	json_str(&preview, &first, "replicates_to", back_to);
	json_str(&preview, &first, "method", "POST");
	json_str(&preview, &first, "path", psprintf("%s/switchprotection", container));
	json_raw(&preview, &first, "body", body.data);
	{
		StringInfoData d;
		bool		f = true;

		initStringInfo(&d);
		appendStringInfoChar(&d, '{');
		json_str(&d, &f, "path", "the container that holds the item (its ARM id)");
		json_str(&d, &f, "recoveryContainerId", "the same container: replication goes back to where the item was protected from");
		json_str(&d, &f, "policyId", "the item's policyId; the reverse container mapping must use it");
		json_str(&d, &f, "recoveryResourceGroupId", rg_source);
		json_str(&d, &f, "vmManagedDisks.diskId", "protectedManagedDisks[].recoveryTargetDiskId (the failed-over VM's disks)");
		json_str(&d, &f, "vmManagedDisks.primaryStagingAzureStorageAccountId", "options.cache_storage_account");
		json_str(&d, &f, "vmManagedDisks.disk types", disk_type ? "options.disk_type" : "protectedManagedDisks[].recoveryTargetDiskAccountType");
		appendStringInfoChar(&d, '}');
		json_raw(&preview, &first, "derived_from", d.data);
	}
	{
		StringInfoData m;
		bool		f = true;

		initStringInfo(&m);
		appendStringInfoChar(&m, '{');
		json_str(&m, &f, "from_container", reverse_from);
		json_str(&m, &f, "to_container", container);
		appendStringInfoChar(&m, '}');
		json_raw(&preview, &first, "reverse_container_mapping", m.data);
	}
	json_raw(&preview, &first, "will_create", create.data);
	appendStringInfoChar(&preview, '}');

	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		StringInfoData req;
		Jsonb	   *result;

		initStringInfo(&req);
		appendStringInfo(&req, "{\"method\": \"POST\", \"path\": ");
		escape_json(&req, psprintf("%s/switchprotection", container));
		appendStringInfo(&req, ", \"body\": %s}", body.data);
		*request = text_to_jsonb(req.data);
		*merged_options = merged;
		result = text_to_jsonb(preview.data);
		MemoryContextSwitchTo(old);

		asr_unpin_search_path(nestlevel);
		SPI_finish();
		return result;
	}
}
