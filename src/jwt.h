/*-------------------------------------------------------------------------
 *
 * jwt.h
 *	  Client assertions (private_key_jwt) signed with a certificate's key.
 *
 * A signer holds an RSA private key, its certificate and the rest of the
 * chain, loaded from a PEM or PKCS#12 file's bytes.  It lives in a memory
 * context; OpenSSL's objects are freed (the key cleared) when that context
 * is reset or deleted.  Functions here never ereport except when palloc
 * runs out of memory: failures come back as a message for a DBA, which
 * never contains key material or a password.
 *
 * IDENTIFICATION
 *	  src/jwt.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_JWT_H
#define ASR_JWT_H

#include "fdw.h"

typedef struct AsrSigner AsrSigner;

/*
 * Load a signer from a file's bytes (data need not be NUL-terminated).
 * file names the file in messages; password may be NULL.  Returns NULL
 * and sets *error (palloc'd in the current context) on failure.
 */
extern AsrSigner *asr_signer_load(const char *data, size_t len,
								  const char *password, const char *file,
								  MemoryContext cxt, char **error);

/*
 * A signed client assertion (arm-client.md §4.3): header alg RS256 + x5t
 * or PS256 + x5t#S256, x5c when chain; claims aud, iss = sub = client_id,
 * a random jti, nbf = iat = now, exp = now + lifetime (unix seconds).
 * The result is allocated at its exact size in cxt; the caller zeroes it.
 */
extern char *asr_jwt_assertion(AsrSigner *signer, AsrJwtAlgorithm alg,
							   bool chain, const char *aud,
							   const char *client_id, int64 now,
							   int lifetime, MemoryContext cxt,
							   char **error);

/* base64 of data with OpenSSL; url = base64url without padding */
extern char *asr_base64(const unsigned char *data, size_t len, bool url);

#endif							/* ASR_JWT_H */
