/*
 * crypto.c - randomness, hashes and HMAC (OpenSSL libcrypto).
 *
 * Session ids and API tokens are 256-bit random values; only their SHA-256
 * reaches the database. XSRF tokens and login nonces are HMACs keyed by the
 * hub's secret.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include "hub.h"

static void
hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void
crypto_random(void *buf, size_t n)
{
	if (RAND_bytes(buf, (int)n) != 1) {
		log_event(LOG_ERROR, "crypto.random_failed", NULL);
		abort();
	}
}

void
crypto_token(char *out)
{
	unsigned char b[32];

	crypto_random(b, sizeof(b));
	hex(b, sizeof(b), out);
}

void
crypto_sha256_hex(const char *s, size_t n, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	EVP_Digest(s, n, md, &len, EVP_sha256(), NULL);
	hex(md, len, out);
}

void
crypto_hmac_hex(const char *key, const char *msg, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg,
	     strlen(msg), md, &len);
	hex(md, len, out);
}
