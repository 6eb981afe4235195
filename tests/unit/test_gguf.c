/* test_gguf.c — the GGUF reader (engine/gguf.c): valid files written here
 * read back exactly; every class of corruption fails with ERR_CORRUPT and a
 * message naming the culprit; the shared models open and match their
 * reference tensor tables. */
#include "tests/unit/testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/gguf.h"
#include "tests/unit/gguf_writer.h"

/* ---- helpers ------------------------------------------------------------------ */

/* Open a copy of exactly len bytes, so ASan sees any read past the end. */
static struct gguf_file *open_exact(const uint8_t *buf, size_t len, struct err *e,
                                    uint8_t **copy)
{
    *copy = malloc(len ? len : 1);
    assert_non_null(*copy);
    memcpy(*copy, buf, len);
    struct gguf_file *f = NULL;
    err_clear(e);
    if (!gguf_open_memory(*copy, len, &f, e))
        assert_null(f);
    return f;
}

/* The file must be refused with `code`, and the message (and the param when
 * `param` is given) must name the culprit. */
static void expect_refused(uint8_t *buf, size_t len, enum err_code code, const char *needle,
                           const char *param)
{
    struct err e;
    uint8_t *copy;
    struct gguf_file *f = open_exact(buf, len, &e, &copy);
    if (f || e.code != code || (needle && !strstr(e.msg, needle)) ||
        (param && strcmp(e.param, param) != 0))
        fail_msg("expected %s naming '%s' (param '%s'), got %s: %s (param '%s')",
                 err_code_name(code), needle ? needle : "", param ? param : "",
                 f ? "success" : err_code_name(e.code), e.msg, e.param);
    gguf_close(f);
    free(copy);
    free(buf);
}

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* A small file with every value type, string and numeric arrays, and tensors
 * of several ggml types. */
static uint8_t *sample_file(uint32_t version, size_t *len)
{
    struct test_gguf *w = test_gguf_new(version);
    test_gguf_str(w, "general.architecture", "llama");
    test_gguf_u8(w, "t.u8", 200);
    test_gguf_i8(w, "t.i8", -5);
    test_gguf_u16(w, "t.u16", 60000);
    test_gguf_i16(w, "t.i16", -3000);
    test_gguf_u32(w, "t.u32", 4000000000u);
    test_gguf_i32(w, "t.i32", -7);
    test_gguf_u64(w, "t.u64", 1ull << 40);
    test_gguf_i64(w, "t.i64", -(1ll << 40));
    test_gguf_f32(w, "t.f32", 1.5f);
    test_gguf_f64(w, "t.f64", 0.25);
    test_gguf_bool(w, "t.bool", true);
    const char *toks[] = {"<unk>", "", "\xe2\x96\x81hello", "a"};
    test_gguf_arr_str(w, "t.tokens", toks, NULL, 4);
    float scores[] = {0.0f, -1.0f, -2.5f, 3.0f};
    test_gguf_arr(w, "t.scores", GGUF_TYPE_FLOAT32, scores, 4);
    int32_t types[] = {2, 3, 1, 6};
    test_gguf_arr(w, "t.types", GGUF_TYPE_INT32, types, 4);
    test_gguf_arr(w, "t.empty", GGUF_TYPE_UINT8, NULL, 0);
    test_gguf_tensor(w, "a.f32", 2, (const uint64_t[]){3, 2}, GGML_TYPE_F32, NULL);
    test_gguf_tensor(w, "b.q8_0", 2, (const uint64_t[]){64, 3}, GGML_TYPE_Q8_0, NULL);
    test_gguf_tensor(w, "c.q4_k", 1, (const uint64_t[]){256}, GGML_TYPE_Q4_K, NULL);
    test_gguf_tensor(w, "d.bf16", 4, (const uint64_t[]){2, 1, 3, 2}, GGML_TYPE_BF16, NULL);
    return test_gguf_finish(w, len);
}

/* ---- valid files ------------------------------------------------------------------ */

static void check_sample(struct gguf_file *f, uint32_t version)
{
    struct err e = {0};
    assert_int_equal(gguf_version(f), version);
    assert_int_equal(gguf_alignment(f), 32);
    assert_int_equal(gguf_kv_count(f), 16);
    assert_int_equal(gguf_tensor_count(f), 4);

    struct gguf_str s;
    assert_true(gguf_get_str(f, "general.architecture", &s, &e));
    assert_true(gguf_str_eq(s, "llama"));
    uint32_t u32;
    uint64_t u64;
    int32_t i32;
    float f32;
    bool b;
    assert_true(gguf_get_u32(f, "t.u8", &u32, &e));
    assert_int_equal(u32, 200);
    assert_true(gguf_get_u32(f, "t.u16", &u32, &e));
    assert_int_equal(u32, 60000);
    assert_true(gguf_get_u32(f, "t.u32", &u32, &e));
    assert_int_equal(u32, 4000000000u);
    assert_true(gguf_get_i32(f, "t.i8", &i32, &e));
    assert_int_equal(i32, -5);
    assert_true(gguf_get_i32(f, "t.i16", &i32, &e));
    assert_int_equal(i32, -3000);
    assert_true(gguf_get_i32(f, "t.i32", &i32, &e));
    assert_int_equal(i32, -7);
    assert_true(gguf_get_u64(f, "t.u64", &u64, &e));
    assert_int_equal(u64, 1ull << 40);
    assert_true(gguf_get_f32(f, "t.f32", &f32, &e));
    assert_true(f32 == 1.5f);
    assert_true(gguf_get_f32(f, "t.f64", &f32, &e));
    assert_true(f32 == 0.25f);
    assert_true(gguf_get_bool(f, "t.bool", &b, &e));
    assert_true(b);

    /* Getters: absent, wrong type, out of range. */
    assert_false(gguf_get_u32(f, "nope", &u32, &e));
    assert_int_equal(e.code, ERR_NOT_FOUND);
    assert_string_equal(e.param, "nope");
    assert_false(gguf_get_u32(f, "t.i32", &u32, &e)); /* negative */
    assert_int_equal(e.code, ERR_CORRUPT);
    assert_string_equal(e.param, "t.i32");
    assert_false(gguf_get_i32(f, "t.u32", &i32, &e)); /* > INT32_MAX */
    assert_int_equal(e.code, ERR_CORRUPT);
    assert_false(gguf_get_u32(f, "t.u64", &u32, &e));
    assert_int_equal(e.code, ERR_CORRUPT);
    assert_false(gguf_get_u32(f, "t.f32", &u32, &e));
    assert_int_equal(e.code, ERR_CORRUPT);
    assert_non_null(strstr(e.msg, "t.f32"));
    assert_false(gguf_get_str(f, "t.u8", &s, &e));
    assert_int_equal(e.code, ERR_CORRUPT);
    assert_false(gguf_get_bool(f, "t.u8", &b, &e));
    assert_int_equal(e.code, ERR_CORRUPT);
    assert_false(gguf_get_f32(f, "t.tokens", &f32, &e));
    assert_int_equal(e.code, ERR_CORRUPT);

    const struct gguf_kv *kv;
    assert_true(gguf_get_arr(f, "t.tokens", GGUF_TYPE_STRING, &kv, &e));
    assert_int_equal(kv->arr_len, 4);
    assert_true(gguf_str_eq(gguf_kv_arr_str(kv, 0), "<unk>"));
    assert_true(gguf_str_eq(gguf_kv_arr_str(kv, 1), ""));
    assert_true(gguf_str_eq(gguf_kv_arr_str(kv, 2), "\xe2\x96\x81hello"));
    assert_true(gguf_str_eq(gguf_kv_arr_str(kv, 3), "a"));
    assert_int_equal(gguf_kv_arr_str(kv, 4).len, 0); /* out of range */
    assert_false(gguf_get_arr(f, "t.tokens", GGUF_TYPE_INT32, &kv, &e));
    assert_int_equal(e.code, ERR_CORRUPT);
    assert_false(gguf_get_arr(f, "t.tokens", GGUF_TYPE_ARRAY, &kv, &e));
    assert_int_equal(e.code, ERR_INVALID);
    assert_false(gguf_get_arr(f, "t.u8", GGUF_TYPE_UINT8, &kv, &e));
    assert_int_equal(e.code, ERR_CORRUPT);
    assert_true(gguf_get_arr(f, "t.scores", GGUF_TYPE_FLOAT32, &kv, &e));
    assert_true(gguf_kv_arr_f32(kv, 2) == -2.5f);
    assert_int_equal(gguf_kv_arr_i32(kv, 3), 3);
    assert_true(gguf_kv_arr_f32(kv, 4) == 0.0f);
    assert_true(gguf_get_arr(f, "t.types", GGUF_TYPE_INT32, &kv, &e));
    assert_int_equal(gguf_kv_arr_i32(kv, 0), 2);
    assert_int_equal(gguf_kv_arr_u32(kv, 3), 6);
    assert_true(gguf_kv_arr_f32(kv, 1) == 3.0f);
    assert_int_equal(gguf_kv_arr_i32(kv, 99), 0);
    assert_int_equal(gguf_kv_arr_str(kv, 0).len, 0); /* not a string array */
    assert_true(gguf_get_arr(f, "t.empty", GGUF_TYPE_UINT8, &kv, &e));
    assert_int_equal(kv->arr_len, 0);

    /* Every kv is reachable by index and by name, in file order. */
    for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
        const struct gguf_kv *k = gguf_kv_at(f, i);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)k->key.len, k->key.ptr);
        assert_ptr_equal(gguf_kv_find(f, name), k);
    }
    assert_null(gguf_kv_at(f, gguf_kv_count(f)));
    assert_null(gguf_kv_find(f, "t."));
    assert_null(gguf_kv_find(f, ""));

    struct {
        const char *name;
        uint32_t n_dims;
        uint64_t ne[4];
        enum ggml_type type;
        uint64_t bytes;
    } want[] = {
        {"a.f32", 2, {3, 2, 1, 1}, GGML_TYPE_F32, 24},
        {"b.q8_0", 2, {64, 3, 1, 1}, GGML_TYPE_Q8_0, 2 * 3 * 34},
        {"c.q4_k", 1, {256, 1, 1, 1}, GGML_TYPE_Q4_K, 144},
        {"d.bf16", 4, {2, 1, 3, 2}, GGML_TYPE_BF16, 24},
    };
    uint64_t prev_end = 0, data_start = 0;
    for (size_t i = 0; i < 4; i++) {
        const struct gguf_tensor *t = gguf_tensor_find(f, want[i].name);
        assert_non_null(t);
        assert_ptr_equal(t, gguf_tensor_at(f, i));
        assert_true(gguf_str_eq(t->name, want[i].name));
        assert_int_equal(t->n_dims, want[i].n_dims);
        for (int d = 0; d < 4; d++)
            assert_int_equal(t->ne[d], want[i].ne[d]);
        assert_int_equal(t->type, want[i].type);
        assert_int_equal(t->n_bytes, want[i].bytes);
        uint64_t off = gguf_tensor_file_offset(f, t);
        assert_int_equal(off % 32, 0);
        assert_true(off >= prev_end);
        prev_end = off + t->n_bytes;
        /* The data is the writer's pattern, relative to the data section
         * (which starts at the first tensor). */
        if (i == 0)
            data_start = off;
        const uint8_t *p = t->data;
        for (uint64_t j = 0; j < t->n_bytes; j++)
            assert_int_equal(p[j], (uint8_t)(j * 31 + (off - data_start)));
    }
    assert_int_equal(prev_end, gguf_file_size(f)); /* last tensor ends the file */
    assert_null(gguf_tensor_find(f, "a"));
    assert_null(gguf_tensor_at(f, 4));
}

static void test_roundtrip_v2_v3(void **state)
{
    (void)state;
    for (uint32_t v = 2; v <= 3; v++) {
        size_t len;
        uint8_t *buf = sample_file(v, &len);
        struct err e = {0};
        uint8_t *copy;
        struct gguf_file *f = open_exact(buf, len, &e, &copy);
        if (!f)
            fail_msg("v%u: %s", v, e.msg);
        check_sample(f, v);
        gguf_close(f);
        free(copy);
        free(buf);
    }
}

static void test_open_file(void **state)
{
    (void)state;
    const char *dir = test_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/sample.gguf", dir);
    size_t len;
    uint8_t *buf = sample_file(3, &len);
    assert_true(test_gguf_save(buf, len, path));
    struct gguf_file *f = NULL;
    struct err e = {0};
    if (!gguf_open(path, &f, &e))
        fail_msg("%s", e.msg);
    check_sample(f, 3);
    /* The mapping is page-aligned, so data pointers are aligned in memory. */
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++)
        assert_int_equal((uintptr_t)gguf_tensor_at(f, i)->data % 32, 0);
    gguf_close(f);

    /* Missing file, directory: ERR_IO naming the path. */
    char missing[4300];
    snprintf(missing, sizeof missing, "%s/missing.gguf", dir);
    assert_false(gguf_open(missing, &f, &e));
    assert_null(f);
    assert_int_equal(e.code, ERR_IO);
    assert_non_null(strstr(e.msg, missing));
    assert_false(gguf_open(dir, &f, &e));
    assert_int_equal(e.code, ERR_IO);
    assert_non_null(strstr(e.msg, dir));

    /* Empty and corrupt files on disk: ERR_CORRUPT naming the path. */
    assert_true(test_gguf_save(buf, 0, path));
    assert_false(gguf_open(path, &f, &e));
    assert_int_equal(e.code, ERR_CORRUPT);
    assert_non_null(strstr(e.msg, path));
    assert_true(test_gguf_save(buf, len - 1, path));
    assert_false(gguf_open(path, &f, &e));
    assert_int_equal(e.code, ERR_CORRUPT);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "d.bf16"));
    free(buf);
}

static void test_alignment_key(void **state)
{
    (void)state;
    struct test_gguf *w = test_gguf_new(3);
    test_gguf_alignment(w, 256);
    test_gguf_tensor(w, "x", 1, (const uint64_t[]){3}, GGML_TYPE_F32, NULL);
    test_gguf_tensor(w, "y", 1, (const uint64_t[]){5}, GGML_TYPE_F16, NULL);
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    struct err e;
    uint8_t *copy;
    struct gguf_file *f = open_exact(buf, len, &e, &copy);
    if (!f)
        fail_msg("%s", e.msg);
    assert_int_equal(gguf_alignment(f), 256);
    assert_int_equal(gguf_tensor_file_offset(f, gguf_tensor_find(f, "x")) % 256, 0);
    assert_int_equal(gguf_tensor_file_offset(f, gguf_tensor_find(f, "y")) % 256, 0);
    gguf_close(f);
    free(copy);
    free(buf);
}

/* A vocabulary-only file (no tensors) ends right after its metadata. */
static void test_no_tensors(void **state)
{
    (void)state;
    struct test_gguf *w = test_gguf_new(3);
    test_gguf_str(w, "tokenizer.ggml.model", "gpt2");
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    struct err e;
    uint8_t *copy;
    struct gguf_file *f = open_exact(buf, len, &e, &copy);
    assert_non_null(f);
    assert_int_equal(gguf_tensor_count(f), 0);
    assert_null(gguf_tensor_find(f, "x"));
    gguf_close(f);
    free(copy);
    free(buf);

    /* Header only: no keys, no tensors. */
    w = test_gguf_new(2);
    buf = test_gguf_finish(w, &len);
    f = open_exact(buf, len, &e, &copy);
    assert_non_null(f);
    assert_int_equal(gguf_kv_count(f), 0);
    gguf_close(f);
    free(copy);
    free(buf);
}

/* Names and lookups at the scale of a real vocabulary: 150k strings, 300
 * tensors. */
static void test_large_index(void **state)
{
    (void)state;
    enum { N = 150000, T = 300 };
    char **toks = malloc(N * sizeof *toks);
    assert_non_null(toks);
    for (int i = 0; i < N; i++) {
        toks[i] = malloc(16);
        snprintf(toks[i], 16, "tok%d", i);
    }
    struct test_gguf *w = test_gguf_new(3);
    test_gguf_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, N);
    for (int i = 0; i < T; i++) {
        char name[32];
        snprintf(name, sizeof name, "blk.%d.weight", i);
        test_gguf_tensor(w, name, 1, (const uint64_t[]){8}, GGML_TYPE_F32, NULL);
    }
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    struct err e;
    struct gguf_file *f = NULL;
    if (!gguf_open_memory(buf, len, &f, &e))
        fail_msg("%s", e.msg);
    const struct gguf_kv *kv = gguf_kv_find(f, "tokenizer.ggml.tokens");
    assert_non_null(kv);
    for (int i = 0; i < N; i++)
        assert_true(gguf_str_eq(gguf_kv_arr_str(kv, (uint64_t)i), toks[i]));
    for (int i = 0; i < T; i++) {
        char name[32];
        snprintf(name, sizeof name, "blk.%d.weight", i);
        const struct gguf_tensor *t = gguf_tensor_find(f, name);
        assert_ptr_equal(t, gguf_tensor_at(f, (uint64_t)i));
    }
    gguf_close(f);
    free(buf);
    for (int i = 0; i < N; i++)
        free(toks[i]);
    free(toks);
}

static void test_type_facts(void **state)
{
    (void)state;
    assert_string_equal(ggml_type_name(GGML_TYPE_Q8_0), "q8_0");
    assert_string_equal(ggml_type_name(GGML_TYPE_BF16), "bf16");
    assert_null(ggml_type_name((enum ggml_type)4));
    assert_null(ggml_type_name((enum ggml_type)1000));
    assert_int_equal(ggml_type_block_elems(GGML_TYPE_Q6_K), 256);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q6_K), 210);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q2_K), 84);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q3_K), 110);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q5_K), 176);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q8_K), 292);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q4_0), 18);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q5_1), 24);
    assert_int_equal(ggml_type_block_bytes(GGML_TYPE_Q8_1), 36);
    assert_int_equal(ggml_type_block_elems((enum ggml_type)5), 0);
    assert_string_equal(gguf_type_name(GGUF_TYPE_FLOAT64), "f64");
    assert_null(gguf_type_name((enum gguf_type)13));
}

/* ---- corruption ------------------------------------------------------------------ */

static void test_bad_magic(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = sample_file(3, &len);
    buf[0] = 'g';
    expect_refused(buf, len, ERR_CORRUPT, "magic", NULL);
    uint8_t *tiny = malloc(3);
    memcpy(tiny, "GGU", 3);
    expect_refused(tiny, 3, ERR_CORRUPT, "magic", NULL);
}

static void test_bad_version(void **state)
{
    (void)state;
    struct {
        uint32_t version;
        enum err_code code;
        const char *needle;
    } cases[] = {
        {0, ERR_CORRUPT, "version 0"},
        {0x7fffffff, ERR_CORRUPT, "version"},
        {1, ERR_UNSUPPORTED, "version 1"},
        {4, ERR_UNSUPPORTED, "version 4"},
        {0x03000000, ERR_UNSUPPORTED, "big-endian"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        uint8_t *buf = sample_file(3, &len);
        put32(buf + 4, cases[i].version);
        expect_refused(buf, len, cases[i].code, cases[i].needle, NULL);
    }
}

/* Every proper prefix of a valid file is refused (the file ends with tensor
 * data, so none is complete), each copy exactly sized for ASan. */
static void test_truncated_everywhere(void **state)
{
    (void)state;
    for (uint32_t v = 2; v <= 3; v++) {
        size_t len;
        uint8_t *buf = sample_file(v, &len);
        for (size_t n = 0; n < len; n++) {
            struct err e;
            uint8_t *copy;
            struct gguf_file *f = open_exact(buf, n, &e, &copy);
            if (f || e.code != ERR_CORRUPT)
                fail_msg("prefix of %zu/%zu bytes: %s %s", n, len,
                         f ? "accepted" : err_code_name(e.code), e.msg);
            free(copy);
        }
        free(buf);
    }
}

static void test_huge_counts(void **state)
{
    (void)state;
    uint64_t counts[][2] = {
        {1ull << 62, 0}, {0, 1ull << 62}, {UINT64_MAX, UINT64_MAX}, {5, 17},
        {0, (UINT64_MAX / 14) + 1},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        size_t len;
        uint8_t *buf = sample_file(3, &len);
        put64(buf + 8, counts[i][0]);
        put64(buf + 16, counts[i][1]);
        expect_refused(buf, len, ERR_CORRUPT, NULL, NULL);
    }
    /* Claims within the size bound still fail where the items run out. */
    size_t len;
    uint8_t *buf = sample_file(3, &len);
    put64(buf + 16, 17);
    expect_refused(buf, len, ERR_CORRUPT, NULL, NULL);
    buf = sample_file(3, &len);
    put64(buf + 8, 5); /* the data section is then read as a tensor info */
    expect_refused(buf, len, ERR_CORRUPT, NULL, NULL);
}

static void test_huge_string_length(void **state)
{
    (void)state;
    /* The first key's length prefix sits right after the header. */
    size_t len;
    uint8_t *buf = sample_file(3, &len);
    put64(buf + TEST_GGUF_HEADER_BYTES, UINT64_MAX);
    expect_refused(buf, len, ERR_CORRUPT, "string length", NULL);

    /* A string value, a string array element, a tensor name. */
    struct test_gguf *w = test_gguf_new(3);
    test_gguf_u32(w, "ok", 1);
    uint8_t huge[8];
    put64(huge, 1ull << 63);
    test_gguf_kv_raw(w, "general.name", 12, GGUF_TYPE_STRING, huge, 8);
    buf = test_gguf_finish(w, &len);
    expect_refused(buf, len, ERR_CORRUPT, "general.name", "general.name");

    w = test_gguf_new(3);
    uint8_t arr[4 + 8 + 8 + 1 + 8];
    put32(arr, GGUF_TYPE_STRING);
    put64(arr + 4, 2);
    put64(arr + 12, 1);
    arr[20] = 'a';
    put64(arr + 21, 1000);
    test_gguf_kv_raw(w, "tokenizer.ggml.tokens", 21, GGUF_TYPE_ARRAY, arr, sizeof arr);
    buf = test_gguf_finish(w, &len);
    expect_refused(buf, len, ERR_CORRUPT, "element 1", "tokenizer.ggml.tokens");

    w = test_gguf_new(3);
    test_gguf_tensor(w, "t", 1, (const uint64_t[]){4}, GGML_TYPE_F32, NULL);
    buf = test_gguf_finish(w, &len);
    put64(buf + TEST_GGUF_HEADER_BYTES, 1ull << 40);
    expect_refused(buf, len, ERR_CORRUPT, "tensor 0", NULL);
}

static void test_huge_array_length(void **state)
{
    (void)state;
    for (uint32_t et = GGUF_TYPE_UINT8; et <= GGUF_TYPE_FLOAT64; et++) {
        if (et == GGUF_TYPE_ARRAY)
            continue;
        struct test_gguf *w = test_gguf_new(3);
        uint8_t arr[12 + 16] = {0};
        put32(arr, et);
        put64(arr + 4, UINT64_MAX / 2);
        test_gguf_kv_raw(w, "big.array", 9, GGUF_TYPE_ARRAY, arr, sizeof arr);
        size_t len;
        uint8_t *buf = test_gguf_finish(w, &len);
        expect_refused(buf, len, ERR_CORRUPT, "big.array", "big.array");
    }
}

static void test_bad_value_type(void **state)
{
    (void)state;
    uint32_t bad[] = {13, 255, 0xffffffffu};
    for (size_t i = 0; i < 3; i++) {
        struct test_gguf *w = test_gguf_new(3);
        test_gguf_u32(w, "fine", 1);
        uint8_t v[8] = {0};
        test_gguf_kv_raw(w, "weird.key", 9, bad[i], v, sizeof v);
        size_t len;
        uint8_t *buf = test_gguf_finish(w, &len);
        expect_refused(buf, len, ERR_CORRUPT, "weird.key", "weird.key");
    }
    /* Unknown array element type. */
    struct test_gguf *w = test_gguf_new(3);
    uint8_t arr[12] = {0};
    put32(arr, 77);
    test_gguf_kv_raw(w, "weird.arr", 9, GGUF_TYPE_ARRAY, arr, sizeof arr);
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    expect_refused(buf, len, ERR_CORRUPT, "element type 77", "weird.arr");
}

static void test_nested_array(void **state)
{
    (void)state;
    struct test_gguf *w = test_gguf_new(3);
    uint8_t arr[12 + 12 + 4];
    put32(arr, GGUF_TYPE_ARRAY);
    put64(arr + 4, 1);
    put32(arr + 12, GGUF_TYPE_UINT32);
    put64(arr + 16, 1);
    put32(arr + 24, 7);
    test_gguf_kv_raw(w, "nested", 6, GGUF_TYPE_ARRAY, arr, sizeof arr);
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    expect_refused(buf, len, ERR_CORRUPT, "nested", "nested");
}

static void test_bad_keys(void **state)
{
    (void)state;
    struct test_gguf *w = test_gguf_new(3);
    test_gguf_u32(w, "a.key", 1);
    test_gguf_str(w, "a.key", "again");
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    expect_refused(buf, len, ERR_CORRUPT, "duplicate key 'a.key'", "a.key");

    w = test_gguf_new(3);
    uint64_t v = 1;
    test_gguf_kv_raw(w, "", 0, GGUF_TYPE_UINT64, &v, 8);
    buf = test_gguf_finish(w, &len);
    expect_refused(buf, len, ERR_CORRUPT, "empty key", NULL);

    /* Control characters from the file never reach the message. */
    w = test_gguf_new(3);
    uint8_t junk[4] = {0};
    test_gguf_kv_raw(w, "\x1b[31mred", 8, 99, junk, 4);
    buf = test_gguf_finish(w, &len);
    struct err e;
    uint8_t *copy;
    assert_null(open_exact(buf, len, &e, &copy));
    assert_null(strchr(e.msg, '\x1b'));
    assert_null(strchr(e.param, '\x1b'));
    assert_non_null(strstr(e.msg, "?[31mred"));
    free(copy);
    free(buf);
}

static void test_bad_alignment(void **state)
{
    (void)state;
    uint32_t bad[] = {0, 3, 48, 0x80000001u};
    for (size_t i = 0; i < 4; i++) {
        struct test_gguf *w = test_gguf_new(3);
        test_gguf_u32(w, "general.alignment", bad[i]);
        size_t len;
        uint8_t *buf = test_gguf_finish(w, &len);
        expect_refused(buf, len, ERR_CORRUPT, "general.alignment", "general.alignment");
    }
    struct test_gguf *w = test_gguf_new(3);
    test_gguf_str(w, "general.alignment", "32");
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    expect_refused(buf, len, ERR_CORRUPT, "general.alignment", "general.alignment");
}

static void test_misaligned_offset(void **state)
{
    (void)state;
    struct test_gguf *w = test_gguf_new(3);
    test_gguf_tensor_raw(w, "w.misaligned", 1, (const uint64_t[]){4}, GGML_TYPE_F32, 8);
    uint8_t data[64] = {0};
    test_gguf_data_raw(w, data, sizeof data);
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    expect_refused(buf, len, ERR_CORRUPT, "w.misaligned", "w.misaligned");
}

static void test_data_out_of_bounds(void **state)
{
    (void)state;
    uint64_t offsets[] = {32, 1ull << 40, UINT64_MAX - 31};
    for (size_t i = 0; i < 3; i++) {
        struct test_gguf *w = test_gguf_new(3);
        test_gguf_tensor_raw(w, "w.oob", 1, (const uint64_t[]){16}, GGML_TYPE_F32, offsets[i]);
        uint8_t data[64] = {0}; /* 16 floats at offset 32 need 96 bytes */
        test_gguf_data_raw(w, data, sizeof data);
        size_t len;
        uint8_t *buf = test_gguf_finish(w, &len);
        expect_refused(buf, len, ERR_CORRUPT, "w.oob", "w.oob");
    }
}

static void test_bad_dims(void **state)
{
    (void)state;
    struct {
        uint32_t n_dims;
        uint64_t ne[4];
        uint32_t type;
        const char *needle;
    } cases[] = {
        {2, {1ull << 32, 1ull << 32}, GGML_TYPE_F32, "overflow"},
        {1, {1ull << 63}, GGML_TYPE_F32, "overflow"},
        {4, {1ull << 20, 1ull << 20, 1ull << 20, 1ull << 20}, GGML_TYPE_F32, "overflow"},
        {1, {(1ull << 60)}, GGML_TYPE_F32, "past the end"}, /* size fits, file does not */
        {0, {0}, GGML_TYPE_F32, "n_dims 0"},
        {5, {1, 1, 1, 1}, GGML_TYPE_F32, "n_dims 5"},
        {2, {4, 0}, GGML_TYPE_F32, "dimension 1 is 0"},
        {1, {33}, GGML_TYPE_Q8_0, "multiple"},
        {1, {128}, GGML_TYPE_Q4_K, "multiple"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct test_gguf *w = test_gguf_new(3);
        /* n_dims 5 needs a fifth dimension on the wire to be well-formed. */
        uint64_t ne[5] = {cases[i].ne[0], cases[i].ne[1], cases[i].ne[2], cases[i].ne[3], 1};
        test_gguf_tensor_raw(w, "w.dims", cases[i].n_dims, ne, cases[i].type, 0);
        uint8_t data[256] = {0};
        test_gguf_data_raw(w, data, sizeof data);
        size_t len;
        uint8_t *buf = test_gguf_finish(w, &len);
        expect_refused(buf, len, ERR_CORRUPT, cases[i].needle, "w.dims");
    }
}

static void test_unknown_ggml_type(void **state)
{
    (void)state;
    uint32_t bad[] = {4, 5, 16, 29, 31, 1000, 0xffffffffu};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct test_gguf *w = test_gguf_new(3);
        test_gguf_tensor_raw(w, "w.type", 1, (const uint64_t[]){256}, bad[i], 0);
        uint8_t data[1024] = {0};
        test_gguf_data_raw(w, data, sizeof data);
        size_t len;
        uint8_t *buf = test_gguf_finish(w, &len);
        expect_refused(buf, len, ERR_CORRUPT, "unknown ggml type", "w.type");
    }
}

static void test_bad_tensor_table(void **state)
{
    (void)state;
    struct test_gguf *w = test_gguf_new(3);
    test_gguf_tensor(w, "same", 1, (const uint64_t[]){8}, GGML_TYPE_F32, NULL);
    test_gguf_tensor(w, "same", 1, (const uint64_t[]){8}, GGML_TYPE_F32, NULL);
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    expect_refused(buf, len, ERR_CORRUPT, "duplicate tensor name 'same'", "same");

    w = test_gguf_new(3);
    test_gguf_tensor_raw(w, "first", 1, (const uint64_t[]){16}, GGML_TYPE_F32, 0);
    test_gguf_tensor_raw(w, "second", 1, (const uint64_t[]){16}, GGML_TYPE_F32, 32);
    uint8_t data[128] = {0};
    test_gguf_data_raw(w, data, sizeof data);
    buf = test_gguf_finish(w, &len);
    expect_refused(buf, len, ERR_CORRUPT, "overlaps tensor 'first'", "second");

    w = test_gguf_new(3);
    test_gguf_tensor_raw(w, "", 1, (const uint64_t[]){16}, GGML_TYPE_F32, 0);
    test_gguf_data_raw(w, data, sizeof data);
    buf = test_gguf_finish(w, &len);
    expect_refused(buf, len, ERR_CORRUPT, "empty name", NULL);
}

static void test_bool_value(void **state)
{
    (void)state;
    struct test_gguf *w = test_gguf_new(3);
    uint8_t two = 2;
    test_gguf_kv_raw(w, "b", 1, GGUF_TYPE_BOOL, &two, 1);
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    struct gguf_file *f = NULL;
    struct err e;
    assert_true(gguf_open_memory(buf, len, &f, &e));
    bool b;
    assert_false(gguf_get_bool(f, "b", &b, &e));
    assert_int_equal(e.code, ERR_CORRUPT);
    assert_string_equal(e.param, "b");
    gguf_close(f);
    free(buf);
}

/* ---- shared files ------------------------------------------------------------------ */

static void open_all_in(const char *rel, int *opened)
{
    const char *dir = test_shared_path(rel);
    if (!dir)
        return;
    char dirpath[4096];
    snprintf(dirpath, sizeof dirpath, "%s", dir);
    DIR *d = opendir(dirpath);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 5, ".gguf") != 0)
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dirpath, de->d_name);
        struct gguf_file *f = NULL;
        struct err e = {0};
        if (!gguf_open(path, &f, &e))
            fail_msg("%s: %s", path, e.msg);
        /* Walk everything through the accessors. */
        for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
            const struct gguf_kv *kv = gguf_kv_at(f, i);
            if (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_STRING)
                for (uint64_t j = 0; j < kv->arr_len; j++)
                    (void)gguf_kv_arr_str(kv, j);
        }
        uint64_t total = 0;
        for (uint64_t i = 0; i < gguf_tensor_count(f); i++)
            total += gguf_tensor_at(f, i)->n_bytes;
        assert_true(total <= gguf_file_size(f));
        gguf_close(f);
        (*opened)++;
    }
    closedir(d);
}

static void test_shared_files_open(void **state)
{
    (void)state;
    int opened = 0;
    open_all_in("models", &opened);
    open_all_in("reference", &opened);
    open_all_in("tokenizers", &opened);
    fprintf(stderr, "opened %d shared GGUF files\n", opened);
}

static void test_reference_tensor_tables(void **state)
{
    (void)state;
    const char *names[] = {"ref-llama-f32", "ref-llama-f16", "ref-llama-bf16", "ref-llama-q8_0",
                           "ref-qwen2-f32"};
    for (size_t m = 0; m < sizeof names / sizeof names[0]; m++) {
        char rel[128];
        snprintf(rel, sizeof rel, "reference/%s.json", names[m]);
        const char *p = test_shared_path(rel);
        if (!p)
            return;
        char *text = test_read_file(p, NULL);
        assert_non_null(text);
        cJSON *root = cJSON_Parse(text);
        free(text);
        assert_non_null(root);
        snprintf(rel, sizeof rel, "reference/%s.gguf", names[m]);
        p = test_shared_path(rel);
        assert_non_null(p);
        struct gguf_file *f = NULL;
        struct err e = {0};
        if (!gguf_open(p, &f, &e))
            fail_msg("%s", e.msg);
        const cJSON *tt = cJSON_GetObjectItemCaseSensitive(root, "tensor_types");
        assert_int_equal((uint64_t)cJSON_GetArraySize(tt), gguf_tensor_count(f));
        const cJSON *it;
        cJSON_ArrayForEach(it, tt)
        {
            const struct gguf_tensor *t = gguf_tensor_find(f, it->string);
            if (!t)
                fail_msg("%s: tensor %s missing", names[m], it->string);
            const char *type = cJSON_GetObjectItemCaseSensitive(it, "type")->valuestring;
            const char *have = ggml_type_name(t->type);
            assert_int_equal(strlen(type), strlen(have));
            for (size_t i = 0; type[i]; i++)
                assert_int_equal(type[i] | 0x20, have[i] | 0x20); /* "Q8_0" vs "q8_0" */
            const cJSON *ne = cJSON_GetObjectItemCaseSensitive(it, "ne");
            assert_int_equal((uint32_t)cJSON_GetArraySize(ne), t->n_dims);
            for (uint32_t d = 0; d < t->n_dims; d++)
                assert_int_equal((uint64_t)cJSON_GetArrayItem(ne, (int)d)->valuedouble,
                                 t->ne[d]);
        }
        /* Typed getters on real metadata. */
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(root, "size_bytes");
        assert_int_equal((uint64_t)size->valuedouble, gguf_file_size(f));
        uint32_t n_layer;
        const cJSON *hp = cJSON_GetObjectItemCaseSensitive(root, "hparams");
        const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architecture");
        char key[64];
        snprintf(key, sizeof key, "%s.block_count", arch->valuestring);
        assert_true(gguf_get_u32(f, key, &n_layer, &e));
        assert_int_equal(n_layer,
                         (uint32_t)cJSON_GetObjectItemCaseSensitive(hp, "n_layer")->valuedouble);
        gguf_close(f);
        cJSON_Delete(root);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_v2_v3),
        cmocka_unit_test(test_open_file),
        cmocka_unit_test(test_alignment_key),
        cmocka_unit_test(test_no_tensors),
        cmocka_unit_test(test_large_index),
        cmocka_unit_test(test_type_facts),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_bad_version),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_huge_string_length),
        cmocka_unit_test(test_huge_array_length),
        cmocka_unit_test(test_bad_value_type),
        cmocka_unit_test(test_nested_array),
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_bad_alignment),
        cmocka_unit_test(test_misaligned_offset),
        cmocka_unit_test(test_data_out_of_bounds),
        cmocka_unit_test(test_bad_dims),
        cmocka_unit_test(test_unknown_ggml_type),
        cmocka_unit_test(test_bad_tensor_table),
        cmocka_unit_test(test_bool_value),
        cmocka_unit_test(test_shared_files_open),
        cmocka_unit_test(test_reference_tensor_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
