/* apikey.c — see apikey.h. */
#include "server/apikey.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/randid.h"

static const struct {
    unsigned bit;
    const char *name;
} scope_names[] = {
    {SCOPE_INFERENCE, "inference"},
    {SCOPE_USAGE_READ, "usage:read"},
    {SCOPE_ADMIN, "admin"},
    {SCOPE_FINANCE, "finance"},
};
#define N_SCOPES (sizeof scope_names / sizeof scope_names[0])

/* Checksum of the first PREFIX+RANDOM characters: 32 bits of SHA-256 as six
 * base62 digits, most significant first (62^6 > 2^32). */
static bool checksum(const char *key, char out[APIKEY_CHECK_LEN])
{
    unsigned char digest[32];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, key, APIKEY_PREFIX_LEN + APIKEY_RANDOM_LEN, digest) != 0)
        return false;
    uint64_t v = (uint64_t)digest[0] << 24 | (uint64_t)digest[1] << 16 |
                 (uint64_t)digest[2] << 8 | digest[3];
    for (int i = APIKEY_CHECK_LEN - 1; i >= 0; i--) {
        out[i] = randid_alphabet[v % 62];
        v /= 62;
    }
    return true;
}

bool apikey_generate(char *out, struct err *e)
{
    memcpy(out, APIKEY_PREFIX, APIKEY_PREFIX_LEN);
    if (!randid_base62(out + APIKEY_PREFIX_LEN, APIKEY_RANDOM_LEN, true, e))
        return false;
    if (!checksum(out, out + APIKEY_PREFIX_LEN + APIKEY_RANDOM_LEN))
        return err_set(e, ERR_INTERNAL, "SHA-256 unavailable");
    out[APIKEY_LEN] = '\0';
    return true;
}

static bool is_base62(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

bool apikey_check_format(const char *key, size_t len, struct err *e)
{
    if (len != APIKEY_LEN || memcmp(key, APIKEY_PREFIX, APIKEY_PREFIX_LEN) != 0)
        return err_set(e, ERR_UNAUTHENTICATED,
                       "malformed API key: expected mk_live_ followed by 30 characters");
    for (size_t i = APIKEY_PREFIX_LEN; i < len; i++)
        if (!is_base62(key[i]))
            return err_set(e, ERR_UNAUTHENTICATED, "malformed API key: unexpected character");
    char want[APIKEY_CHECK_LEN];
    if (!checksum(key, want))
        return err_set(e, ERR_INTERNAL, "SHA-256 unavailable");
    if (memcmp(want, key + APIKEY_PREFIX_LEN + APIKEY_RANDOM_LEN, APIKEY_CHECK_LEN) != 0)
        return err_set(e, ERR_UNAUTHENTICATED,
                       "malformed API key: checksum mismatch (was it copied completely?)");
    return true;
}

bool apikey_hash(const uint8_t pepper[APIKEY_PEPPER_LEN], const char *key, size_t len,
                 uint8_t out[APIKEY_HASH_LEN], struct err *e)
{
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, pepper, APIKEY_PEPPER_LEN, key, len, out) != 0)
        return err_set(e, ERR_INTERNAL, "HMAC-SHA-256 unavailable");
    return true;
}

bool apikey_hash_equal(const uint8_t a[APIKEY_HASH_LEN], const uint8_t b[APIKEY_HASH_LEN])
{
    return gnutls_memcmp(a, b, APIKEY_HASH_LEN) == 0;
}

void apikey_display(const char *key, char out[APIKEY_DISPLAY_MAX])
{
    size_t len = strlen(key);
    if (len < APIKEY_PREFIX_LEN + 8) {
        snprintf(out, APIKEY_DISPLAY_MAX, "%s", APIKEY_PREFIX "…");
        return;
    }
    snprintf(out, APIKEY_DISPLAY_MAX, "%.*s…%s", APIKEY_PREFIX_LEN + 4, key, key + len - 4);
}

const char *apikey_scope_name(unsigned bit)
{
    for (size_t i = 0; i < N_SCOPES; i++)
        if (scope_names[i].bit == bit)
            return scope_names[i].name;
    return "?";
}

static bool scope_add(const char *name, size_t len, unsigned *mask, struct err *e)
{
    for (size_t i = 0; i < N_SCOPES; i++) {
        if (strlen(scope_names[i].name) == len && memcmp(scope_names[i].name, name, len) == 0) {
            *mask |= scope_names[i].bit;
            return true;
        }
    }
    return err_set_param(e, ERR_INVALID, "scopes",
                         "unknown scope '%.*s' (known: inference, usage:read, admin, finance)",
                         (int)(len > 40 ? 40 : len), name);
}

bool apikey_scopes_parse(const char *list, unsigned *out, struct err *e)
{
    unsigned mask = 0;
    const char *p = list ? list : "";
    while (*p) {
        size_t skip = strspn(p, ", ");
        p += skip;
        size_t len = strcspn(p, ", ");
        if (len && !scope_add(p, len, &mask, e))
            return false;
        p += len;
    }
    if (!mask)
        return err_set_param(e, ERR_INVALID, "scopes", "a key needs at least one scope");
    *out = mask;
    return true;
}

bool apikey_scopes_from_json(const cJSON *array, unsigned *out, struct err *e)
{
    if (!cJSON_IsArray(array))
        return err_set_param(e, ERR_INVALID, "scopes", "scopes must be an array of names");
    unsigned mask = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, array) {
        if (!cJSON_IsString(it))
            return err_set_param(e, ERR_INVALID, "scopes", "scopes must be an array of names");
        if (!scope_add(it->valuestring, strlen(it->valuestring), &mask, e))
            return false;
    }
    if (!mask)
        return err_set_param(e, ERR_INVALID, "scopes", "a key needs at least one scope");
    *out = mask;
    return true;
}

char *apikey_scopes_json(unsigned scopes)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < N_SCOPES; i++)
        if (scopes & scope_names[i].bit)
            cJSON_AddItemToArray(a, cJSON_CreateString(scope_names[i].name));
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}
