/*-------------------------------------------------------------------------
 *
 * jwt.c
 *	  Client assertions (private_key_jwt) signed with a certificate's key.
 *
 * Microsoft Entra ID accepts, instead of a client secret, a short-lived
 * JWT signed with the private key of a certificate registered for the
 * application (arm-client.md §4.3).  This file loads the key and the
 * certificate chain with OpenSSL and signs assertions; auth.c decides
 * when.  JSON is built with escape_json(), base64 comes from OpenSSL, and
 * OpenSSL's objects are released by a memory-context reset callback, so
 * an ERROR anywhere cannot leak a key.
 *
 * IDENTIFICATION
 *	  src/jwt.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "lib/stringinfo.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "jwt.h"

struct AsrSigner
{
	EVP_PKEY   *pkey;
	X509	   *cert;			/* the leaf: the certificate of pkey */
	STACK_OF(X509) *chain;		/* the others, in file order */
	char	   *x5t;			/* base64url SHA-1 thumbprint */
	char	   *x5t_s256;		/* base64url SHA-256 thumbprint */
	char	   *x5c;			/* JSON array of base64 DER, leaf first */
	MemoryContextCallback cb;
};

static void signer_free(void *arg);

/*
 * The OpenSSL reason of the last failure, with the queue cleared: the
 * reasons are fixed strings ("bad decrypt", "mac verify failure"), never
 * key material.
 */
static const char *
openssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : "unknown error";
}

/*
 * Password callback for encrypted PEM keys.  Without it OpenSSL would
 * prompt on the server's terminal; without a password it simply fails.
 * OpenSSL cleanses buf after use.
 */
static int
pem_password(char *buf, int size, int rwflag, void *u)
{
	const char *pw = (const char *) u;
	int			n;

	if (pw == NULL)
		return -1;
	n = strlen(pw);
	if (n > size)
		return -1;
	memcpy(buf, pw, n);
	return n;
}

/*
 * Runs when the signer's context goes: EVP_PKEY_free clears the key.
 */
static void
signer_free(void *arg)
{
	AsrSigner  *s = (AsrSigner *) arg;

	EVP_PKEY_free(s->pkey);
	X509_free(s->cert);
	sk_X509_pop_free(s->chain, X509_free);
	s->pkey = NULL;
	s->cert = NULL;
	s->chain = NULL;
}

/*
 * Load the key and certificates: PEM (key and certificates in any order,
 * the key possibly encrypted with the password) or PKCS#12.  The leaf is
 * the certificate that matches the key; the others form the chain sent in
 * x5c.  The signer and its OpenSSL objects are tied to cxt as soon as
 * they exist, so nothing leaks on any path.
 */
AsrSigner *
asr_signer_load(const char *data, size_t len, const char *password,
				const char *file, MemoryContext cxt, char **error)
{
	AsrSigner  *s;
	BIO		   *bio;
	X509	   *leaf = NULL;
	const char *format;
	bool		pem = false;
	bool		p12_parsed = false;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	StringInfoData x5c;
	int			i;

	s = MemoryContextAllocZero(cxt, sizeof(AsrSigner));
	s->cb.func = signer_free;
	s->cb.arg = s;
	MemoryContextRegisterResetCallback(cxt, &s->cb);

	ERR_clear_error();
	bio = BIO_new_mem_buf(data, (int) len);
	if (bio == NULL)
	{
		*error = psprintf("could not read certificate_file \"%s\": out of memory", file);
		return NULL;
	}

	if (memmem(data, len, "-----BEGIN", 10) != NULL)
	{
		X509	   *x;

		format = "PEM";
		pem = true;
		s->pkey = PEM_read_bio_PrivateKey(bio, NULL, pem_password,
										  (void *) password);
		if (s->pkey != NULL)
		{
			s->chain = sk_X509_new_null();
			(void) BIO_reset(bio);
			while (s->chain && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
				sk_X509_push(s->chain, x);
			ERR_clear_error();	/* the end of the file */
		}
	}
	else
	{
		PKCS12	   *p12 = d2i_PKCS12_bio(bio, NULL);

		format = "PKCS#12";
		if (p12 != NULL)
		{
			p12_parsed = true;
			if (!PKCS12_parse(p12, password ? password : "",
							  &s->pkey, &s->cert, &s->chain))
				s->pkey = NULL;
			PKCS12_free(p12);
		}
	}
	BIO_free(bio);

	if (s->pkey == NULL && !pem && !p12_parsed)
	{
		ERR_clear_error();
		*error = psprintf("certificate_file \"%s\" is neither a PEM file nor a PKCS#12 file",
						  file);
		return NULL;
	}
	if (s->pkey == NULL && pem && memmem(data, len, "PRIVATE KEY-----", 16) == NULL)
	{
		ERR_clear_error();
		*error = psprintf("certificate_file \"%s\" holds no private key. Put the private key and the certificate in one PEM file, or use a PKCS#12 file.",
						  file);
		return NULL;
	}
	if (s->pkey == NULL)
	{
		const char *reason = openssl_reason();

		*error = psprintf("could not load the private key from certificate_file \"%s\" (%s): %s. %s",
						  file, format, reason,
						  password ?
						  "Check certificate_password of the user mapping." :
						  "If the key is encrypted, set certificate_password in the user mapping.");
		return NULL;
	}
	if (s->chain == NULL)
		s->chain = sk_X509_new_null();
	if (s->chain == NULL)
	{
		*error = psprintf("could not read certificate_file \"%s\": out of memory", file);
		return NULL;
	}

	/* the leaf is the certificate of this key; PKCS#12 names it itself */
	if (s->cert == NULL)
	{
		for (i = 0; i < sk_X509_num(s->chain); i++)
		{
			if (X509_check_private_key(sk_X509_value(s->chain, i), s->pkey) == 1)
			{
				s->cert = sk_X509_delete(s->chain, i);
				break;
			}
		}
		ERR_clear_error();
	}
	leaf = s->cert;
	if (leaf == NULL)
	{
		*error = psprintf("certificate_file \"%s\" holds no certificate matching its private key",
						  file);
		return NULL;
	}
	if (EVP_PKEY_get_base_id(s->pkey) != EVP_PKEY_RSA)
	{
		*error = psprintf("the private key in certificate_file \"%s\" is not an RSA key",
						  file);
		return NULL;
	}

	if (!X509_digest(leaf, EVP_sha1(), md, &mdlen))
		goto digest_failed;
	s->x5t = MemoryContextStrdup(cxt, asr_base64(md, mdlen, true));
	if (!X509_digest(leaf, EVP_sha256(), md, &mdlen))
		goto digest_failed;
	s->x5t_s256 = MemoryContextStrdup(cxt, asr_base64(md, mdlen, true));

	/* x5c: standard base64 of each DER certificate, leaf first (RFC 7515) */
	initStringInfo(&x5c);
	appendStringInfoChar(&x5c, '[');
	for (i = -1; i < sk_X509_num(s->chain); i++)
	{
		X509	   *x = i < 0 ? leaf : sk_X509_value(s->chain, i);
		unsigned char *der = NULL;
		int			derlen = i2d_X509(x, &der);

		if (derlen <= 0)
			goto digest_failed;
		if (i >= 0)
			appendStringInfoChar(&x5c, ',');
		escape_json(&x5c, asr_base64(der, derlen, false));
		OPENSSL_free(der);
	}
	appendStringInfoChar(&x5c, ']');
	s->x5c = MemoryContextStrdup(cxt, x5c.data);
	pfree(x5c.data);
	return s;

digest_failed:
	*error = psprintf("could not read the certificate in certificate_file \"%s\": %s",
					  file, openssl_reason());
	return NULL;
}

/*
 * A random (version 4) UUID for the assertion's jti.
 */
static bool
random_uuid(char *out)
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return false;
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 37,
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
			 b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
	return true;
}

/*
 * Build and sign one assertion.  RS256 is RSASSA-PKCS1-v1_5 over SHA-256;
 * PS256 is RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.
 */
char *
asr_jwt_assertion(AsrSigner *signer, AsrJwtAlgorithm alg, bool chain,
				  const char *aud, const char *client_id, int64 now,
				  int lifetime, MemoryContext cxt, char **error)
{
	bool		pss = (alg == ASR_JWT_PS256);
	StringInfoData header;
	StringInfoData claims;
	char		jti[37];
	char	   *input;
	char	   *sig64;
	char	   *jwt;
	size_t		inlen;
	size_t		siglen64;
	EVP_MD_CTX *md;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *sig;
	size_t		siglen = 0;
	bool		ok;

	if (!random_uuid(jti))
	{
		*error = psprintf("could not generate a random jti: %s", openssl_reason());
		return NULL;
	}

	initStringInfo(&header);
	appendStringInfoString(&header, "{\"alg\":");
	escape_json(&header, pss ? "PS256" : "RS256");
	appendStringInfoString(&header, ",\"typ\":\"JWT\",");
	appendStringInfoString(&header, pss ? "\"x5t#S256\":" : "\"x5t\":");
	escape_json(&header, pss ? signer->x5t_s256 : signer->x5t);
	if (chain)
		appendStringInfo(&header, ",\"x5c\":%s", signer->x5c);
	appendStringInfoChar(&header, '}');

	initStringInfo(&claims);
	appendStringInfoString(&claims, "{\"aud\":");
	escape_json(&claims, aud);
	appendStringInfoString(&claims, ",\"iss\":");
	escape_json(&claims, client_id);
	appendStringInfoString(&claims, ",\"sub\":");
	escape_json(&claims, client_id);
	appendStringInfoString(&claims, ",\"jti\":");
	escape_json(&claims, jti);
	appendStringInfo(&claims, ",\"nbf\":" INT64_FORMAT ",\"iat\":" INT64_FORMAT
					 ",\"exp\":" INT64_FORMAT "}",
					 now, now, now + lifetime);

	input = psprintf("%s.%s",
					 asr_base64((unsigned char *) header.data, header.len, true),
					 asr_base64((unsigned char *) claims.data, claims.len, true));
	inlen = strlen(input);
	pfree(header.data);
	pfree(claims.data);

	md = EVP_MD_CTX_new();
	ok = md != NULL &&
		EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, signer->pkey) == 1;
	if (ok && pss)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
			EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
			EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1;
	else if (ok)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
	if (ok)
		ok = EVP_DigestSign(md, NULL, &siglen, (unsigned char *) input, inlen) == 1;
	sig = palloc(Max(siglen, 1));
	if (ok)
		ok = EVP_DigestSign(md, sig, &siglen, (unsigned char *) input, inlen) == 1;
	EVP_MD_CTX_free(md);
	if (!ok)
	{
		*error = pstrdup(openssl_reason());
		pfree(sig);
		pfree(input);
		return NULL;
	}

	/* input "." signature, at its final size: the caller zeroes it */
	sig64 = asr_base64(sig, siglen, true);
	siglen64 = strlen(sig64);
	jwt = MemoryContextAlloc(cxt, inlen + 1 + siglen64 + 1);
	memcpy(jwt, input, inlen);
	jwt[inlen] = '.';
	memcpy(jwt + inlen + 1, sig64, siglen64 + 1);
	/* together these pieces are the assertion: zero them too */
	explicit_bzero(sig64, siglen64);
	explicit_bzero(sig, siglen);
	explicit_bzero(input, inlen);
	pfree(sig64);
	pfree(sig);
	pfree(input);
	return jwt;
}

/*
 * Base64 with OpenSSL; url = base64url without padding (RFC 7515 §2).
 */
char *
asr_base64(const unsigned char *data, size_t len, bool url)
{
	char	   *out = palloc(4 * ((len + 2) / 3) + 1);
	int			n = EVP_EncodeBlock((unsigned char *) out, data, (int) len);
	int			i;

	if (url)
	{
		while (n > 0 && out[n - 1] == '=')
			n--;
		out[n] = '\0';
		for (i = 0; i < n; i++)
		{
			if (out[i] == '+')
				out[i] = '-';
			else if (out[i] == '/')
				out[i] = '_';
		}
	}
	return out;
}
