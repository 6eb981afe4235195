/*
 * json_guard.h — constrain generated text to one JSON object
 * (`response_format: {"type": "json_object"}`).
 *
 * Contract
 *   A json_guard is an incremental validator over bytes: a pushdown
 *   automaton for RFC 8259 (objects, arrays, strings with every escape
 *   including \uXXXX, numbers, true/false/null) whose top-level value must
 *   be an object. It answers two questions:
 *     - json_guard_accepts(): do these bytes, appended to what was pushed so
 *       far, keep the text a prefix of some valid document?  Every prefix it
 *       accepts can still be completed: the guard never lets generation walk
 *       into a dead end.
 *     - json_guard_complete(): is the document complete (the top-level
 *       object closed)?  Generation should then stop (finish_reason "stop").
 *   "No dead end" holds per byte. Per token it holds when the vocabulary can
 *   spell every ASCII byte on its own, as byte-level BPE and byte-fallback
 *   vocabularies can; with one that cannot, constrained sampling may find
 *   no allowed token and fail (ERR_UNPROCESSABLE from the sampler).
 *
 *   Stricter than RFC 8259, on purpose, so that what it lets through is also
 *   well-formed Unicode and cannot run away:
 *     - strings must be valid UTF-8 (no overlongs, no surrogates, nothing
 *       above U+10FFFF), and \u escapes must pair surrogates correctly;
 *     - nesting depth at most JSON_GUARD_MAX_DEPTH (the top object is 1);
 *     - a number at most JSON_GUARD_MAX_NUMBER bytes;
 *     - whitespace between tokens: at most JSON_GUARD_MAX_NEWLINES line feeds
 *       in one run, and at most 8 + 4 * depth other whitespace bytes after
 *       the last line feed (room for indentation, not for filler);
 *     - before the top-level '{' only whitespace; after the final '}' only
 *       whitespace (within the same limits), so a token like "}\n" fits.
 *
 *   Sampler glue: json_guard_allowed() has the sampler_allowed_fn shape.
 *   It reads token text through a callback, so it does not depend on the
 *   tokenizer. A token whose text is NULL (control/special tokens, EOS) or
 *   empty is allowed only when the document is complete.
 *
 * Ownership
 *   struct json_guard is a small fixed-size value: copy it freely (that is
 *   how candidates are tried); it owns nothing. The filter borrows the
 *   guard and the callback context.
 *
 * Threads
 *   Plain data; one writer at a time.
 */
#ifndef MAASD_JSON_GUARD_H
#define MAASD_JSON_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_GUARD_MAX_DEPTH 64
#define JSON_GUARD_MAX_NUMBER 40
#define JSON_GUARD_MAX_NEWLINES 2

struct json_guard {
    uint64_t objects;  /* bit d: the container at depth d + 1 is an object */
    uint8_t depth;     /* open containers */
    uint8_t state;     /* internal automaton state */
    uint8_t count;     /* literal position, hex digits or UTF-8 bytes left */
    uint8_t literal;   /* which literal, or whether a string is a key */
    uint8_t lo, hi;    /* allowed range of the next UTF-8 continuation byte */
    uint8_t num_len;
    uint8_t newlines;  /* in the current whitespace run */
    uint16_t indent;   /* whitespace bytes since the run's last line feed */
    uint16_t code;     /* \u code unit being read */
};

void json_guard_init(struct json_guard *g);

/* Would appending `len` bytes keep the text a completable prefix? */
bool json_guard_accepts(const struct json_guard *g, const char *bytes, size_t len);

/* Append the bytes; false, and g unchanged, when they are not accepted. */
bool json_guard_push(struct json_guard *g, const char *bytes, size_t len);

bool json_guard_complete(const struct json_guard *g);

/* Token text for the filter: the bytes the token adds to the output, or
 * NULL for a control/special token. */
typedef const char *(*json_guard_token_text_fn)(void *ctx, int32_t token, size_t *len);

struct json_guard_filter {
    const struct json_guard *guard;
    json_guard_token_text_fn token_text;
    void *text_ctx;
};

/* sampler_allowed_fn for a struct json_guard_filter *ctx. */
bool json_guard_allowed(void *ctx, int32_t token);

#endif
