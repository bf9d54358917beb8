/*-------------------------------------------------------------------------
 *
 * creds.h
 *	  The worker's view of a vault: where it is, which ARM endpoint serves
 *	  it, and whose token to send.
 *
 * IDENTIFICATION
 *	  src/creds.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_CREDS_H
#define ASR_CREDS_H

#include "auth.h"
#include "client.h"

typedef struct AsrVault
{
	int			vault_id;
	char	   *name;			/* the DBA's label */
	char	   *server;
	char	   *subscription;
	char	   *resource_group;
	char	   *vault_name;
	char	   *vault_path;		/* /subscriptions/.../vaults/{name} */
	char	   *arm_endpoint;	/* https://host[:port] */
	AsrTokenState *auth;		/* NULL when the credential lookup failed */
	char	   *error;			/* why auth is NULL, for jobs and sync_error */
	TimestampTz loaded_at;
} AsrVault;

extern const AsrTokenSource asr_token_source;

/* inside a transaction: the vault, (re)loaded when stale or forced */
extern AsrVault *asr_vault_get(int vault_id, bool force_reload);
extern List *asr_vault_ids(MemoryContext cxt);
extern void asr_vaults_invalidate(void);

/* fill the common fields of a call spec for this vault */
extern void asr_vault_call_spec(AsrVault *v, AsrCallSpec *spec,
								const char *method, const char *url,
								bool is_write);

#endif							/* ASR_CREDS_H */
