/*-------------------------------------------------------------------------
 *
 * armid.c
 *	  Azure Resource Manager ids: shape checks and case-insensitive
 *	  comparison.
 *
 * Azure spells the same id with "/Subscriptions/" in one answer and
 * "/subscriptions/" (or entirely lower case) in the next, so ids are
 * compared case-insensitively, segment by segment, and never split with a
 * case-sensitive match.  Shape checks let a DBA's typo fail at the call
 * instead of minutes later in Azure.
 *
 * IDENTIFICATION
 *	  src/armid.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "nodes/pg_list.h"

#include "armid.h"

/*
 * Split "/a/b/c" into its segments; NIL when the id does not start with a
 * slash or has an empty segment (a trailing slash is tolerated).
 */
static List *
split_id(const char *id)
{
	List	   *segs = NIL;
	char	   *copy;
	char	   *p;
	size_t		len;

	if (id == NULL || id[0] != '/')
		return NIL;
	copy = pstrdup(id + 1);
	len = strlen(copy);
	if (len > 0 && copy[len - 1] == '/')
		copy[len - 1] = '\0';
	p = copy;
	for (;;)
	{
		char	   *slash = strchr(p, '/');

		if (slash)
			*slash = '\0';
		if (*p == '\0')
			return NIL;
		segs = lappend(segs, p);
		if (!slash)
			break;
		p = slash + 1;
	}
	return segs;
}

/*
 * A GUID in its 8-4-4-4-12 hex form: subscription, tenant and application
 * ids, ASR job names.  The one definition for every room.
 */
bool
asr_is_guid(const char *s)
{
	int			i;

	if (s == NULL || strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
		}
		else if (!isxdigit((unsigned char) s[i]))
			return false;
	}
	return true;
}

/* Azure resource group names: letters, digits, _ - . ( ), not ending in ".". */
static bool
is_rg_name(const char *s)
{
	size_t		len = strlen(s);
	size_t		i;

	if (len == 0 || len > 90 || s[len - 1] == '.')
		return false;
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (!(isalnum(c) || c == '_' || c == '-' || c == '.' || c == '(' ||
			  c == ')' || c >= 0x80))
			return false;
	}
	return true;
}

/* Other resource names: anything without blanks or control characters. */
static bool
is_name(const char *s)
{
	for (; *s; s++)
		if (isspace((unsigned char) *s) || iscntrl((unsigned char) *s))
			return false;
	return true;
}

/*
 * Does the id have the given shape ("subscriptions/{subscription id}/..."
 * without the leading slash)?  Literal segments compare case-insensitively.
 */
bool
asr_arm_id_matches(const char *id, const char *shape)
{
	List	   *segs = split_id(id);
	List	   *want = split_id(psprintf("/%s", shape));
	ListCell   *a,
			   *b;

	if (segs == NIL || list_length(segs) != list_length(want))
		return false;
	forboth(a, segs, b, want)
	{
		const char *s = lfirst(a);
		const char *w = lfirst(b);

		if (strcmp(w, "{subscription id}") == 0)
		{
			if (!asr_is_guid(s))
				return false;
		}
		else if (strcmp(w, "{resource group}") == 0)
		{
			if (!is_rg_name(s))
				return false;
		}
		else if (strcmp(w, "{name}") == 0)
		{
			if (!is_name(s))
				return false;
		}
		else if (pg_strcasecmp(s, w) != 0)
			return false;
	}
	return true;
}

/*
 * Raise a DBA-readable error unless id has the shape; "what" names the
 * argument or option (e.g. "network", "cache_storage_account").
 */
void
asr_arm_id_check(const char *id, const char *shape, const char *what)
{
	if (!asr_arm_id_matches(id, shape))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed ARM id for %s: \"%s\"", what, id),
				 errdetail("Expected an id of the form /%s.", shape)));
}

/*
 * Same resource?  Case-insensitive, ignoring one trailing slash.
 */
bool
asr_arm_id_equal(const char *a, const char *b)
{
	size_t		la,
				lb;

	if (a == NULL || b == NULL)
		return false;
	la = strlen(a);
	lb = strlen(b);
	if (la > 0 && a[la - 1] == '/')
		la--;
	if (lb > 0 && b[lb - 1] == '/')
		lb--;
	return la == lb && pg_strncasecmp(a, b, la) == 0;
}

/*
 * The first nsegments segments of id, with the leading slash, as spelled in
 * id; NULL when id has fewer segments.
 */
char *
asr_arm_id_prefix(const char *id, int nsegments)
{
	const char *p = id;
	int			n = 0;

	if (id == NULL || id[0] != '/')
		return NULL;
	while (n < nsegments)
	{
		p = strchr(p + 1, '/');
		n++;
		if (p == NULL)
			return n == nsegments ? pstrdup(id) : NULL;
	}
	return pnstrdup(id, p - id);
}

/*
 * Segment n (0-based, "subscriptions" is 0) of id, or NULL.
 */
char *
asr_arm_id_segment(const char *id, int n)
{
	List	   *segs = split_id(id);

	if (n < 0 || n >= list_length(segs))
		return NULL;
	return pstrdup(list_nth(segs, n));
}

int
asr_arm_id_nsegments(const char *id)
{
	return list_length(split_id(id));
}
