/* randid.c — see randid.h. */
#include "server/randid.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>

const char randid_alphabet[63] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

bool randid_base62(char *out, size_t n, bool secret, struct err *e)
{
    size_t got = 0;
    while (got < n) {
        unsigned char buf[64];
        if (gnutls_rnd(secret ? GNUTLS_RND_KEY : GNUTLS_RND_NONCE, buf, sizeof buf) != 0)
            return err_set(e, ERR_IO, "the random number generator failed");
        /* 248 = 4 * 62: bytes at or above it would bias the low letters. */
        for (size_t i = 0; i < sizeof buf && got < n; i++)
            if (buf[i] < 248)
                out[got++] = randid_alphabet[buf[i] % 62];
    }
    out[n] = '\0';
    return true;
}

bool randid_make(const char *prefix, char *out, size_t size, struct err *e)
{
    size_t pl = strlen(prefix);
    if (pl + RANDID_LEN + 1 > size)
        return err_set(e, ERR_INTERNAL, "id buffer too small");
    memcpy(out, prefix, pl);
    return randid_base62(out + pl, RANDID_LEN, false, e);
}
