/* chat_template.c — see chat_template.h for the contract. */
#include "engine/chat_template.h"

#include <stdlib.h>
#include <string.h>

struct chat_template {
    enum chat_family family;
    bool leading_bos;     /* the template starts with {{ bos_token }} */
    char *bos, *eos;      /* NULL when the model has none */
    char *default_system; /* chatml: the template's own system prompt */
};

static const char *const family_names[] = {
    [CHAT_FAMILY_PLAIN] = "plain",     [CHAT_FAMILY_CHATML] = "chatml",
    [CHAT_FAMILY_LLAMA2] = "llama2",   [CHAT_FAMILY_LLAMA3] = "llama3",
    [CHAT_FAMILY_MISTRAL] = "mistral", [CHAT_FAMILY_ZEPHYR] = "zephyr",
    [CHAT_FAMILY_GEMMA] = "gemma",     [CHAT_FAMILY_PHI3] = "phi3",
};

const char *chat_family_name(enum chat_family f)
{
    if ((unsigned)f >= sizeof family_names / sizeof family_names[0])
        return "plain";
    return family_names[f];
}

enum chat_family chat_template_family(const struct chat_template *t)
{
    return t->family;
}

static bool has(const char *src, size_t len, const char *marker)
{
    return src && memmem(src, len, marker, strlen(marker)) != NULL;
}

static enum chat_family detect(const char *src, size_t len)
{
    if (has(src, len, "<|im_start|>"))
        return CHAT_FAMILY_CHATML;
    if (has(src, len, "<|start_header_id|>"))
        return CHAT_FAMILY_LLAMA3;
    if (has(src, len, "<start_of_turn>"))
        return CHAT_FAMILY_GEMMA;
    if (has(src, len, "<|user|>"))
        return has(src, len, "<|end|>") ? CHAT_FAMILY_PHI3 : CHAT_FAMILY_ZEPHYR;
    if (has(src, len, "[INST]"))
        return has(src, len, "<<SYS>>") ? CHAT_FAMILY_LLAMA2 : CHAT_FAMILY_MISTRAL;
    return CHAT_FAMILY_PLAIN;
}

static bool is_space(char c)
{
    /* Python's str.strip on ASCII: \t \n \v \f \r, space, and \x1c-\x1f */
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static size_t skip_space(const char *s, size_t i, size_t len)
{
    while (i < len && is_space(s[i]))
        i++;
    return i;
}

static bool match_at(const char *s, size_t len, size_t *i, const char *lit)
{
    size_t n = strlen(lit);
    if (len - *i < n || memcmp(s + *i, lit, n) != 0)
        return false;
    *i += n;
    return true;
}

/* Does the template begin with {{ bos_token }} (any -/space variant)? */
static bool starts_with_bos(const char *s, size_t len)
{
    size_t i = skip_space(s, 0, len);
    if (!match_at(s, len, &i, "{{"))
        return false;
    match_at(s, len, &i, "-");
    i = skip_space(s, i, len);
    if (!match_at(s, len, &i, "bos_token"))
        return false;
    i = skip_space(s, i, len);
    match_at(s, len, &i, "-");
    return match_at(s, len, &i, "}}");
}

/* A ChatML template's hard-coded system prompt: the first string literal
 * '<|im_start|>system\n...<|im_end|>' whose middle is plain text (no
 * quotes, no Jinja), with Jinja's \n \t \\ escapes undone. NULL if none;
 * *oom on allocation failure. */
static char *chatml_default_system(const char *src, size_t len, bool *oom)
{
    static const char open[] = "<|im_start|>system";
    static const char close[] = "<|im_end|>";
    const char *end = src + len, *p = src;
    while ((p = memmem(p, (size_t)(end - p), open, sizeof open - 1)) != NULL) {
        const char *q = p + sizeof open - 1;
        p = q;
        if (end - q >= 2 && q[0] == '\\' && q[1] == 'n')
            q += 2;
        else if (q < end && *q == '\n')
            q++;
        else
            continue;
        const char *stop = memmem(q, (size_t)(end - q), close, sizeof close - 1);
        if (!stop || stop == q || memchr(q, '\'', (size_t)(stop - q)) ||
            memchr(q, '"', (size_t)(stop - q)) || memchr(q, '{', (size_t)(stop - q)) ||
            memchr(q, '}', (size_t)(stop - q)))
            continue;
        char *text = malloc((size_t)(stop - q) + 1), *w = text;
        if (!text) {
            *oom = true;
            return NULL;
        }
        for (const char *c = q; c < stop; c++) {
            if (*c == '\\' && c + 1 < stop && strchr("nt\\", c[1])) {
                c++;
                *w++ = *c == 'n' ? '\n' : *c == 't' ? '\t' : '\\';
            } else {
                *w++ = *c;
            }
        }
        *w = 0;
        return text;
    }
    return NULL;
}

static char *dup_or_null(const char *s, bool *oom)
{
    if (!s || !*s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

void chat_template_free(struct chat_template *t)
{
    if (!t)
        return;
    free(t->bos);
    free(t->eos);
    free(t->default_system);
    free(t);
}

struct chat_template *chat_template_new(const char *source, size_t source_len, const char *bos,
                                        const char *eos, struct err *e)
{
    struct chat_template *t = calloc(1, sizeof *t);
    if (!t) {
        err_set(e, ERR_NOMEM, "chat template: out of memory");
        return NULL;
    }
    bool oom = false;
    if (!source)
        source_len = 0;
    t->family = detect(source, source_len);
    t->leading_bos = source && starts_with_bos(source, source_len);
    t->bos = dup_or_null(bos, &oom);
    t->eos = dup_or_null(eos, &oom);
    if (t->family == CHAT_FAMILY_CHATML)
        t->default_system = chatml_default_system(source, source_len, &oom);
    if (oom) {
        chat_template_free(t);
        err_set(e, ERR_NOMEM, "chat template: out of memory");
        return NULL;
    }
    return t;
}

/* ---- rendering ------------------------------------------------------------------ */

struct out {
    char *p;
    size_t len, cap;
    bool oom;
    struct chat_span *spans;      /* where message text went */
    size_t n_spans, cap_spans;
};

static void span_add(struct out *o, size_t start, size_t len)
{
    if (o->oom || len == 0)
        return;
    if (o->n_spans > 0 && o->spans[o->n_spans - 1].start + o->spans[o->n_spans - 1].len == start) {
        o->spans[o->n_spans - 1].len += len;
        return;
    }
    if (o->n_spans == o->cap_spans) {
        size_t cap = o->cap_spans ? o->cap_spans * 2 : 8;
        struct chat_span *p = realloc(o->spans, cap * sizeof *p);
        if (!p) {
            o->oom = true;
            return;
        }
        o->spans = p;
        o->cap_spans = cap;
    }
    o->spans[o->n_spans++] = (struct chat_span){start, len};
}

static void put(struct out *o, const char *s, size_t n)
{
    if (o->oom || n == 0)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = 0;
}

static void puts_(struct out *o, const char *s)
{
    if (s)
        put(o, s, strlen(s));
}

/* A message's text: put, and remembered as such. */
static void put_msg(struct out *o, const struct chat_message *m)
{
    span_add(o, o->len, m->len);
    put(o, m->content, m->len);
}

/* s[*a..*b) is s[0..n) without leading and trailing whitespace. */
static void strip_range(const char *s, size_t n, size_t *a, size_t *b)
{
    *a = skip_space(s, 0, n);
    *b = n;
    while (*b > *a && is_space(s[*b - 1]))
        (*b)--;
}

/* A message's text without leading and trailing whitespace. */
static void put_msg_stripped(struct out *o, const struct chat_message *m)
{
    size_t a, b;
    strip_range(m->content, m->len, &a, &b);
    span_add(o, o->len, b - a);
    put(o, m->content + a, b - a);
}

/* Append another out's text without leading and trailing whitespace, with
 * the message spans that survive. */
static void put_out_stripped(struct out *o, const struct out *in)
{
    size_t a, b, base = o->len;
    strip_range(in->p, in->len, &a, &b);
    for (size_t i = 0; i < in->n_spans; i++) {
        size_t s0 = in->spans[i].start, s1 = s0 + in->spans[i].len;
        s0 = s0 < a ? a : s0;
        s1 = s1 > b ? b : s1;
        if (s1 > s0)
            span_add(o, base + s0 - a, s1 - s0);
    }
    put(o, in->p + a, b - a);
}

static const char *role_name(enum chat_role r)
{
    return r == CHAT_ROLE_SYSTEM ? "system" : r == CHAT_ROLE_USER ? "user" : "assistant";
}

/* llama2, mistral, gemma: [system] user assistant user ... */
static bool check_alternation(const struct chat_template *t, const struct chat_message *m,
                              size_t n, struct err *e)
{
    size_t first = m[0].role == CHAT_ROLE_SYSTEM ? 1 : 0;
    for (size_t i = first; i < n; i++) {
        if (m[i].role == CHAT_ROLE_SYSTEM)
            return err_set_param(e, ERR_INVALID, "messages",
                                 "messages[%zu]: with this model's chat template (%s) a system "
                                 "message can only come first",
                                 i, chat_family_name(t->family));
        enum chat_role want = (i - first) % 2 == 0 ? CHAT_ROLE_USER : CHAT_ROLE_ASSISTANT;
        if (m[i].role != want)
            return err_set_param(e, ERR_INVALID, "messages",
                                 "messages[%zu]: this model's chat template (%s) needs user and "
                                 "assistant messages to alternate, starting with user",
                                 i, chat_family_name(t->family));
    }
    return true;
}

static void render_llama2(const struct chat_template *t, const struct chat_message *sys,
                          const struct chat_message *m, size_t n, struct out *o)
{
    for (size_t i = 0; i < n && !o->oom; i++) {
        if (m[i].role == CHAT_ROLE_ASSISTANT) {
            puts_(o, " ");
            put_msg_stripped(o, &m[i]);
            puts_(o, " ");
            puts_(o, t->eos);
            continue;
        }
        /* The template strips the whole turn, system block included. */
        struct out turn = {0};
        if (i == 0 && sys) {
            puts_(&turn, "<<SYS>>\n");
            put_msg(&turn, sys);
            puts_(&turn, "\n<</SYS>>\n\n");
        }
        put_msg(&turn, &m[i]);
        puts_(o, t->bos);
        puts_(o, "[INST] ");
        if (turn.p)
            put_out_stripped(o, &turn);
        puts_(o, " [/INST]");
        o->oom |= turn.oom;
        free(turn.p);
        free(turn.spans);
    }
}

static void render_mistral(const struct chat_template *t, const struct chat_message *sys,
                           const struct chat_message *m, size_t n, struct out *o)
{
    puts_(o, t->bos);
    for (size_t i = 0; i < n; i++) {
        if (m[i].role == CHAT_ROLE_ASSISTANT) {
            put_msg(o, &m[i]);
            puts_(o, t->eos);
            continue;
        }
        puts_(o, "[INST] ");
        if (i == 0 && sys) {
            put_msg(o, sys);
            puts_(o, "\n\n");
        }
        put_msg(o, &m[i]);
        puts_(o, " [/INST]");
    }
}

static void render_gemma(const struct chat_template *t, const struct chat_message *sys,
                         const struct chat_message *m, size_t n, struct out *o)
{
    puts_(o, t->bos);
    for (size_t i = 0; i < n; i++) {
        puts_(o, m[i].role == CHAT_ROLE_ASSISTANT ? "<start_of_turn>model\n"
                                                  : "<start_of_turn>user\n");
        if (i == 0 && sys) {
            put_msg(o, sys);
            puts_(o, "\n\n");
        }
        put_msg_stripped(o, &m[i]);
        puts_(o, "<end_of_turn>\n");
    }
    puts_(o, "<start_of_turn>model\n");
}

/* The families that need alternation and fold the system message. */
static bool render_alternating(const struct chat_template *t, const struct chat_message *m,
                               size_t n, struct out *o, struct err *e)
{
    if (!check_alternation(t, m, n, e))
        return false;
    const struct chat_message *sys = m[0].role == CHAT_ROLE_SYSTEM ? &m[0] : NULL;
    const struct chat_message empty_user = {.role = CHAT_ROLE_USER, .content = "", .len = 0};
    const struct chat_message *turns = sys ? m + 1 : m;
    size_t n_turns = sys ? n - 1 : n;
    if (n_turns == 0) { /* only a system message: an empty user turn carries it */
        turns = &empty_user;
        n_turns = 1;
    }
    if (t->family == CHAT_FAMILY_LLAMA2)
        render_llama2(t, sys, turns, n_turns, o);
    else if (t->family == CHAT_FAMILY_MISTRAL)
        render_mistral(t, sys, turns, n_turns, o);
    else
        render_gemma(t, sys, turns, n_turns, o);
    return true;
}

static void render_free_form(const struct chat_template *t, const struct chat_message *m,
                             size_t n, struct out *o)
{
    switch (t->family) {
    case CHAT_FAMILY_CHATML:
        if (t->default_system && m[0].role != CHAT_ROLE_SYSTEM) {
            puts_(o, "<|im_start|>system\n");
            puts_(o, t->default_system);
            puts_(o, "<|im_end|>\n");
        }
        for (size_t i = 0; i < n; i++) {
            puts_(o, "<|im_start|>");
            puts_(o, role_name(m[i].role));
            puts_(o, "\n");
            put_msg(o, &m[i]);
            puts_(o, "<|im_end|>\n");
        }
        puts_(o, "<|im_start|>assistant\n");
        break;
    case CHAT_FAMILY_LLAMA3:
        puts_(o, t->bos);
        for (size_t i = 0; i < n; i++) {
            puts_(o, "<|start_header_id|>");
            puts_(o, role_name(m[i].role));
            puts_(o, "<|end_header_id|>\n\n");
            put_msg_stripped(o, &m[i]);
            puts_(o, "<|eot_id|>");
        }
        puts_(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case CHAT_FAMILY_PHI3:
    case CHAT_FAMILY_ZEPHYR:
        for (size_t i = 0; i < n; i++) {
            puts_(o, "<|");
            puts_(o, role_name(m[i].role));
            puts_(o, "|>\n");
            put_msg(o, &m[i]);
            if (t->family == CHAT_FAMILY_PHI3) {
                puts_(o, "<|end|>\n");
            } else {
                puts_(o, t->eos);
                puts_(o, "\n");
            }
        }
        puts_(o, "<|assistant|>\n");
        break;
    default: /* plain */
        for (size_t i = 0; i < n; i++) {
            puts_(o, m[i].role == CHAT_ROLE_SYSTEM ? "System: "
                     : m[i].role == CHAT_ROLE_USER ? "User: "
                                                   : "Assistant: ");
            put_msg(o, &m[i]);
            puts_(o, "\n");
        }
        puts_(o, "Assistant:");
        break;
    }
}

char *chat_template_render(const struct chat_template *t, const struct chat_message *msgs,
                           size_t n_msgs, size_t *len, bool *has_bos, struct chat_span **spans,
                           size_t *n_spans, struct err *e)
{
    if (spans) {
        *spans = NULL;
        *n_spans = 0;
    }
    if (n_msgs == 0) {
        err_set_param(e, ERR_INVALID, "messages", "messages must contain at least one message");
        return NULL;
    }
    for (size_t i = 0; i < n_msgs; i++) {
        if ((unsigned)msgs[i].role > CHAT_ROLE_ASSISTANT) {
            err_set_param(e, ERR_INVALID, "messages", "messages[%zu]: unsupported role", i);
            return NULL;
        }
        if (!msgs[i].content && msgs[i].len > 0) {
            err_set(e, ERR_INTERNAL, "messages[%zu]: content missing", i);
            return NULL;
        }
    }
    bool alternating = t->family == CHAT_FAMILY_LLAMA2 || t->family == CHAT_FAMILY_MISTRAL ||
                       t->family == CHAT_FAMILY_GEMMA;
    /* These families write BOS themselves; chatml, phi3 and zephyr only when
     * their template starts with it; our plain format never does. */
    bool bos_builtin = alternating || t->family == CHAT_FAMILY_LLAMA3;
    bool bos_first = t->bos && (bos_builtin || (t->leading_bos && t->family != CHAT_FAMILY_PLAIN));
    struct out o = {0};
    if (bos_first && !bos_builtin)
        puts_(&o, t->bos);
    if (alternating) {
        if (!render_alternating(t, msgs, n_msgs, &o, e)) {
            free(o.p);
            free(o.spans);
            return NULL;
        }
    } else {
        render_free_form(t, msgs, n_msgs, &o);
    }
    if (o.oom) {
        free(o.p);
        free(o.spans);
        err_set(e, ERR_NOMEM, "chat template: out of memory");
        return NULL;
    }
    if (len)
        *len = o.len;
    if (has_bos)
        *has_bos = bos_first;
    if (spans) {
        *spans = o.spans;
        *n_spans = o.n_spans;
    } else {
        free(o.spans);
    }
    return o.p;
}
