/*
 * fuzz_chat_template.c — engine/chat_template.c on hostile template sources
 * (they come from GGUF metadata) and arbitrary conversations.
 *
 * Input: the template source, then 0xff-separated messages whose first
 * byte picks the role. Checks: no crash or leak; a rendered prompt is
 * NUL-terminated at its reported length and contains every message text
 * the family keeps verbatim (all but the trimming families).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/chat_template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = memchr(data, 0xff, size);
    size_t src_len = sep ? (size_t)(sep - data) : size;
    char *src = malloc(src_len + 1);
    if (!src)
        return 0;
    memcpy(src, data, src_len);
    src[src_len] = 0;

    struct chat_message msgs[MAX_MSGS];
    size_t n = 0;
    const uint8_t *p = sep ? sep + 1 : data + size, *end = data + size;
    while (p < end && n < MAX_MSGS) {
        const uint8_t *q = memchr(p, 0xff, (size_t)(end - p));
        if (!q)
            q = end;
        if (q == p) { /* an empty chunk: an empty user message */
            msgs[n++] = (struct chat_message){CHAT_ROLE_USER, "", 0};
            p = q + 1;
            continue;
        }
        msgs[n].role = (enum chat_role)(*p % 3);
        msgs[n].content = (const char *)p + 1;
        msgs[n].len = (size_t)(q - p) - 1;
        n++;
        p = q + 1;
    }

    struct err e = {0};
    struct chat_template *t = chat_template_new(src, src_len, "<s>", "</s>", &e);
    if (!t)
        abort(); /* only ENOMEM may fail, and the fuzzer does not run out */
    size_t len = 0;
    bool has_bos = false;
    struct chat_span *spans = NULL;
    size_t n_spans = 0;
    char *out = chat_template_render(t, msgs, n, &len, &has_bos, &spans, &n_spans, &e);
    if (out) {
        if (out[len] != 0 || (has_bos && strncmp(out, "<s>", 3) != 0))
            abort();
        /* Message spans: in order, disjoint, inside the text, and each one
         * a piece of some message. */
        for (size_t i = 0; i < n_spans; i++) {
            if (spans[i].len == 0 || spans[i].start + spans[i].len > len ||
                (i > 0 && spans[i].start < spans[i - 1].start + spans[i - 1].len))
                abort();
            bool found = false;
            for (size_t k = 0; k < n && !found; k++)
                found = msgs[k].len && memmem(msgs[k].content, msgs[k].len, out + spans[i].start,
                                              spans[i].len) != NULL;
            if (!found)
                abort();
        }
        free(spans);
        enum chat_family f = chat_template_family(t);
        bool verbatim = f == CHAT_FAMILY_CHATML || f == CHAT_FAMILY_ZEPHYR ||
                        f == CHAT_FAMILY_PHI3 || f == CHAT_FAMILY_PLAIN ||
                        f == CHAT_FAMILY_MISTRAL;
        for (size_t i = 0; verbatim && i < n; i++)
            if (msgs[i].len && !memmem(out, len, msgs[i].content, msgs[i].len))
                abort();
        free(out);
    } else if (e.code != ERR_INVALID || strcmp(e.param, "messages") != 0) {
        abort();
    }
    chat_template_free(t);
    free(src);
    return 0;
}
