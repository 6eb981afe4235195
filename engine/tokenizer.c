/* tokenizer.c — see tokenizer.h.
 *
 * The algorithms are llama.cpp's (src/llama-vocab.cpp), re-expressed in C so
 * that ids match token for token:
 *   - special-token partition: for each special token, longest first, split
 *     every remaining text fragment at each occurrence;
 *   - SPM: symbols are UTF-8 characters of the escaped text; repeatedly merge
 *     the adjacent pair whose concatenation is the best-scoring token (ties:
 *     leftmost); leftovers fall back to byte tokens;
 *   - BPE: pre-tokenizer regexes applied one after another, each splitting
 *     the fragments the previous one produced (unmatched gaps stay as
 *     fragments); each fragment is byte-mapped and merged by lowest merge
 *     rank (ties: leftmost).
 * Where llama.cpp relies on std::regex or hand-written matchers, PCRE2 runs
 * the same patterns; `\s` is spelled out as Unicode's White_Space set because
 * that is what llama.cpp's tables use (PCRE2's \s would miss U+0085).
 */
#include "engine/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PRE_REGEX 6

/* ---- pre-tokenizers ---------------------------------------------------------- */

/* Unicode White_Space, as a character-class body. */
#define WS "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
#define S_ "[" WS "]"
#define NOT_S "[^" WS "]"

#define RE_GPT2 \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|" S_ "+(?!" NOT_S ")"
#define RE_LLAMA3_HEAD \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
#define RE_LLAMA3_TAIL \
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NOT_S ")|" S_ "+"
#define RE_CJK "[\\x{4e00}-\\x{9fa5}\\x{800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+"
#define RE_BLOOM " ?[^(" WS "|.,!?\\x{2026}\\x{3002}\\x{ff0c}\\x{3001}\\x{964}\\x{6d4}\\x{60c})]+"

static const char *const re_default[] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+",
                                         "[0-9][0-9][0-9]", NULL};
static const char *const re_gpt2[] = {RE_GPT2, NULL};
static const char *const re_llama3[] = {RE_LLAMA3_HEAD "\\p{N}{1,3}" RE_LLAMA3_TAIL, NULL};
static const char *const re_qwen2[] = {RE_LLAMA3_HEAD "\\p{N}" RE_LLAMA3_TAIL, NULL};
static const char *const re_deepseek_llm[] = {
    "[\\r\\n]",
    /* Cased letters (Lu, Ll, Lt) of the Unicode version DeepSeek used. */
    S_ "?["
    "\\x{41}-\\x{5a}\\x{61}-\\x{7a}\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-"
    "\\x{1ba}\\x{1bc}-\\x{1bf}\\x{1c4}-\\x{293}\\x{295}-\\x{2af}\\x{370}-\\x{373}"
    "\\x{376}\\x{377}\\x{37b}-\\x{37d}\\x{37f}\\x{386}\\x{388}-\\x{38a}\\x{38c}"
    "\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}\\x{3f7}-\\x{481}\\x{48a}-\\x{52f}\\x{531}-"
    "\\x{556}\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}\\x{13f8}-\\x{13fd}\\x{1c90}-"
    "\\x{1cba}\\x{1cbd}-\\x{1cbf}\\x{1d00}-\\x{1d2b}\\x{1d6b}-\\x{1d77}\\x{1d79}-"
    "\\x{1d9a}\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}\\x{1f20}-\\x{1f45}\\x{1f48}-"
    "\\x{1f4d}\\x{1f50}-\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}\\x{1f5f}-\\x{1f7d}"
    "\\x{1f80}-\\x{1fb4}\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}\\x{1fc6}-"
    "\\x{1fcc}\\x{1fd0}-\\x{1fd3}\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}\\x{1ff2}-"
    "\\x{1ff4}\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}\\x{210a}-\\x{2113}\\x{2115}"
    "\\x{2119}-\\x{211d}\\x{2124}\\x{2126}\\x{2128}\\x{212a}-\\x{212d}\\x{212f}-"
    "\\x{2134}\\x{2139}\\x{213c}-\\x{213f}\\x{2145}-\\x{2149}\\x{214e}\\x{2183}"
    "\\x{2184}\\x{2c00}-\\x{2c7b}\\x{2c7e}-\\x{2ce4}\\x{2ceb}-\\x{2cee}\\x{2cf2}"
    "\\x{2cf3}\\x{a640}-\\x{a66d}\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}\\x{a771}-"
    "\\x{a787}\\x{a78b}-\\x{a78e}\\x{ab70}-\\x{abbf}\\x{fb00}-\\x{fb06}\\x{fb13}-"
    "\\x{fb17}\\x{ff21}-\\x{ff3a}\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}"
    "\\x{104b0}-\\x{104d3}\\x{104d8}-\\x{104fb}\\x{10c80}-\\x{10cb2}\\x{10cc0}-"
    "\\x{10cf2}\\x{118a0}-\\x{118df}\\x{1e900}-\\x{1e943}"
    "]+",
    S_ "?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+",
    S_ "+$",
    RE_CJK,
    "\\p{N}+",
    NULL};
static const char *const re_deepseek_coder[] = {"[\\r\\n]", S_ "?\\p{L}+", S_ "?\\p{P}+", RE_CJK,
                                                "\\p{N}", NULL};
static const char *const re_falcon[] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]",
                                        NULL};
static const char *const re_starcoder[] = {"\\p{N}", RE_GPT2, NULL};
static const char *const re_bloom[] = {RE_BLOOM, NULL};
static const char *const re_viking[] = {RE_BLOOM, "\\p{N}", NULL};

struct pre_spec {
    const char *name;
    const char *const *regexes;
    bool ignore_merges; /* a word that is already a token skips merging */
    bool add_bos;       /* default for add_bos_token */
};

/* Names as llama.cpp accepts them for `tokenizer.ggml.pre`. */
static const struct pre_spec pre_specs[] = {
    {"default", re_default, false, false},
    {"gpt-2", re_gpt2, false, false},
    {"phi-2", re_gpt2, false, false},
    {"jina-es", re_gpt2, false, false},
    {"jina-de", re_gpt2, false, false},
    {"jina-v1-en", re_gpt2, false, false},
    {"jina-v2-es", re_gpt2, false, false},
    {"jina-v2-de", re_gpt2, false, false},
    {"jina-v2-code", re_gpt2, false, false},
    {"roberta-bpe", re_gpt2, false, false},
    {"gigachat", re_gpt2, false, false},
    {"mpt", re_gpt2, false, false},
    {"olmo", re_gpt2, false, false},
    {"jais", re_gpt2, false, false},
    {"exaone4", re_gpt2, false, false},
    {"llama3", re_llama3, true, true},
    {"llama-v3", re_llama3, true, true},
    {"llama-bpe", re_llama3, true, true},
    {"falcon3", re_llama3, true, true},
    {"dbrx", re_llama3, false, false},
    {"smaug-bpe", re_llama3, false, false},
    {"chatglm-bpe", re_llama3, false, false},
    {"glm4", re_llama3, false, false},
    {"qwen2", re_qwen2, false, false},
    {"deepseek-r1-qwen", re_qwen2, false, false},
    {"megrez", re_qwen2, false, false},
    {"stablelm2", re_qwen2, false, false},
    {"deepseek-llm", re_deepseek_llm, false, false},
    {"deepseek-coder", re_deepseek_coder, false, false},
    {"falcon", re_falcon, false, false},
    {"starcoder", re_starcoder, false, false},
    {"refact", re_starcoder, false, false},
    {"command-r", re_starcoder, false, false},
    {"smollm", re_starcoder, false, false},
    {"codeshell", re_starcoder, false, false},
    {"exaone", re_starcoder, false, false},
    {"minerva-7b", re_starcoder, false, false},
    {"bloom", re_bloom, false, false},
    {"poro-chat", re_bloom, false, false},
    {"gpt3-finnish", re_bloom, false, false},
    {"viking", re_viking, false, false},
};

/* ---- the tokenizer ---------------------------------------------------------- */

struct tok {
    uint32_t off, len;             /* vocabulary string in t->text */
    uint32_t piece_off, piece_len; /* decoded bytes in t->pieces (specials rendered) */
    float score;
    uint16_t attr;
    bool eog;
};

struct merge {
    uint32_t off; /* "first second" in t->merge_text */
    uint32_t first_len, second_len;
};

struct tokenizer {
    enum tokenizer_kind kind;
    char pre_name[64];
    uint32_t n_vocab;
    struct tok *toks;
    char *text;
    char *pieces;
    uint32_t max_piece;
    uint32_t *tok_slots; /* id + 1, 0 = empty */
    uint64_t tok_mask;
    struct merge *merges; /* rank = index */
    uint32_t n_merges;
    char *merge_text;
    uint32_t *merge_slots; /* rank + 1 */
    uint64_t merge_mask;
    int32_t *specials; /* partition candidates, longest text first */
    uint32_t n_specials;
    pcre2_code *re[MAX_PRE_REGEX];
    int n_re;
    int32_t bos, eos, eot, eom, unk, pad;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
    int32_t byte_tok[256]; /* SPM byte fallback */
};

/* ---- small helpers ------------------------------------------------------------ */

/* Word-at-a-time hash; quality only matters for probe lengths. */
static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdu;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (n)
        memcpy(&w, p, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(const char *a, size_t na, const char *b, size_t nb)
{
    return hash_bytes(a, na) * 0x9e3779b97f4a7c15u ^ hash_bytes(b, nb);
}

static uint64_t table_cap(uint64_t n)
{
    uint64_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    return cap;
}

/* Bytes of the UTF-8 sequence a lead byte announces, llama.cpp's way (a
 * stray continuation byte counts as one). */
static size_t utf8_lead_len(unsigned char c)
{
    static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lens[c >> 4];
}

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* What a lead byte announces under strict UTF-8 (no overlongs, surrogates
 * or values past U+10FFFF): the sequence length and the range allowed for
 * the second byte. False for bytes that cannot start a character. */
static bool utf8_lead(unsigned char c, size_t *need, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        *need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        *need = 3;
        *lo = c == 0xe0 ? 0xa0 : 0x80;
        *hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        *need = 4;
        *lo = c == 0xf0 ? 0x90 : 0x80;
        *hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return false;
    }
    return true;
}

/* Is byte d acceptable at position k (>= 1) of a sequence? */
static bool utf8_cont_ok(unsigned char d, size_t k, unsigned char lo, unsigned char hi)
{
    return k == 1 ? d >= lo && d <= hi : d >= 0x80 && d <= 0xbf;
}

/* Length of a valid UTF-8 sequence at p, or 0 when the bytes there are not
 * one. */
static size_t utf8_valid_len(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t need;
    unsigned char lo, hi;
    if (!utf8_lead(p[0], &need, &lo, &hi) || n < need)
        return 0;
    for (size_t k = 1; k < need; k++)
        if (!utf8_cont_ok(p[k], k, lo, hi))
            return 0;
    return need;
}

static uint32_t utf8_get(const unsigned char *p, size_t len)
{
    switch (len) {
    case 1: return p[0];
    case 2: return (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
    case 3: return (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
    default:
        return (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 |
               (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
    }
}

/* GPT-2's byte-to-unicode map: printable Latin-1 bytes stand for themselves,
 * the other 68 bytes map to U+0100.. in byte order. */
static uint32_t byte_to_cp(unsigned char b)
{
    if (b <= 0x20)
        return 0x100 + b;
    if (b >= 0x7f && b <= 0xa0)
        return 0x100 + 33 + (b - 0x7f);
    if (b == 0xad)
        return 0x100 + 67;
    return b;
}

/* The inverse; -1 for code points outside the map. */
static int cp_to_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7e) || (cp >= 0xa1 && cp <= 0xac) || (cp >= 0xae && cp <= 0xff))
        return (int)cp;
    if (cp >= 0x100 && cp <= 0x100 + 32)
        return (int)(cp - 0x100);
    if (cp >= 0x100 + 33 && cp <= 0x100 + 66)
        return (int)(cp - 0x100 - 33 + 0x7f);
    if (cp == 0x100 + 67)
        return 0xad;
    return -1;
}

/* Grow the array whose pointer is at ptr_to_ptr (*cap elements of elem
 * bytes) to hold at least need. The pointer is read and written with memcpy
 * so any element type can share this without aliasing games. */
static bool grow(void *ptr_to_ptr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *old;
    memcpy(&old, ptr_to_ptr, sizeof old);
    void *q = realloc(old, c * elem);
    if (!q)
        return false;
    memcpy(ptr_to_ptr, &q, sizeof q);
    *cap = c;
    return true;
}

struct ids {
    int32_t *v;
    size_t n, cap;
};

static bool ids_push(struct ids *a, int32_t id)
{
    if (!grow(&a->v, &a->cap, a->n + 1, sizeof *a->v))
        return false;
    a->v[a->n++] = id;
    return true;
}

/* ---- lookups ---------------------------------------------------------------------- */

static int32_t tok_find(const struct tokenizer *t, const char *p, size_t n)
{
    uint64_t i = hash_bytes(p, n) & t->tok_mask;
    for (;;) {
        uint32_t s = t->tok_slots[i];
        if (s == 0)
            return TOKENIZER_NONE;
        const struct tok *k = &t->toks[s - 1];
        if (k->len == n && memcmp(t->text + k->off, p, n) == 0)
            return (int32_t)(s - 1);
        i = (i + 1) & t->tok_mask;
    }
}

/* Merge rank of (left, right), -1 when they do not merge. */
static int32_t merge_rank(const struct tokenizer *t, const char *l, size_t nl, const char *r,
                          size_t nr)
{
    if (!t->merge_slots)
        return -1;
    uint64_t i = hash_pair(l, nl, r, nr) & t->merge_mask;
    for (;;) {
        uint32_t s = t->merge_slots[i];
        if (s == 0)
            return -1;
        const struct merge *m = &t->merges[s - 1];
        const char *mt = t->merge_text + m->off;
        if (m->first_len == nl && m->second_len == nr && memcmp(mt, l, nl) == 0 &&
            memcmp(mt + nl + 1, r, nr) == 0)
            return (int32_t)(s - 1);
        i = (i + 1) & t->merge_mask;
    }
}

/* ---- loading ------------------------------------------------------------------------ */

static bool nomem(struct err *e) { return err_set(e, ERR_NOMEM, "tokenizer: out of memory"); }

/* Copy the vocabulary strings into one arena and index them. Later
 * duplicates win the text -> id map, as in llama.cpp. */
static bool load_tokens(struct tokenizer *t, const struct gguf_kv *tokens, struct err *e)
{
    uint64_t n = tokens->arr_len;
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = gguf_kv_arr_str(tokens, i).len;
        total += len ? len : 32; /* "[EMPTY_<id>]" */
    }
    if (total >= UINT32_MAX)
        return err_set_param(e, ERR_UNSUPPORTED, "tokenizer.ggml.tokens",
                             "vocabulary strings total %llu bytes, more than supported",
                             (unsigned long long)total);
    t->n_vocab = (uint32_t)n;
    t->toks = calloc(n, sizeof *t->toks);
    t->text = malloc(total ? total : 1);
    uint64_t cap = table_cap(n);
    t->tok_slots = calloc(cap, sizeof *t->tok_slots);
    if (!t->toks || !t->text || !t->tok_slots)
        return nomem(e);
    t->tok_mask = cap - 1;
    uint32_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct gguf_str s = gguf_kv_arr_str(tokens, i);
        struct tok *k = &t->toks[i];
        k->off = off;
        if (s.len) {
            memcpy(t->text + off, s.ptr, s.len);
            k->len = (uint32_t)s.len;
        } else {
            k->len = (uint32_t)snprintf(t->text + off, 32, "[EMPTY_%u]", i);
        }
        off += k->len;
        k->attr = TOKENIZER_ATTR_NORMAL;
        uint64_t j = hash_bytes(t->text + k->off, k->len) & t->tok_mask;
        for (;;) {
            uint32_t sl = t->tok_slots[j];
            if (sl == 0 || (t->toks[sl - 1].len == k->len &&
                            memcmp(t->text + t->toks[sl - 1].off, t->text + k->off, k->len) == 0))
                break;
            j = (j + 1) & t->tok_mask;
        }
        t->tok_slots[j] = i + 1;
    }
    return true;
}

/* An optional array of exactly n_vocab elements of type `type`. */
static bool optional_vocab_array(const struct gguf_file *g, const char *key, enum gguf_type type,
                                 uint32_t n_vocab, const struct gguf_kv **out, struct err *e)
{
    *out = NULL;
    if (!gguf_kv_find(g, key))
        return true;
    if (!gguf_get_arr(g, key, type, out, e))
        return false;
    if ((*out)->arr_len != n_vocab)
        return err_set_param(e, ERR_CORRUPT, key, "%s has %llu entries for %u tokens", key,
                             (unsigned long long)(*out)->arr_len, n_vocab);
    return true;
}

static bool load_scores_and_types(struct tokenizer *t, const struct gguf_file *g, struct err *e)
{
    const struct gguf_kv *scores, *types;
    if (!optional_vocab_array(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, t->n_vocab, &scores,
                              e) ||
        !optional_vocab_array(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, t->n_vocab, &types,
                              e))
        return false;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        if (scores)
            t->toks[i].score = gguf_kv_arr_f32(scores, i);
        if (!types)
            continue;
        switch (gguf_kv_arr_i32(types, i)) {
        case 1: t->toks[i].attr = TOKENIZER_ATTR_NORMAL; break;
        case 2: t->toks[i].attr = TOKENIZER_ATTR_UNKNOWN; break;
        case 3: t->toks[i].attr = TOKENIZER_ATTR_CONTROL; break;
        case 4: t->toks[i].attr = TOKENIZER_ATTR_USER_DEFINED; break;
        case 5: t->toks[i].attr = TOKENIZER_ATTR_UNUSED; break;
        case 6: t->toks[i].attr = TOKENIZER_ATTR_BYTE; break;
        default: t->toks[i].attr = 0; break;
        }
    }
    return true;
}

/* Merges "first second" (split at the first space after position 0); the
 * first occurrence of a pair keeps its rank. No merges key means no merges
 * (llama.cpp refuses such a file; a tiny byte-only vocabulary, like the
 * built-in demo model's, is still useful). */
static bool load_merges(struct tokenizer *t, const struct gguf_file *g, struct err *e)
{
    const struct gguf_kv *kv;
    if (!gguf_kv_find(g, "tokenizer.ggml.merges"))
        return true;
    if (!gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &kv, e))
        return err_wrap(e, "BPE tokenizer");
    uint64_t total = 0;
    for (uint64_t i = 0; i < kv->arr_len; i++)
        total += gguf_kv_arr_str(kv, i).len;
    if (total >= UINT32_MAX || kv->arr_len >= INT32_MAX)
        return err_set_param(e, ERR_UNSUPPORTED, "tokenizer.ggml.merges", "too many merges");
    t->merges = calloc(kv->arr_len ? kv->arr_len : 1, sizeof *t->merges);
    t->merge_text = malloc(total ? total : 1);
    uint64_t cap = table_cap(kv->arr_len);
    t->merge_slots = calloc(cap, sizeof *t->merge_slots);
    if (!t->merges || !t->merge_text || !t->merge_slots)
        return nomem(e);
    t->merge_mask = cap - 1;
    uint32_t off = 0;
    for (uint64_t i = 0; i < kv->arr_len; i++) {
        struct gguf_str s = gguf_kv_arr_str(kv, i);
        struct merge *m = &t->merges[t->n_merges];
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp)
            continue; /* llama.cpp files it under ("", ""), which never matches */
        memcpy(t->merge_text + off, s.ptr, s.len);
        m->off = off;
        m->first_len = (uint32_t)(sp - s.ptr);
        m->second_len = (uint32_t)(s.len - m->first_len - 1);
        off += (uint32_t)s.len;
        const char *mt = t->merge_text + m->off;
        uint64_t j = hash_pair(mt, m->first_len, mt + m->first_len + 1, m->second_len) &
                     t->merge_mask;
        bool dup = false;
        for (;;) {
            uint32_t sl = t->merge_slots[j];
            if (sl == 0)
                break;
            const struct merge *o = &t->merges[sl - 1];
            if (o->first_len == m->first_len && o->second_len == m->second_len &&
                memcmp(t->merge_text + o->off, mt, s.len) == 0) {
                dup = true;
                break;
            }
            j = (j + 1) & t->merge_mask;
        }
        if (dup)
            continue;
        /* Skipped lines shift later ranks down, which keeps their order:
         * only the order of ranks matters. */
        t->merge_slots[j] = t->n_merges + 1;
        t->n_merges++;
    }
    return true;
}

/* An id-valued key: absent, negative or out of range keeps the default, as
 * llama.cpp does (files write 0xffffffff for "none"). */
static int32_t key_id(const struct gguf_file *g, const char *key, int32_t dflt, uint32_t n)
{
    uint64_t v;
    struct err ignored;
    if (gguf_kv_find(g, key) && gguf_get_u64(g, key, &v, &ignored) && v < n)
        return (int32_t)v;
    return dflt >= 0 && (uint32_t)dflt < n ? dflt : TOKENIZER_NONE;
}

static bool key_bool(const struct gguf_file *g, const char *key, bool *v, struct err *e)
{
    if (!gguf_kv_find(g, key))
        return true;
    return gguf_get_bool(g, key, v, e);
}

static int32_t find_cstr(const struct tokenizer *t, const char *s)
{
    return tok_find(t, s, strlen(s));
}

/* The first listed text present in the vocabulary, marked control (these
 * texts are never meant to be typed); TOKENIZER_NONE when none is. */
static int32_t detect_control(struct tokenizer *t, const char *const *texts)
{
    for (size_t i = 0; texts[i]; i++) {
        int32_t id = find_cstr(t, texts[i]);
        if (id != TOKENIZER_NONE) {
            if (!(t->toks[id].attr & TOKENIZER_ATTR_CONTROL))
                t->toks[id].attr = TOKENIZER_ATTR_CONTROL;
            return id;
        }
    }
    return TOKENIZER_NONE;
}

/* llama.cpp finds end-of-turn and fill-in-the-middle tokens by their text
 * when the keys do not name them, and treats them as control tokens; the
 * end-of-generation set follows the same lists. */
static void detect_specials(struct tokenizer *t, const struct gguf_file *g)
{
    static const char *const eot[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
        "<|end_of_text|>", "<EOT>", "_<EOT>", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
        "<end_of_utterance>", NULL};
    static const char *const eom[] = {"<|eom_id|>", NULL};
    static const char *const fim_pre[] = {
        "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
        "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", NULL};
    static const char *const fim_suf[] = {
        "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>",
        "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", NULL};
    static const char *const fim_mid[] = {
        "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
        "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", NULL};
    static const char *const fim_pad[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", NULL};
    static const char *const fim_rep[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                          "<reponame>", NULL};
    static const char *const fim_sep[] = {"<|file_sep|>", NULL};
    static const char *const eog[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>",
        "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>",
        "<end_of_utterance>", NULL};
    uint32_t n = t->n_vocab;

    if (t->eot == TOKENIZER_NONE)
        t->eot = detect_control(t, eot);
    if (t->eom == TOKENIZER_NONE)
        t->eom = detect_control(t, eom);
    struct {
        const char *key, *old_key;
        const char *const *texts;
        bool eog;
    } fim[] = {
        {"tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id", fim_pre, false},
        {"tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id", fim_suf, false},
        {"tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id", fim_mid, false},
        {"tokenizer.ggml.fim_pad_token_id", NULL, fim_pad, true},
        {"tokenizer.ggml.fim_rep_token_id", NULL, fim_rep, true},
        {"tokenizer.ggml.fim_sep_token_id", NULL, fim_sep, true},
    };
    for (size_t i = 0; i < sizeof fim / sizeof fim[0]; i++) {
        int32_t id = key_id(g, fim[i].key, TOKENIZER_NONE, n);
        if (id == TOKENIZER_NONE && fim[i].old_key)
            id = key_id(g, fim[i].old_key, TOKENIZER_NONE, n);
        if (id == TOKENIZER_NONE)
            id = detect_control(t, fim[i].texts);
        if (id != TOKENIZER_NONE && fim[i].eog)
            t->toks[id].eog = true;
    }
    for (size_t i = 0; eog[i]; i++) {
        int32_t id = find_cstr(t, eog[i]);
        if (id == TOKENIZER_NONE)
            continue;
        t->toks[id].eog = true;
        if (!(t->toks[id].attr & TOKENIZER_ATTR_CONTROL))
            t->toks[id].attr = TOKENIZER_ATTR_CONTROL;
    }
    int32_t ends[] = {t->eos, t->eot, t->eom};
    for (size_t i = 0; i < 3; i++)
        if (ends[i] != TOKENIZER_NONE)
            t->toks[ends[i]].eog = true;
}

static int special_cmp(const void *a, const void *b, void *ctx)
{
    const struct tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = t->toks[x].len, ly = t->toks[y].len;
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Tokens matched in the input before tokenizing, longest first. */
static bool build_specials(struct tokenizer *t, const struct gguf_file *g, struct err *e)
{
    const unsigned kinds =
        TOKENIZER_ATTR_CONTROL | TOKENIZER_ATTR_USER_DEFINED | TOKENIZER_ATTR_UNKNOWN;
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++)
        n += (t->toks[i].attr & kinds) != 0;
    t->specials = malloc((n ? n : 1) * sizeof *t->specials);
    if (!t->specials)
        return nomem(e);
    for (uint32_t i = 0; i < t->n_vocab; i++)
        if (t->toks[i].attr & kinds)
            t->specials[t->n_specials++] = (int32_t)i;
    qsort_r(t->specials, t->n_specials, sizeof *t->specials, special_cmp, t);

    /* llama.cpp's per-model attributes: Phi-3's special tokens swallow the
     * whitespace after them (its tokenizer.json says rstrip). */
    struct gguf_str name;
    struct err ignored;
    if (gguf_kv_find(g, "general.name") && gguf_get_str(g, "general.name", &name, &ignored)) {
        char lower[128];
        size_t ln = name.len < sizeof lower - 1 ? (size_t)name.len : sizeof lower - 1;
        for (size_t i = 0; i < ln; i++)
            lower[i] = (char)tolower((unsigned char)name.ptr[i]);
        lower[ln] = '\0';
        if (strstr(lower, "phi-3") || strstr(lower, "phi3")) {
            for (uint32_t i = 0; i < t->n_specials; i++)
                t->toks[t->specials[i]].attr |= TOKENIZER_ATTR_RSTRIP;
            int32_t id = find_cstr(t, "</s>");
            if (id != TOKENIZER_NONE)
                t->toks[id].attr |= TOKENIZER_ATTR_RSTRIP;
            static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
            for (size_t i = 0; i < 3; i++)
                if ((id = find_cstr(t, keep[i])) != TOKENIZER_NONE)
                    t->toks[id].attr &= (uint16_t)~TOKENIZER_ATTR_RSTRIP;
        }
    }
    return true;
}

/* The bytes each token decodes to, with special tokens rendered; decoding
 * then only chooses whether to show control tokens. */
static bool build_pieces(struct tokenizer *t, struct err *e)
{
    /* A BPE piece is never longer than its text; an SPM one neither (U+2581
     * is 3 bytes for 1 space). */
    uint64_t total = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++)
        total += t->toks[i].len;
    t->pieces = malloc(total ? total : 1);
    if (!t->pieces)
        return nomem(e);
    uint32_t off = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        struct tok *k = &t->toks[i];
        const unsigned char *s = (const unsigned char *)t->text + k->off;
        char *out = t->pieces + off;
        uint32_t n = 0;
        if (k->attr & (TOKENIZER_ATTR_UNKNOWN | TOKENIZER_ATTR_CONTROL |
                       TOKENIZER_ATTR_USER_DEFINED)) {
            memcpy(out, s, k->len);
            n = k->len;
        } else if (k->attr & TOKENIZER_ATTR_NORMAL) {
            for (uint32_t j = 0; j < k->len;) {
                size_t cl = utf8_valid_len(s + j, k->len - j);
                if (cl == 0) {
                    out[n++] = (char)s[j++]; /* not UTF-8: pass the byte through */
                    continue;
                }
                uint32_t cp = utf8_get(s + j, cl);
                if (t->kind == TOKENIZER_SPM && cp == 0x2581) {
                    out[n++] = ' ';
                } else if (t->kind == TOKENIZER_BPE && cp_to_byte(cp) >= 0) {
                    out[n++] = (char)cp_to_byte(cp);
                } else {
                    memcpy(out + n, s + j, cl);
                    n += (uint32_t)cl;
                }
                j += (uint32_t)cl;
            }
        } else if ((k->attr & TOKENIZER_ATTR_BYTE) && t->kind == TOKENIZER_SPM && k->len == 6 &&
                   memcmp(s, "<0x", 3) == 0 && s[5] == '>' && isxdigit(s[3]) && isxdigit(s[4])) {
            char hex[3] = {(char)s[3], (char)s[4], 0};
            out[n++] = (char)strtol(hex, NULL, 16);
        }
        k->piece_off = off;
        k->piece_len = n;
        off += n;
        if (n > t->max_piece)
            t->max_piece = n;
    }
    return true;
}

static void build_byte_tokens(struct tokenizer *t)
{
    for (int b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        int32_t id = find_cstr(t, hex);
        if (id == TOKENIZER_NONE) {
            char raw = (char)b;
            id = tok_find(t, &raw, 1);
        }
        t->byte_tok[b] = id;
    }
}

static bool compile_regexes(struct tokenizer *t, const struct pre_spec *spec, struct err *e)
{
    for (int i = 0; spec->regexes[i]; i++) {
        int code;
        PCRE2_SIZE at;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)spec->regexes[i], PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &code, &at, NULL);
        if (!re) {
            char msg[160];
            pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof msg);
            return err_set(e, ERR_INTERNAL, "pre-tokenizer '%s' regex %d: %s at %zu", spec->name,
                           i, msg, (size_t)at);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
        t->re[t->n_re++] = re;
    }
    return true;
}

static bool load_kind(struct tokenizer *t, const struct gguf_file *g,
                      const struct pre_spec **spec, struct err *e)
{
    struct gguf_str model;
    if (!gguf_get_str(g, "tokenizer.ggml.model", &model, e)) {
        if (e && e->code == ERR_NOT_FOUND)
            return err_set_param(e, ERR_UNSUPPORTED, "tokenizer.ggml.model",
                                 "the model has no tokenizer (tokenizer.ggml.model is missing)");
        return false;
    }
    *spec = NULL;
    if (gguf_str_eq(model, "llama")) {
        t->kind = TOKENIZER_SPM;
        return true;
    }
    if (!gguf_str_eq(model, "gpt2"))
        return err_set_param(e, ERR_UNSUPPORTED, "tokenizer.ggml.model",
                             "tokenizer model '%.*s' is not supported (llama and gpt2 are)",
                             (int)(model.len > 40 ? 40 : model.len), model.ptr);
    t->kind = TOKENIZER_BPE;
    struct gguf_str pre = {"default", 7};
    if (gguf_kv_find(g, "tokenizer.ggml.pre") && !gguf_get_str(g, "tokenizer.ggml.pre", &pre, e))
        return false;
    for (size_t i = 0; i < sizeof pre_specs / sizeof pre_specs[0]; i++)
        if (gguf_str_eq(pre, pre_specs[i].name))
            *spec = &pre_specs[i];
    if (!*spec)
        return err_set_param(e, ERR_UNSUPPORTED, "tokenizer.ggml.pre",
                             "BPE pre-tokenizer '%.*s' is not supported",
                             (int)(pre.len > 40 ? 40 : pre.len), pre.ptr);
    snprintf(t->pre_name, sizeof t->pre_name, "%s", (*spec)->name);
    t->ignore_merges = (*spec)->ignore_merges;
    return true;
}

static bool load_all(struct tokenizer *t, const struct gguf_file *g, struct err *e)
{
    const struct pre_spec *spec = NULL;
    if (!load_kind(t, g, &spec, e))
        return false;
    const struct gguf_kv *tokens;
    if (!gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, e)) {
        if (e && e->code == ERR_NOT_FOUND)
            e->code = ERR_CORRUPT; /* a tokenizer model without its vocabulary */
        return false;
    }
    if (tokens->arr_len == 0 || tokens->arr_len >= INT32_MAX)
        return err_set_param(e, ERR_CORRUPT, "tokenizer.ggml.tokens",
                             "vocabulary of %llu tokens", (unsigned long long)tokens->arr_len);
    if (!load_tokens(t, tokens, e) || !load_scores_and_types(t, g, e))
        return false;
    if (t->kind == TOKENIZER_BPE && !load_merges(t, g, e))
        return false;

    uint32_t n = t->n_vocab;
    bool spm = t->kind == TOKENIZER_SPM;
    t->bos = key_id(g, "tokenizer.ggml.bos_token_id", spm ? 1 : TOKENIZER_NONE, n);
    t->eos = key_id(g, "tokenizer.ggml.eos_token_id", spm ? 2 : TOKENIZER_NONE, n);
    t->unk = key_id(g, "tokenizer.ggml.unknown_token_id", spm ? 0 : TOKENIZER_NONE, n);
    t->eot = key_id(g, "tokenizer.ggml.eot_token_id", TOKENIZER_NONE, n);
    t->eom = key_id(g, "tokenizer.ggml.eom_token_id", TOKENIZER_NONE, n);
    t->pad = key_id(g, "tokenizer.ggml.padding_token_id", TOKENIZER_NONE, n);
    t->add_bos = spm || (spec && spec->add_bos);
    t->add_eos = false;
    t->add_space_prefix = spm;
    if (!key_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos, e) ||
        !key_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos, e) ||
        !key_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, e))
        return false;
    if (t->add_bos && t->bos == TOKENIZER_NONE)
        return err_set_param(e, ERR_CORRUPT, "tokenizer.ggml.add_bos_token",
                             "add_bos_token is set but the model has no BOS token");
    if (t->add_eos && t->eos == TOKENIZER_NONE)
        return err_set_param(e, ERR_CORRUPT, "tokenizer.ggml.add_eos_token",
                             "add_eos_token is set but the model has no EOS token");

    detect_specials(t, g);
    if (!build_specials(t, g, e) || !build_pieces(t, e))
        return false;
    if (spm)
        build_byte_tokens(t);
    return !spec || compile_regexes(t, spec, e);
}

bool tokenizer_load(const struct gguf_file *g, struct tokenizer **out, struct err *e)
{
    *out = NULL;
    struct tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return nomem(e);
    if (!load_all(t, g, e)) {
        tokenizer_free(t);
        return false;
    }
    *out = t;
    return true;
}

void tokenizer_free(struct tokenizer *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n_re; i++)
        pcre2_code_free(t->re[i]);
    free(t->toks);
    free(t->text);
    free(t->pieces);
    free(t->tok_slots);
    free(t->merges);
    free(t->merge_text);
    free(t->merge_slots);
    free(t->specials);
    free(t);
}

/* ---- accessors ---------------------------------------------------------------------- */

enum tokenizer_kind tokenizer_kind(const struct tokenizer *t) { return t->kind; }
const char *tokenizer_pre_name(const struct tokenizer *t) { return t->pre_name; }
uint32_t tokenizer_n_vocab(const struct tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_bos(const struct tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const struct tokenizer *t) { return t->eos; }
int32_t tokenizer_eot(const struct tokenizer *t) { return t->eot; }
int32_t tokenizer_pad(const struct tokenizer *t) { return t->pad; }
int32_t tokenizer_unk(const struct tokenizer *t) { return t->unk; }
bool tokenizer_adds_bos(const struct tokenizer *t) { return t->add_bos; }
bool tokenizer_adds_eos(const struct tokenizer *t) { return t->add_eos; }

static bool id_ok(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && (uint32_t)id < t->n_vocab;
}

bool tokenizer_is_eog(const struct tokenizer *t, int32_t id)
{
    return id_ok(t, id) && t->toks[id].eog;
}

unsigned tokenizer_token_attr(const struct tokenizer *t, int32_t id)
{
    return id_ok(t, id) ? t->toks[id].attr : 0;
}

struct gguf_str tokenizer_token_text(const struct tokenizer *t, int32_t id)
{
    if (!id_ok(t, id))
        return (struct gguf_str){"", 0};
    return (struct gguf_str){t->text + t->toks[id].off, t->toks[id].len};
}

struct gguf_str tokenizer_token_piece(const struct tokenizer *t, int32_t id, unsigned flags)
{
    if (!id_ok(t, id))
        return (struct gguf_str){"", 0};
    const struct tok *k = &t->toks[id];
    if (!(flags & TOKENIZER_RENDER_SPECIAL) &&
        (k->attr & (TOKENIZER_ATTR_CONTROL | TOKENIZER_ATTR_UNKNOWN)))
        return (struct gguf_str){"", 0};
    return (struct gguf_str){t->pieces + k->piece_off, k->piece_len};
}

int32_t tokenizer_token_find(const struct tokenizer *t, const char *text, size_t len)
{
    return tok_find(t, text, len);
}

/* ---- special-token partition --------------------------------------------------------- */

/* A run of input text (id < 0) or a special token matched in it. */
struct frag {
    size_t start, len;
    int32_t id;
};

struct frags {
    struct frag *v;
    size_t n, cap;
};

static bool frags_push(struct frags *f, size_t start, size_t len, int32_t id)
{
    if (!grow(&f->v, &f->cap, f->n + 1, sizeof *f->v))
        return false;
    f->v[f->n++] = (struct frag){start, len, id};
    return true;
}

/* Split text fragments at every occurrence of one special token. */
static bool partition_one(const struct tokenizer *t, const char *text, int32_t id,
                          const struct frags *in, struct frags *out)
{
    const struct tok *k = &t->toks[id];
    const char *s = t->text + k->off;
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        struct frag f = in->v[i];
        if (f.id >= 0) {
            if (!frags_push(out, f.start, f.len, f.id))
                return false;
            continue;
        }
        size_t base = f.start, end = f.start + f.len;
        while (base < end) {
            const char *m = memmem(text + base, end - base, s, k->len);
            if (!m)
                break;
            size_t at = (size_t)(m - text);
            size_t left = at - base;
            if (k->attr & TOKENIZER_ATTR_LSTRIP)
                while (left > 0 && isspace((unsigned char)text[base + left - 1]))
                    left--;
            if ((left > 0 && !frags_push(out, base, left, -1)) || !frags_push(out, at, k->len, id))
                return false;
            base = at + k->len;
            if (k->attr & TOKENIZER_ATTR_RSTRIP)
                while (base < end && isspace((unsigned char)text[base]))
                    base++;
        }
        if (base < end && !frags_push(out, base, end - base, -1))
            return false;
    }
    return true;
}

static bool partition(const struct tokenizer *t, const char *text, size_t len, bool parse_special,
                      struct frags *f)
{
    /* Which byte pairs occur in the text: a special token whose first two
     * bytes never do cannot match, and most vocabularies' thousands of
     * specials are skipped without a scan. */
    uint64_t *pairs = calloc(65536 / 64, sizeof *pairs);
    if (!pairs)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned pair = (unsigned char)text[i] << 8 | (i + 1 < len ? (unsigned char)text[i + 1] : 0);
        pairs[pair / 64] |= 1ull << (pair % 64);
    }
    struct frags other = {0};
    bool ok = frags_push(f, 0, len, -1);
    for (uint32_t i = 0; ok && i < t->n_specials; i++) {
        int32_t id = t->specials[i];
        if (!parse_special &&
            (t->toks[id].attr & (TOKENIZER_ATTR_CONTROL | TOKENIZER_ATTR_UNKNOWN)))
            continue;
        const unsigned char *st = (const unsigned char *)t->text + t->toks[id].off;
        if (t->toks[id].len >= 2) {
            unsigned pair = st[0] << 8 | st[1];
            if (!(pairs[pair / 64] & 1ull << (pair % 64)))
                continue;
        }
        ok = partition_one(t, text, id, f, &other);
        struct frags tmp = *f;
        *f = other;
        other = tmp;
    }
    free(other.v);
    free(pairs);
    return ok;
}

/* Append a fragment of a later segment: text joins text it touches (it is
 * one run for the merges); the whitespace a special token strips (LSTRIP:
 * before it, RSTRIP: after it) is stripped across the segment boundary too. */
static bool frags_append(const struct tokenizer *t, const char *text, struct frags *f,
                         struct frag x, bool first_of_segment)
{
    if (first_of_segment && f->n > 0) {
        struct frag *last = &f->v[f->n - 1];
        if (x.id >= 0 && last->id < 0 && (t->toks[x.id].attr & TOKENIZER_ATTR_LSTRIP)) {
            while (last->len > 0 && isspace((unsigned char)text[last->start + last->len - 1]))
                last->len--;
            if (last->len == 0)
                f->n--;
        } else if (x.id < 0 && last->id >= 0 && (t->toks[last->id].attr & TOKENIZER_ATTR_RSTRIP)) {
            while (x.len > 0 && isspace((unsigned char)text[x.start])) {
                x.start++;
                x.len--;
            }
            if (x.len == 0)
                return true;
        }
    }
    if (f->n > 0) {
        struct frag *last = &f->v[f->n - 1];
        if (x.id < 0 && last->id < 0 && last->start + last->len == x.start) {
            last->len += x.len;
            return true;
        }
    }
    return frags_push(f, x.start, x.len, x.id);
}

/* partition() segment by segment: the literal ranges without parse_special. */
static bool partition_literal(const struct tokenizer *t, const char *text, size_t len,
                              bool parse_special, const struct tokenizer_span *lit, size_t n_lit,
                              struct frags *f)
{
    size_t at = 0, k = 0;
    struct frags seg = {0};
    bool ok = true;
    while (ok && at < len) {
        while (k < n_lit && lit[k].start + lit[k].len <= at)
            k++; /* behind us, or empty */
        bool literal = k < n_lit && lit[k].start <= at;
        size_t end = literal ? lit[k].start + lit[k].len : k < n_lit ? lit[k].start : len;
        if (end > len)
            end = len;
        seg.n = 0;
        if (!(ok = partition(t, text + at, end - at, parse_special && !literal, &seg)))
            break;
        for (size_t i = 0; ok && i < seg.n; i++) {
            struct frag x = seg.v[i];
            x.start += at;
            ok = frags_append(t, text, f, x, i == 0);
        }
        at = end;
    }
    free(seg.v);
    return ok;
}

/* ---- merging (shared by SPM and BPE) ---------------------------------------------------- */

struct sym {
    int32_t prev, next;
    uint32_t start, n; /* bytes of the working text */
};

struct bigram {
    int32_t left, right;
    uint32_t left_n, right_n; /* sizes when queued: stale if they changed */
    float score;              /* SPM: higher first */
    int32_t rank;             /* BPE: lower first */
};

struct session {
    const struct tokenizer *t;
    const char *text; /* the working text the symbols index */
    struct sym *syms;
    size_t n_syms, cap_syms;
    struct bigram *heap;
    size_t n_heap, cap_heap;
};

static bool bigram_before(const struct tokenizer *t, const struct bigram *a,
                          const struct bigram *b)
{
    if (t->kind == TOKENIZER_SPM) {
        if (a->score != b->score)
            return a->score > b->score;
    } else if (a->rank != b->rank) {
        return a->rank < b->rank;
    }
    return a->left < b->left;
}

static bool heap_push(struct session *s, struct bigram b)
{
    if (!grow(&s->heap, &s->cap_heap, s->n_heap + 1, sizeof *s->heap))
        return false;
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(s->t, &b, &s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = b;
    return true;
}

static struct bigram heap_pop(struct session *s)
{
    struct bigram top = s->heap[0];
    struct bigram last = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n_heap)
            break;
        if (c + 1 < s->n_heap && bigram_before(s->t, &s->heap[c + 1], &s->heap[c]))
            c++;
        if (!bigram_before(s->t, &s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n_heap)
        s->heap[i] = last;
    return top;
}

/* Queue the pair (l, r) if it can merge: SPM when the concatenation is a
 * token (by its score), BPE when the merge list has it (by rank). */
static bool try_bigram(struct session *s, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return true;
    const struct sym *a = &s->syms[l], *b = &s->syms[r];
    struct bigram bg = {l, r, a->n, b->n, 0, 0};
    if (s->t->kind == TOKENIZER_SPM) {
        int32_t id = tok_find(s->t, s->text + a->start, a->n + b->n);
        if (id == TOKENIZER_NONE)
            return true;
        bg.score = s->t->toks[id].score;
    } else {
        bg.rank = merge_rank(s->t, s->text + a->start, a->n, s->text + b->start, b->n);
        if (bg.rank < 0)
            return true;
    }
    return heap_push(s, bg);
}

/* Split text[0, n) into characters and merge; leaves the symbol chain in
 * s->syms starting at 0. */
static bool merge_all(struct session *s, const char *text, size_t n)
{
    s->text = text;
    s->n_syms = 0;
    s->n_heap = 0;
    if (!grow(&s->syms, &s->cap_syms, n, sizeof *s->syms))
        return false;
    for (size_t off = 0; off < n;) {
        size_t cl = utf8_lead_len((unsigned char)text[off]);
        if (cl > n - off)
            cl = n - off;
        int32_t i = (int32_t)s->n_syms++;
        s->syms[i] = (struct sym){i - 1, off + cl == n ? -1 : i + 1, (uint32_t)off, (uint32_t)cl};
        off += cl;
    }
    for (size_t i = 1; i < s->n_syms; i++)
        if (!try_bigram(s, (int32_t)i - 1, (int32_t)i))
            return false;
    while (s->n_heap) {
        struct bigram bg = heap_pop(s);
        struct sym *l = &s->syms[bg.left], *r = &s->syms[bg.right];
        if (l->n != bg.left_n || r->n != bg.right_n || r->n == 0)
            continue; /* one side changed since it was queued */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            s->syms[r->next].prev = bg.left;
        if (!try_bigram(s, l->prev, bg.left) || !try_bigram(s, bg.left, l->next))
            return false;
    }
    return true;
}

/* ---- SPM ----------------------------------------------------------------------------- */

static bool spm_fragment(struct session *s, const char *text, size_t len, bool prefix,
                         struct ids *out, char **work, size_t *work_cap)
{
    const struct tokenizer *t = s->t;
    /* Spaces become U+2581 (3 bytes). */
    if (!grow(work, work_cap, 3 * (len + 1), 1))
        return false;
    char *w = *work;
    size_t n = 0;
    if (prefix) {
        memcpy(w, "\xe2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(w + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            w[n++] = text[i];
        }
    }
    if (n == 0 || !merge_all(s, w, n))
        return n == 0;
    for (int32_t i = 0; i >= 0; i = s->syms[i].next) {
        const struct sym *y = &s->syms[i];
        int32_t id = tok_find(t, w + y->start, y->n);
        if (id != TOKENIZER_NONE) {
            if (!ids_push(out, id))
                return false;
            continue;
        }
        for (uint32_t j = 0; j < y->n; j++) {
            int32_t b = t->byte_tok[(unsigned char)w[y->start + j]];
            if (b == TOKENIZER_NONE)
                b = t->unk;
            if (b != TOKENIZER_NONE && !ids_push(out, b))
                return false;
        }
    }
    return true;
}

/* ---- BPE ------------------------------------------------------------------------------ */

struct span {
    size_t start, len;
};

struct spans {
    struct span *v;
    size_t n, cap;
};

static bool spans_push(struct spans *a, size_t start, size_t len)
{
    if (!grow(&a->v, &a->cap, a->n + 1, sizeof *a->v))
        return false;
    a->v[a->n++] = (struct span){start, len};
    return true;
}

/* Valid UTF-8 copy of text: each byte that does not start a valid sequence
 * becomes U+FFFD (llama.cpp replaces invalid input byte by byte). */
static size_t sanitize_utf8(const char *text, size_t len, char *out)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t cl = utf8_valid_len(p + i, len - i);
        if (cl == 0) {
            memcpy(out + n, "\xef\xbf\xbd", 3);
            n += 3;
            i++;
        } else {
            memcpy(out + n, p + i, cl);
            n += cl;
            i += cl;
        }
    }
    return n;
}

/* Apply one regex to every span: matches and the gaps between them become
 * the new spans, as llama.cpp's regex split does. */
static bool regex_split(const pcre2_code *re, pcre2_match_data *md, const char *text,
                        const struct spans *in, struct spans *out, struct err *e)
{
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        const char *subj = text + in->v[i].start;
        size_t len = in->v[i].len, prev = 0, from = 0;
        while (from <= len) {
            int rc = pcre2_match(re, (PCRE2_SPTR)subj, len, from, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
                rc = pcre2_match(re, (PCRE2_SPTR)subj, len, from,
                                 PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0)
                return err_set(e, ERR_INVALID,
                               "the text could not be pre-tokenized (regex error %d)", rc);
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) { /* an empty match splits nothing: step one character */
                from = ms + (ms < len ? utf8_lead_len((unsigned char)subj[ms]) : 1);
                continue;
            }
            if ((ms > prev && !spans_push(out, in->v[i].start + prev, ms - prev)) ||
                !spans_push(out, in->v[i].start + ms, me - ms))
                return nomem(e);
            prev = from = me;
        }
        if (prev < len && !spans_push(out, in->v[i].start + prev, len - prev))
            return nomem(e);
    }
    return true;
}

struct bpe_scratch {
    char *clean;
    struct spans a, b;
    char *word;
    size_t word_cap;
    pcre2_match_data *md[MAX_PRE_REGEX];
};

static bool bpe_word(struct session *s, const char *w, size_t n, struct ids *out)
{
    const struct tokenizer *t = s->t;
    if (t->ignore_merges) {
        int32_t id = tok_find(t, w, n);
        if (id != TOKENIZER_NONE)
            return ids_push(out, id);
    }
    if (!merge_all(s, w, n))
        return false;
    for (int32_t i = 0; i >= 0; i = s->syms[i].next) {
        const struct sym *y = &s->syms[i];
        int32_t id = tok_find(t, w + y->start, y->n);
        if (id != TOKENIZER_NONE) {
            if (!ids_push(out, id))
                return false;
            continue;
        }
        for (uint32_t j = 0; j < y->n; j++) { /* llama.cpp's last resort: single bytes */
            int32_t b = tok_find(t, w + y->start + j, 1);
            if (b != TOKENIZER_NONE && !ids_push(out, b))
                return false;
        }
    }
    return true;
}

static bool bpe_fragment(struct session *s, struct bpe_scratch *x, const char *text, size_t len,
                         struct ids *out, struct err *e)
{
    const struct tokenizer *t = s->t;
    size_t n = sanitize_utf8(text, len, x->clean);
    x->a.n = 0;
    if (!spans_push(&x->a, 0, n))
        return nomem(e);
    for (int r = 0; r < t->n_re; r++) {
        if (!regex_split(t->re[r], x->md[r], x->clean, &x->a, &x->b, e))
            return false;
        struct spans tmp = x->a;
        x->a = x->b;
        x->b = tmp;
    }
    for (size_t i = 0; i < x->a.n; i++) {
        const unsigned char *p = (const unsigned char *)x->clean + x->a.v[i].start;
        size_t wn = 0, len_i = x->a.v[i].len;
        if (!grow(&x->word, &x->word_cap, 2 * len_i, 1))
            return nomem(e);
        for (size_t j = 0; j < len_i; j++)
            wn += utf8_put(byte_to_cp(p[j]), x->word + wn);
        if (!bpe_word(s, x->word, wn, out))
            return nomem(e);
    }
    return true;
}

/* ---- encode --------------------------------------------------------------------------- */

bool tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, unsigned flags,
                      int32_t **ids, size_t *n_ids, struct err *e)
{
    return tokenizer_encode_literal(t, text, len, flags, NULL, 0, ids, n_ids, e);
}

bool tokenizer_encode_literal(const struct tokenizer *t, const char *text, size_t len,
                              unsigned flags, const struct tokenizer_span *literal,
                              size_t n_literal, int32_t **ids, size_t *n_ids, struct err *e)
{
    *ids = NULL;
    *n_ids = 0;
    struct ids out = {0};
    struct frags f = {0};
    struct session s = {.t = t};
    struct bpe_scratch x = {0};
    char *work = NULL;
    size_t work_cap = 0;
    bool ok = false;

    bool add = (flags & TOKENIZER_ADD_SPECIAL) != 0;
    if (add && t->add_bos && !ids_push(&out, t->bos))
        goto nomem;
    bool parse_special = (flags & TOKENIZER_PARSE_SPECIAL) != 0;
    if (len > 0 && !(parse_special && n_literal > 0
                         ? partition_literal(t, text, len, parse_special, literal, n_literal, &f)
                         : partition(t, text, len, parse_special, &f)))
        goto nomem;
    if (t->kind == TOKENIZER_BPE) {
        x.clean = malloc(3 * len + 1);
        if (!x.clean)
            goto nomem;
        for (int r = 0; r < t->n_re; r++)
            if (!(x.md[r] = pcre2_match_data_create_from_pattern(t->re[r], NULL)))
                goto nomem;
    }
    /* SPM: the dummy-prefix space goes on text that starts the input or
     * follows a special token. */
    bool after_special = true;
    for (size_t i = 0; i < f.n; i++) {
        if (f.v[i].id >= 0) {
            if (!ids_push(&out, f.v[i].id))
                goto nomem;
            after_special = true;
            continue;
        }
        if (t->kind == TOKENIZER_SPM) {
            if (!spm_fragment(&s, text + f.v[i].start, f.v[i].len,
                              t->add_space_prefix && after_special, &out, &work, &work_cap))
                goto nomem;
        } else if (!bpe_fragment(&s, &x, text + f.v[i].start, f.v[i].len, &out, e)) {
            goto done;
        }
        after_special = false;
    }
    if (add && t->add_eos && !ids_push(&out, t->eos))
        goto nomem;
    if (!out.v && !(out.v = malloc(sizeof *out.v)))
        goto nomem;
    *ids = out.v;
    *n_ids = out.n;
    out.v = NULL;
    ok = true;
    goto done;
nomem:
    err_set(e, ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
done:
    free(out.v);
    free(f.v);
    free(s.syms);
    free(s.heap);
    free(work);
    free(x.clean);
    free(x.a.v);
    free(x.b.v);
    free(x.word);
    for (int r = 0; r < MAX_PRE_REGEX; r++)
        pcre2_match_data_free(x.md[r]);
    return ok;
}

/* ---- decode ------------------------------------------------------------------------------ */

void tokenizer_stream_init(struct tokenizer_stream *s, unsigned flags)
{
    memset(s, 0, sizeof *s);
    s->flags = flags;
}

size_t tokenizer_stream_out_max(const struct tokenizer *t)
{
    /* Every byte in (held + piece) can become a 3-byte U+FFFD at worst. */
    return 3 * ((size_t)t->max_piece + sizeof ((struct tokenizer_stream *)0)->held) + 3;
}

static size_t put_fffd(char *out)
{
    memcpy(out, "\xef\xbf\xbd", 3);
    return 3;
}

/* Emit the complete characters of held + piece; keep a trailing incomplete
 * one; replace what can never be a character. */
static size_t stream_emit(struct tokenizer_stream *s, const unsigned char *p, size_t n, char *out)
{
    unsigned char held[sizeof s->held];
    size_t nh = s->n_held;
    memcpy(held, s->held, nh);
    s->n_held = 0;
    size_t total = nh + n, i = 0, o = 0;
#define AT(k) ((k) < nh ? held[k] : p[(k) - nh])
    while (i < total) {
        unsigned char c = AT(i);
        if (c < 0x80) {
            out[o++] = (char)c;
            i++;
            continue;
        }
        size_t need;
        unsigned char lo, hi;
        if (!utf8_lead(c, &need, &lo, &hi)) {
            o += put_fffd(out + o);
            i++;
            continue;
        }
        size_t k = 1;
        while (k < need && i + k < total && utf8_cont_ok(AT(i + k), k, lo, hi))
            k++;
        if (k == need) {
            for (size_t j = 0; j < need; j++)
                out[o++] = (char)AT(i + j);
            i += need;
        } else if (i + k == total) { /* a valid start, cut short: wait for more */
            for (size_t j = 0; j < k; j++)
                s->held[j] = AT(i + j);
            s->n_held = (uint8_t)k;
            break;
        } else { /* a maximal invalid subpart */
            o += put_fffd(out + o);
            i += k;
        }
    }
#undef AT
    return o;
}

size_t tokenizer_stream_push(const struct tokenizer *t, struct tokenizer_stream *s, int32_t id,
                             char *out)
{
    struct gguf_str piece = tokenizer_token_piece(t, id, s->flags);
    const unsigned char *p = (const unsigned char *)piece.ptr;
    size_t n = piece.len;
    if ((s->flags & TOKENIZER_STRIP_LEADING_SPACE) && !s->stripped && n > 0) {
        s->stripped = true;
        if (p[0] == ' ') {
            p++;
            n--;
        }
    }
    return stream_emit(s, p, n, out);
}

size_t tokenizer_stream_flush(struct tokenizer_stream *s, char *out)
{
    if (!s->n_held)
        return 0;
    s->n_held = 0;
    return put_fffd(out);
}

bool tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n_ids,
                      unsigned flags, char **text, size_t *len, struct err *e)
{
    *text = NULL;
    *len = 0;
    struct tokenizer_stream s;
    tokenizer_stream_init(&s, flags);
    size_t step = tokenizer_stream_out_max(t), cap = 0, n = 0;
    char *buf = NULL;
    for (size_t i = 0; i <= n_ids; i++) {
        if (!grow(&buf, &cap, n + step + 1, 1)) {
            free(buf);
            return err_set(e, ERR_NOMEM, "out of memory decoding %zu tokens", n_ids);
        }
        n += i < n_ids ? tokenizer_stream_push(t, &s, ids[i], buf + n)
                       : tokenizer_stream_flush(&s, buf + n);
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return true;
}
