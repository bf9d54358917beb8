/*-------------------------------------------------------------------------
 *
 * authreq.h
 *	  The token request for each source of credentials: a client secret,
 *	  a certificate's client assertion, a managed identity (IMDS).
 *
 * auth.c decides when to ask and keeps what comes back; this builds what
 * is sent.  No state, no SQL, no network.
 *
 * IDENTIFICATION
 *	  src/authreq.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_AUTHREQ_H
#define ASR_AUTHREQ_H

#include "fdw.h"
#include "http.h"

extern AsrHttpRequest *asr_auth_token_request(const AsrCredential *c,
											  const char *assertion,
											  MemoryContext cxt);

#endif							/* ASR_AUTHREQ_H */
