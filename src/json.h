/*-------------------------------------------------------------------------
 *
 * json.h
 *	  Reading Azure's JSON documents with PostgreSQL's jsonb.
 *
 * Network code must never ereport on a bad document: asr_json_parse()
 * turns a malformed body into NULL and a message, and the accessors
 * return NULL for anything missing or of the wrong type.
 *
 * IDENTIFICATION
 *	  src/json.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_JSON_H
#define ASR_JSON_H

#include "utils/jsonb.h"

extern Jsonb *asr_json_parse(const char *text, size_t len, char **error);

/* member lookups; key matched exactly, then case-insensitively */
extern JsonbValue *asr_json_member(JsonbContainer *obj, const char *key);
extern JsonbContainer *asr_json_object(JsonbContainer *obj, const char *key);
extern JsonbContainer *asr_json_array(JsonbContainer *obj, const char *key);
extern char *asr_json_string(JsonbContainer *obj, const char *key);
extern bool asr_json_number(JsonbContainer *obj, const char *key, double *out);

/* path of object keys, NULL-terminated: asr_json_path_string(c, "properties", "state", NULL) */
extern char *asr_json_path_string(JsonbContainer *obj,...);
extern JsonbContainer *asr_json_path_container(JsonbContainer *obj,...);

/* arrays */
extern int	asr_json_array_size(JsonbContainer *arr);
extern JsonbContainer *asr_json_array_container(JsonbContainer *arr, int i);
extern char *asr_json_array_string(JsonbContainer *arr, int i);

/* the text of a container, for storing in a jsonb column */
extern char *asr_json_container_text(JsonbContainer *c);

#endif							/* ASR_JSON_H */
