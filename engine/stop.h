/*
 * stop.h — stop sequences over streamed text.
 *
 * Contract
 *   A stop_matcher watches the decoded text of one generation, pushed in
 *   chunks of any size (one token's text, typically), and says after each
 *   push which bytes are safe to send to the client now:
 *     - bytes that could still be the start of a stop sequence are held
 *       back until the following text decides;
 *     - a UTF-8 character is never split: when a chunk ends inside a
 *       multi-byte character (byte-fallback tokens do that), its first bytes
 *       are held until the rest arrives;
 *     - when a stop sequence appears, the text before it is emitted, the
 *       stop sequence itself and everything after it are not, `stopped` is
 *       set, and the matcher ignores whatever is pushed afterwards.
 *   Matching is byte-exact and does not depend on how the text is chunked:
 *   the stop sequence that completes first wins (earliest end; at equal
 *   ends, the one that starts first), exactly what a byte-by-byte stream
 *   would see. At the end of generation (length, EOS), stop_flush() returns
 *   what is held back — including an incomplete trailing UTF-8 sequence,
 *   as is: the caller decides how to encode it.
 *
 *   Concatenating every emitted span gives the generated text up to the
 *   first stop sequence (or all of it), byte for byte.
 *
 *   Up to STOP_MAX_SEQUENCES stop strings (OpenAI's limit) of at most
 *   STOP_MAX_BYTES bytes each; empty strings are ignored (they cannot stop
 *   anything meaningfully). stop_check() validates for the API layer.
 *
 * Ownership
 *   stop_new() copies the stop strings. The span returned in a stop_out
 *   points into the matcher's buffer and is valid until the next call on
 *   the matcher. The held-back text is at most the longest stop string
 *   minus one byte plus three bytes of an incomplete character.
 *
 * Threads
 *   One matcher per generation, used by one thread at a time.
 */
#ifndef MAASD_STOP_H
#define MAASD_STOP_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/err.h"

#define STOP_MAX_SEQUENCES 4
#define STOP_MAX_BYTES 256

struct stop_matcher;

struct stop_out {
    const char *text; /* bytes to send now (may be empty) */
    size_t len;
    bool stopped;     /* a stop sequence matched; the generation is over */
    int index;        /* which stop string matched, or -1 */
};

/* ERR_INVALID with param "stop" when there are more than 4 strings or one
 * is longer than STOP_MAX_BYTES. */
bool stop_check(const char *const *stops, int n_stops, struct err *e);

/* Validates (as above) and creates a matcher; n_stops may be 0. */
struct stop_matcher *stop_new(const char *const *stops, int n_stops, struct err *e);
void stop_free(struct stop_matcher *m);

/* Add the next chunk of text; `out` says what may be sent now. ERR_NOMEM
 * only (the matcher is then unchanged). */
bool stop_push(struct stop_matcher *m, const char *chunk, size_t len, struct stop_out *out,
               struct err *e);

/* End of generation without a stop: everything held back. Empty when the
 * matcher already stopped. */
void stop_flush(struct stop_matcher *m, struct stop_out *out);

#endif
