/*-------------------------------------------------------------------------
 *
 * json.c
 *	  Reading Azure's JSON documents with PostgreSQL's jsonb.
 *
 * Every body that arrives from the network is parsed here with jsonb_in,
 * never with a hand-written parser.  A malformed body is data, not an
 * error of the worker: the parse error is caught, copied out and the
 * error state cleared (jsonb_in holds no resources that would need a
 * transaction abort), so one bad response never stops the others.
 *
 * jsonb_in checks the JSON and its \u escapes but not the bytes of the
 * text: it trusts that its input is in the database encoding, which the
 * protocol guarantees for clients and nothing guarantees for a body from
 * the network.  Azure answers in UTF-8; a body that is not valid UTF-8 is
 * refused here, so that no invalid byte sequence reaches the tables (and
 * every client that reads them).  In a database of another encoding the
 * text is converted (a conversion looks up its function in the catalog,
 * so it needs a transaction; outside one, non-ASCII text is refused).
 *
 * IDENTIFICATION
 *	  src/json.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdarg.h>

#include "common/string.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "json.h"

/*
 * Parse text as JSON.  Returns NULL with *error set (palloc'd, no part of
 * the document quoted beyond what jsonb_in says) when it is not JSON.
 */
Jsonb *
asr_json_parse(const char *text, size_t len, char **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	Jsonb	   *volatile result = NULL;
	char	   *copy;

	*error = NULL;
	if (text == NULL || len == 0)
	{
		*error = pstrdup("empty body");
		return NULL;
	}
	if (memchr(text, '\0', len) != NULL)
	{
		*error = pstrdup("body contains a NUL byte");
		return NULL;
	}
	if (len > (size_t) PG_INT32_MAX || !pg_verify_mbstr(PG_UTF8, text, (int) len, true))
	{
		*error = pstrdup("body is not valid UTF-8");
		return NULL;
	}
	copy = pnstrdup(text, len);

	PG_TRY();
	{
		char	   *server = copy;

		if (GetDatabaseEncoding() != PG_UTF8 && !pg_is_ascii(copy))
			server = pg_any_to_server(copy, (int) len, PG_UTF8);
		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(server)));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		*error = psprintf("invalid JSON: %s", edata->message);
		FreeErrorData(edata);
		result = NULL;
	}
	PG_END_TRY();
	pfree(copy);
	return result;
}

/*
 * Member of an object: exact key first (the common case, binary search),
 * then a case-insensitive scan, because Azure changes key case between
 * api-versions (affectedObjectDetails).
 */
JsonbValue *
asr_json_member(JsonbContainer *obj, const char *key)
{
	JsonbValue *v;
	JsonbIterator *it;
	JsonbValue	k;
	JsonbIteratorToken tok;
	bool		next_is_value = false;
	bool		matched = false;
	int			depth = 0;

	if (obj == NULL || !JsonContainerIsObject(obj))
		return NULL;
	v = getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);
	if (v != NULL)
		return v;

	it = JsonbIteratorInit(obj);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY)
		{
			depth++;
			continue;
		}
		if (tok == WJB_END_OBJECT || tok == WJB_END_ARRAY)
		{
			depth--;
			continue;
		}
		if (depth != 1)
			continue;
		if (tok == WJB_KEY)
		{
			matched = (k.val.string.len == (int) strlen(key) &&
					   pg_strncasecmp(k.val.string.val, key, k.val.string.len) == 0);
			next_is_value = true;
			continue;
		}
		if (tok == WJB_VALUE && next_is_value)
		{
			next_is_value = false;
			if (matched)
			{
				v = palloc(sizeof(JsonbValue));
				*v = k;
				return v;
			}
		}
	}
	return NULL;
}

JsonbContainer *
asr_json_object(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = asr_json_member(obj, key);

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		return NULL;
	return v->val.binary.data;
}

JsonbContainer *
asr_json_array(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = asr_json_member(obj, key);

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		return NULL;
	return v->val.binary.data;
}

/*
 * A string member as a palloc'd C string; NULL when missing, null or not
 * a string.  Numbers and booleans are returned as their text.
 */
char *
asr_json_string(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = asr_json_member(obj, key);

	if (v == NULL)
		return NULL;
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		default:
			return NULL;
	}
}

bool
asr_json_number(JsonbContainer *obj, const char *key, double *out)
{
	JsonbValue *v = asr_json_member(obj, key);
	char	   *end;
	char	   *s;

	if (v == NULL)
		return false;
	if (v->type == jbvNumeric)
		s = DatumGetCString(DirectFunctionCall1(numeric_out,
												NumericGetDatum(v->val.numeric)));
	else if (v->type == jbvString)
		s = pnstrdup(v->val.string.val, v->val.string.len);
	else
		return false;
	*out = strtod(s, &end);
	return end != s && *end == '\0';
}

static JsonbContainer *
path_walk(JsonbContainer *obj, va_list ap, const char **last)
{
	const char *key = va_arg(ap, const char *);

	while (key != NULL)
	{
		const char *next = va_arg(ap, const char *);

		if (next == NULL)
		{
			*last = key;
			return obj;
		}
		obj = asr_json_object(obj, key);
		if (obj == NULL)
			return NULL;
		key = next;
	}
	*last = NULL;
	return obj;
}

char *
asr_json_path_string(JsonbContainer *obj,...)
{
	va_list		ap;
	const char *last = NULL;
	JsonbContainer *c;

	va_start(ap, obj);
	c = path_walk(obj, ap, &last);
	va_end(ap);
	if (c == NULL || last == NULL)
		return NULL;
	return asr_json_string(c, last);
}

JsonbContainer *
asr_json_path_container(JsonbContainer *obj,...)
{
	va_list		ap;
	const char *last = NULL;
	JsonbContainer *c;
	JsonbValue *v;

	va_start(ap, obj);
	c = path_walk(obj, ap, &last);
	va_end(ap);
	if (c == NULL)
		return NULL;
	if (last == NULL)
		return c;
	v = asr_json_member(c, last);
	if (v == NULL || v->type != jbvBinary)
		return NULL;
	return v->val.binary.data;
}

int
asr_json_array_size(JsonbContainer *arr)
{
	if (arr == NULL || !JsonContainerIsArray(arr))
		return 0;
	return JsonContainerSize(arr);
}

JsonbContainer *
asr_json_array_container(JsonbContainer *arr, int i)
{
	JsonbValue *v;

	if (arr == NULL || !JsonContainerIsArray(arr))
		return NULL;
	v = getIthJsonbValueFromContainer(arr, i);
	if (v == NULL || v->type != jbvBinary)
		return NULL;
	return v->val.binary.data;
}

char *
asr_json_array_string(JsonbContainer *arr, int i)
{
	JsonbValue *v;

	if (arr == NULL || !JsonContainerIsArray(arr))
		return NULL;
	v = getIthJsonbValueFromContainer(arr, i);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

char *
asr_json_container_text(JsonbContainer *c)
{
	if (c == NULL)
		return NULL;
	return JsonbToCString(NULL, c, 256);
}
