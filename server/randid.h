/*
 * randid.h — random identifiers and secrets in base62, from GnuTLS's
 * generator (gnutls_rnd), never from rand().
 *
 * Public ids look like "cus_" + 20 base62 characters (119 bits): unguessable
 * enough that an id learnt from one tenant's response says nothing about
 * another's, short enough to read aloud. Secrets (API keys) use GnuTLS's
 * key-level generator (apikey.h).
 *
 * Contract: any thread; fails only if the system generator fails (ERR_IO).
 */
#ifndef MAASD_RANDID_H
#define MAASD_RANDID_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/err.h"

#define RANDID_LEN 20                 /* random characters after the prefix */
#define RANDID_MAX 40                 /* buffer size for any id with its prefix */

extern const char randid_alphabet[63]; /* 0-9 A-Z a-z */

/* n uniformly distributed base62 characters (no bias: rejection sampling)
 * and a NUL into out[n + 1]. `secret` selects GnuTLS's key-level source. */
bool randid_base62(char *out, size_t n, bool secret, struct err *e);

/* prefix + RANDID_LEN characters, e.g. randid_make("cus_", buf, ...). */
bool randid_make(const char *prefix, char *out, size_t size, struct err *e);

#endif
