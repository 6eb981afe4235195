/*
 * textbuf.h — a growing text buffer written with printf formats (CSV
 * documents, reports). Allocation failure aborts: these texts are small and
 * a half-written report is worse than a stop.
 *
 * Ownership: the buffer owns `p` (NUL-terminated once anything was
 * written); take it, or free it with textbuf_free().
 */
#ifndef MAASD_TEXTBUF_H
#define MAASD_TEXTBUF_H

#include <stddef.h>

struct textbuf {
    char *p;
    size_t len, cap;
};

void textbuf_printf(struct textbuf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void textbuf_free(struct textbuf *t);

#endif
