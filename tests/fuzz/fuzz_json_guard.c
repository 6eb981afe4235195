/*
 * fuzz_json_guard.c — engine/json_guard.c against cJSON.
 *
 *   1. Whatever the guard calls a complete document, cJSON parses, and as
 *      an object.
 *   2. Whatever object cJSON parses, printed back canonically, the guard
 *      accepts as complete — when the print is inside the guard's stricter
 *      subset (valid UTF-8, depth <= 64).
 *   3. Every prefix the guard accepts can be completed (no dead ends), and
 *      the completion parses.
 *   4. Byte-by-byte pushes, one whole push and json_guard_accepts() agree.
 */
#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/json_guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool valid_utf8(const unsigned char *s)
{
    while (*s) {
        unsigned char c = *s++;
        int need;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c < 0x80)
            continue;
        if (c >= 0xc2 && c <= 0xdf)
            need = 1;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        else
            return false;
        for (int i = 0; i < need; i++, lo = 0x80, hi = 0xbf) {
            if (*s < lo || *s > hi)
                return false;
            s++;
        }
    }
    return true;
}

static int depth_of(const cJSON *j)
{
    int d = 0;
    for (const cJSON *c = j->child; c; c = c->next) {
        int k = depth_of(c);
        if (k > d)
            d = k;
    }
    return (cJSON_IsObject(j) || cJSON_IsArray(j)) ? d + 1 : 0;
}

/* cJSON on exactly these bytes: with the terminating NUL inside the length
 * it refuses trailing text. */
static cJSON *parse_exact(const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        abort();
    memcpy(copy, text, len);
    copy[len] = 0;
    cJSON *doc = cJSON_ParseWithLengthOpts(copy, len + 1, NULL, 1);
    free(copy);
    return doc;
}

static bool parses_as_object(const char *text, size_t len)
{
    cJSON *doc = parse_exact(text, len);
    bool ok = doc && cJSON_IsObject(doc);
    cJSON_Delete(doc);
    return ok;
}

/* Complete greedily from an accepted state; the result must parse. */
static void check_completable(const struct json_guard *from, const uint8_t *data, size_t len)
{
    static const char prefs[] = "\"}]0:\\udcrealsntf\x80\x90\xa0{";
    struct json_guard g = *from;
    size_t cap = len + 4 * JSON_GUARD_MAX_DEPTH + 64;
    char *text = malloc(cap);
    if (!text)
        abort();
    memcpy(text, data, len);
    size_t n = len;
    while (!json_guard_complete(&g)) {
        size_t k = 0;
        while (k < sizeof prefs - 1 && !json_guard_push(&g, &prefs[k], 1))
            k++;
        if (k == sizeof prefs - 1 || n + 1 >= cap)
            abort(); /* a dead end */
        text[n++] = prefs[k];
    }
    if (!parses_as_object(text, n))
        abort();
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* cJSON stops at a NUL: compare on what comes before the first one. */
    const uint8_t *nul = memchr(data, 0, size);
    if (nul)
        size = (size_t)(nul - data);

    struct json_guard g;
    json_guard_init(&g);
    size_t accepted = 0;
    while (accepted < size && json_guard_push(&g, (const char *)data + accepted, 1))
        accepted++;

    struct json_guard whole, fresh;
    json_guard_init(&whole);
    json_guard_init(&fresh);
    if (json_guard_push(&whole, (const char *)data, size) != (accepted == size))
        abort();
    if (json_guard_accepts(&fresh, (const char *)data, size) != (accepted == size))
        abort();
    if (accepted == size && memcmp(&whole, &g, sizeof g) != 0)
        abort();

    if (json_guard_complete(&g)) {
        if (!parses_as_object((const char *)data, accepted))
            abort();
    } else {
        check_completable(&g, data, accepted);
    }

    cJSON *doc = parse_exact((const char *)data, size);
    if (doc && cJSON_IsObject(doc)) {
        char *printed = cJSON_PrintUnformatted(doc);
        if (printed && valid_utf8((const unsigned char *)printed) &&
            depth_of(doc) <= JSON_GUARD_MAX_DEPTH) {
            struct json_guard p;
            json_guard_init(&p);
            if (!json_guard_push(&p, printed, strlen(printed)) || !json_guard_complete(&p))
                abort();
        }
        free(printed);
    }
    cJSON_Delete(doc);
    return 0;
}
