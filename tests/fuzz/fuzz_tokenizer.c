/* fuzz_tokenizer.c — libFuzzer target for engine/tokenizer.c.
 *
 * Vocabularies are loaded once: two built here (GPT-2 byte-level BPE with
 * ChatML control tokens, the demo model's shape; SPM with byte fallback and
 * a user-defined token) plus, when the shared data is present, a few of
 * llama.cpp's test vocabularies (different pre-tokenizers, thousands of
 * user-defined tokens). The first input byte picks the vocabulary, the rest
 * is the text. Each input is encoded with and without special-token parsing,
 * decoded whole and through a stream one id at a time, and checked:
 *   - stream chunks are valid UTF-8 and concatenate to the whole decode;
 *   - byte-level BPE with all 256 byte tokens loses nothing: decoding gives
 *     back the input (with invalid UTF-8 replaced by U+FFFD byte by byte, as
 *     encoding does). Vocabularies missing some bytes (falcon, mpt, ...)
 *     drop them, as llama.cpp does.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/tokenizer.h"
/* The test writer builds the in-memory vocabularies; the fuzz build links
 * only the library, so its source comes in here. */
#include "tests/unit/gguf_writer.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_VOCABS 8

struct fuzz_vocab {
    uint8_t *buf;
    struct gguf_file *g;
    struct tokenizer *t;
    bool all_bytes; /* BPE with a token for each of the 256 bytes: lossless */
};

static struct fuzz_vocab vocabs[MAX_VOCABS];
static int n_vocabs;

static size_t put_cp(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

/* GPT-2's byte-to-unicode map. */
static bool gpt2_printable(int b)
{
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
}

static uint32_t gpt2_cp(int b)
{
    if (gpt2_printable(b))
        return (uint32_t)b;
    uint32_t n = 0;
    for (int c = 0; c < b; c++)
        n += !gpt2_printable(c);
    return 256 + n;
}

static void add_vocab(uint8_t *buf, size_t len, const char *path)
{
    struct fuzz_vocab *v = &vocabs[n_vocabs];
    struct err e;
    bool ok = path ? gguf_open(path, &v->g, &e) : gguf_open_memory(buf, len, &v->g, &e);
    if (!ok || !tokenizer_load(v->g, &v->t, &e)) {
        fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path ? path : "built-in vocab", e.msg);
        abort();
    }
    v->buf = buf;
    v->all_bytes = tokenizer_kind(v->t) == TOKENIZER_BPE;
    for (int b = 0; b < 256 && v->all_bytes; b++) {
        char s[4];
        size_t n = put_cp(gpt2_cp(b), s);
        v->all_bytes = tokenizer_token_find(v->t, s, n) != TOKENIZER_NONE;
    }
    n_vocabs++;
}

static void builtin_bpe(void)
{
    static char bytes[256][4];
    const char *toks[256 + 6];
    int32_t types[256 + 6];
    for (int b = 0; b < 256; b++) {
        bytes[b][put_cp(gpt2_cp(b), bytes[b])] = '\0';
        toks[b] = bytes[b];
        types[b] = 1;
    }
    const char *extra[] = {"he", "ll", "\xc4\xa0t", "<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    for (int i = 0; i < 6; i++) {
        toks[256 + i] = extra[i];
        types[256 + i] = i < 3 ? 1 : 3;
    }
    const char *merges[] = {"h e", "l l", "\xc4\xa0 t"};
    struct test_gguf *w = test_gguf_new(3);
    test_gguf_str(w, "tokenizer.ggml.model", "gpt2");
    test_gguf_str(w, "tokenizer.ggml.pre", "default");
    test_gguf_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 262);
    test_gguf_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 262);
    test_gguf_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 3);
    test_gguf_u32(w, "tokenizer.ggml.eos_token_id", 259);
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    add_vocab(buf, len, NULL);
}

static void builtin_spm(void)
{
    static char names[256][8];
    const char *toks[3 + 256 + 6];
    int32_t types[3 + 256 + 6];
    float scores[3 + 256 + 6] = {0};
    const char *head[] = {"<unk>", "<s>", "</s>"};
    int32_t head_types[] = {2, 3, 3};
    for (int i = 0; i < 3; i++) {
        toks[i] = head[i];
        types[i] = head_types[i];
    }
    for (int b = 0; b < 256; b++) {
        snprintf(names[b], sizeof names[b], "<0x%02X>", b);
        toks[3 + b] = names[b];
        types[3 + b] = 6;
    }
    const char *pieces[] = {"\xe2\x96\x81", "a", "b", "\xe2\x96\x81\x61" /* "▁a" */, "ab",
                            "<|user|>"};
    for (int i = 0; i < 6; i++) {
        toks[259 + i] = pieces[i];
        types[259 + i] = i == 5 ? 4 : 1;
        scores[259 + i] = -(float)i;
    }
    struct test_gguf *w = test_gguf_new(3);
    test_gguf_str(w, "tokenizer.ggml.model", "llama");
    test_gguf_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 265);
    test_gguf_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 265);
    test_gguf_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 265);
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    add_vocab(buf, len, NULL);
}

static void load_vocabs(void)
{
    builtin_bpe();
    builtin_spm();
    const char *root = getenv("MAASD_SHARED");
    if (!root || !*root)
        root = "../shared";
    static const char *const shared[] = {"gpt-2", "llama-spm", "deepseek-llm", "mpt", "falcon",
                                         "deepseek-coder"};
    for (size_t i = 0; i < sizeof shared / sizeof shared[0] && n_vocabs < MAX_VOCABS; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tokenizers/ggml-vocab-%s.gguf", root, shared[i]);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        fclose(f);
        add_vocab(NULL, 0, path);
    }
}

/* The encoder's view of the input: each byte that does not start a valid
 * UTF-8 sequence becomes U+FFFD. */
static size_t sanitize(const uint8_t *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t need = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                                   : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        bool ok = need > 0 && i + need <= n;
        if (ok && need > 1) {
            unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
            unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
            ok = p[i + 1] >= lo && p[i + 1] <= hi;
            for (size_t k = 2; ok && k < need; k++)
                ok = (p[i + k] & 0xc0) == 0x80;
        }
        if (!ok) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, p + i, need);
            o += need;
            i += need;
        }
    }
    return o;
}

static bool valid_utf8(const char *s, size_t n)
{
    char *tmp = malloc(3 * n + 1);
    bool same = sanitize((const uint8_t *)s, n, tmp) == n && memcmp(tmp, s, n) == 0;
    free(tmp);
    return same;
}

static void check(const struct fuzz_vocab *v, const uint8_t *text, size_t len, unsigned flags,
                  bool lossless)
{
    const struct tokenizer *t = v->t;
    int32_t *ids;
    size_t n;
    struct err e;
    if (!tokenizer_encode(t, (const char *)text, len, flags, &ids, &n, &e)) {
        fprintf(stderr, "encode failed: %s\n", e.msg);
        abort();
    }
    char *whole;
    size_t whole_len;
    unsigned dflags = TOKENIZER_RENDER_SPECIAL;
    if (!tokenizer_decode(t, ids, n, dflags, &whole, &whole_len, &e))
        abort();
    /* Streaming gives the same text in valid UTF-8 chunks. */
    struct tokenizer_stream st;
    tokenizer_stream_init(&st, dflags);
    char *chunk = malloc(tokenizer_stream_out_max(t));
    size_t at = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t k = i < n ? tokenizer_stream_push(t, &st, ids[i], chunk)
                         : tokenizer_stream_flush(&st, chunk);
        if (!valid_utf8(chunk, k) || at + k > whole_len || memcmp(whole + at, chunk, k) != 0)
            abort();
        at += k;
    }
    if (at != whole_len)
        abort();
    if (lossless && v->all_bytes) {
        char *want = malloc(3 * len + 1);
        size_t want_len = sanitize(text, len, want);
        if (want_len != whole_len || memcmp(want, whole, whole_len) != 0)
            abort();
        free(want);
    }
    free(chunk);
    free(whole);
    free(ids);
}

/* Literal spans (chat messages): a span over the whole text is encoding
 * without special tokens; a span in the middle still decodes to the text. */
static void check_literal(const struct fuzz_vocab *v, const uint8_t *text, size_t len)
{
    const struct tokenizer *t = v->t;
    const char *s = (const char *)text;
    int32_t *a, *b;
    size_t na, nb;
    struct err e;
    struct tokenizer_span all = {0, len}, mid = {len / 3, len / 3};
    if (!tokenizer_encode(t, s, len, 0, &a, &na, &e) ||
        !tokenizer_encode_literal(t, s, len, TOKENIZER_PARSE_SPECIAL, &all, 1, &b, &nb, &e))
        abort();
    if (na != nb || memcmp(a, b, na * sizeof *a) != 0)
        abort();
    free(a);
    free(b);
    if (!tokenizer_encode_literal(t, s, len, TOKENIZER_PARSE_SPECIAL, &mid, 1, &b, &nb, &e))
        abort();
    char *whole;
    size_t whole_len;
    if (!tokenizer_decode(t, b, nb, TOKENIZER_RENDER_SPECIAL, &whole, &whole_len, &e))
        abort();
    if (v->all_bytes) {
        char *want = malloc(3 * len + 1);
        size_t want_len = sanitize(text, len, want);
        if (want_len != whole_len || memcmp(want, whole, whole_len) != 0)
            abort();
        free(want);
    }
    free(whole);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (n_vocabs == 0)
        load_vocabs();
    if (size == 0)
        return 0;
    const struct fuzz_vocab *v = &vocabs[data[0] % n_vocabs];
    check(v, data + 1, size - 1, 0, true);
    check(v, data + 1, size - 1, TOKENIZER_PARSE_SPECIAL, true);
    /* BOS/EOS render as text of their own: no lossless check. */
    check(v, data + 1, size - 1, TOKENIZER_PARSE_SPECIAL | TOKENIZER_ADD_SPECIAL, false);
    check_literal(v, data + 1, size - 1);
    return 0;
}
