/* json_guard.c — see json_guard.h for the contract. */
#include "engine/json_guard.h"

#include <string.h>

enum {
    S_START,       /* before the top-level '{' */
    S_OBJ_OPEN,    /* after '{': a key or '}' */
    S_OBJ_KEY,     /* after ',' in an object: a key */
    S_COLON,       /* after a key */
    S_VALUE,       /* after ':' or ',' in an array */
    S_ARR_OPEN,    /* after '[': a value or ']' */
    S_AFTER_VALUE, /* ',' or the closing bracket */
    S_DONE,        /* the document is complete */
    S_STRING,
    S_ESCAPE,      /* after '\' */
    S_HEX,         /* \u digits; count = digits left */
    S_LOW_SLASH,   /* after a high surrogate: '\' of the low one */
    S_LOW_U,       /* its 'u' */
    S_LOW_HEX,     /* its digits; count = digits left */
    S_UTF8,        /* inside a multi-byte character; count = bytes left */
    S_LITERAL,     /* true / false / null; count = next position */
    S_NUM_MINUS,   /* '-' */
    S_NUM_ZERO,    /* a leading 0 */
    S_NUM_INT,
    S_NUM_DOT,
    S_NUM_FRAC,
    S_NUM_E,
    S_NUM_E_SIGN,
    S_NUM_EXP,
};

enum { STRING_VALUE = 0, STRING_KEY = 1 };

static const char *const literals[] = {"true", "false", "null"};

void json_guard_init(struct json_guard *g)
{
    memset(g, 0, sizeof *g);
    g->state = S_START;
}

bool json_guard_complete(const struct json_guard *g)
{
    return g->state == S_DONE;
}

static bool top_is_object(const struct json_guard *g)
{
    return (g->objects >> (g->depth - 1)) & 1;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Whitespace between tokens, within the run limits. */
static bool take_space(struct json_guard *g, unsigned char c)
{
    if (c == '\n') {
        if (g->newlines >= JSON_GUARD_MAX_NEWLINES)
            return false;
        g->newlines++;
        g->indent = 0;
        return true;
    }
    if (g->indent >= 8 + 4 * g->depth)
        return false;
    g->indent++;
    return true;
}

static void value_done(struct json_guard *g)
{
    g->state = g->depth == 0 ? S_DONE : S_AFTER_VALUE;
}

static bool open_container(struct json_guard *g, bool object)
{
    if (g->depth >= JSON_GUARD_MAX_DEPTH)
        return false;
    if (object)
        g->objects |= (uint64_t)1 << g->depth;
    else
        g->objects &= ~((uint64_t)1 << g->depth);
    g->depth++;
    g->state = object ? S_OBJ_OPEN : S_ARR_OPEN;
    return true;
}

static void close_container(struct json_guard *g)
{
    g->depth--;
    value_done(g);
}

static void start_string(struct json_guard *g, int kind)
{
    g->state = S_STRING;
    g->literal = (uint8_t)kind;
}

/* Enter a number state if the number can still end within the length cap:
 * states that need another digit count it now, so no cap is a dead end. */
static bool number_to(struct json_guard *g, uint8_t state)
{
    bool needs_digit = state == S_NUM_MINUS || state == S_NUM_DOT || state == S_NUM_E ||
                       state == S_NUM_E_SIGN;
    if (g->num_len + 1 + needs_digit > JSON_GUARD_MAX_NUMBER)
        return false;
    g->num_len++;
    g->state = state;
    return true;
}

static bool start_value(struct json_guard *g, unsigned char c)
{
    switch (c) {
    case '{':
        return open_container(g, true);
    case '[':
        return open_container(g, false);
    case '"':
        start_string(g, STRING_VALUE);
        return true;
    case 't':
    case 'f':
    case 'n':
        g->state = S_LITERAL;
        g->literal = c == 't' ? 0 : c == 'f' ? 1 : 2;
        g->count = 1;
        return true;
    case '-':
        g->num_len = 0;
        return number_to(g, S_NUM_MINUS);
    default:
        if (!is_digit(c))
            return false;
        g->num_len = 0;
        return number_to(g, c == '0' ? S_NUM_ZERO : S_NUM_INT);
    }
}

/* A byte inside a string (not after a backslash). */
static bool string_byte(struct json_guard *g, unsigned char c)
{
    if (c == '"') {
        if (g->literal == STRING_KEY)
            g->state = S_COLON;
        else
            value_done(g);
        return true;
    }
    if (c == '\\') {
        g->state = S_ESCAPE;
        return true;
    }
    if (c < 0x20)
        return false;
    if (c < 0x80)
        return true;
    /* UTF-8 lead bytes, with the range of the first continuation byte that
     * rules out overlongs, surrogates and code points above U+10FFFF. */
    uint8_t need, lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0)
            lo = 0xa0;
        if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
    } else {
        return false;
    }
    g->state = S_UTF8;
    g->count = need;
    g->lo = lo;
    g->hi = hi;
    return true;
}

/* One hex digit of a \u escape. `low` says whether it belongs to the low
 * half of a surrogate pair. Surrogate mistakes are refused at the digit
 * that makes them certain, so no accepted prefix is a dead end. */
static bool hex_digit(struct json_guard *g, unsigned char c, bool low)
{
    int v = hex_value(c);
    if (v < 0)
        return false;
    int pos = 4 - g->count; /* 0 = most significant */
    if (low) {
        if ((pos == 0 && v != 0xd) || (pos == 1 && v < 0xc))
            return false;
    } else if (pos == 1 && (g->code & 0xf) == 0xd && v >= 0xc) {
        return false; /* \uDC00-\uDFFF: a low surrogate with no high one */
    }
    g->code = (uint16_t)(g->code << 4 | v);
    if (--g->count > 0)
        return true;
    if (!low && g->code >= 0xd800 && g->code <= 0xdbff)
        g->state = S_LOW_SLASH;
    else
        g->state = S_STRING;
    return true;
}

/* Where a value has just ended inside a container: ',' or a closer. */
static bool after_value(struct json_guard *g, unsigned char c)
{
    if (c == ',') {
        g->state = top_is_object(g) ? S_OBJ_KEY : S_VALUE;
        return true;
    }
    if ((c == '}' && top_is_object(g)) || (c == ']' && !top_is_object(g))) {
        close_container(g);
        return true;
    }
    return false;
}

/* A number has ended at byte c: c must fit what follows a value. */
static bool end_number(struct json_guard *g, unsigned char c)
{
    value_done(g); /* depth >= 1 here: the top level is an object */
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
        return take_space(g, c);
    g->newlines = 0;
    g->indent = 0;
    return after_value(g, c);
}

static bool step(struct json_guard *g, unsigned char c)
{
    switch (g->state) {
    case S_STRING:
        return string_byte(g, c);
    case S_UTF8:
        if (c < g->lo || c > g->hi)
            return false;
        g->lo = 0x80;
        g->hi = 0xbf;
        if (--g->count == 0)
            g->state = S_STRING;
        return true;
    case S_ESCAPE:
        if (c == 'u') {
            g->state = S_HEX;
            g->count = 4;
            g->code = 0;
            return true;
        }
        if (!strchr("\"\\/bfnrt", c) || c == 0)
            return false;
        g->state = S_STRING;
        return true;
    case S_HEX:
        return hex_digit(g, c, false);
    case S_LOW_SLASH:
        if (c != '\\')
            return false;
        g->state = S_LOW_U;
        return true;
    case S_LOW_U:
        if (c != 'u')
            return false;
        g->state = S_LOW_HEX;
        g->count = 4;
        g->code = 0;
        return true;
    case S_LOW_HEX:
        return hex_digit(g, c, true);
    case S_LITERAL: {
        const char *lit = literals[g->literal];
        if (c != (unsigned char)lit[g->count])
            return false;
        if (lit[++g->count] == 0)
            value_done(g);
        return true;
    }
    case S_NUM_MINUS:
        if (!is_digit(c))
            return false;
        return number_to(g, c == '0' ? S_NUM_ZERO : S_NUM_INT);
    case S_NUM_ZERO:
    case S_NUM_INT:
        if (is_digit(c) && g->state == S_NUM_INT)
            return number_to(g, S_NUM_INT);
        if (c == '.')
            return number_to(g, S_NUM_DOT);
        if (c == 'e' || c == 'E')
            return number_to(g, S_NUM_E);
        return end_number(g, c);
    case S_NUM_DOT:
        return is_digit(c) && number_to(g, S_NUM_FRAC);
    case S_NUM_FRAC:
        if (is_digit(c))
            return number_to(g, S_NUM_FRAC);
        if (c == 'e' || c == 'E')
            return number_to(g, S_NUM_E);
        return end_number(g, c);
    case S_NUM_E:
        if (c == '+' || c == '-')
            return number_to(g, S_NUM_E_SIGN);
        return is_digit(c) && number_to(g, S_NUM_EXP);
    case S_NUM_E_SIGN:
        return is_digit(c) && number_to(g, S_NUM_EXP);
    case S_NUM_EXP:
        if (is_digit(c))
            return number_to(g, S_NUM_EXP);
        return end_number(g, c);
    default:
        break;
    }

    /* Between tokens. */
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
        return take_space(g, c);
    g->newlines = 0;
    g->indent = 0;
    switch (g->state) {
    case S_START:
        return c == '{' && open_container(g, true);
    case S_OBJ_OPEN:
        if (c == '}') {
            close_container(g);
            return true;
        }
        /* fall through */
    case S_OBJ_KEY:
        if (c != '"')
            return false;
        start_string(g, STRING_KEY);
        return true;
    case S_COLON:
        if (c != ':')
            return false;
        g->state = S_VALUE;
        return true;
    case S_ARR_OPEN:
        if (c == ']') {
            close_container(g);
            return true;
        }
        /* fall through */
    case S_VALUE:
        return start_value(g, c);
    case S_AFTER_VALUE:
        return after_value(g, c);
    default: /* S_DONE: only whitespace */
        return false;
    }
}

bool json_guard_push(struct json_guard *g, const char *bytes, size_t len)
{
    struct json_guard t = *g;
    for (size_t i = 0; i < len; i++)
        if (!step(&t, (unsigned char)bytes[i]))
            return false;
    *g = t;
    return true;
}

bool json_guard_accepts(const struct json_guard *g, const char *bytes, size_t len)
{
    struct json_guard t = *g;
    return json_guard_push(&t, bytes, len);
}

bool json_guard_allowed(void *ctx, int32_t token)
{
    const struct json_guard_filter *f = ctx;
    size_t len = 0;
    const char *text = f->token_text(f->text_ctx, token, &len);
    if (!text || len == 0)
        return json_guard_complete(f->guard);
    return json_guard_accepts(f->guard, text, len);
}
