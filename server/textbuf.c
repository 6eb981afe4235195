/* textbuf.c — see textbuf.h. */
#include "server/textbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void textbuf_printf(struct textbuf *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 1024;
        while (cap <= t->len + (size_t)n)
            cap *= 2;
        char *np = realloc(t->p, cap);
        if (!np)
            abort();
        t->p = np;
        t->cap = cap;
    }
}

void textbuf_free(struct textbuf *t)
{
    free(t->p);
    t->p = NULL;
    t->len = t->cap = 0;
}
