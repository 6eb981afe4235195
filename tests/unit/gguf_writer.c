/* gguf_writer.c — see gguf_writer.h. */
#include "tests/unit/gguf_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"

struct bytes {
    uint8_t *p;
    size_t len, cap;
};

struct test_gguf {
    uint32_t version;
    uint32_t alignment;
    uint64_t n_kv, n_tensors;
    struct bytes kv, info, data;
};

static void put(struct bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put_u32(struct bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct bytes *b, uint64_t v) { put(b, &v, 8); }

static void put_str(struct bytes *b, const char *s, size_t n)
{
    put_u64(b, n);
    put(b, s, n);
}

struct test_gguf *test_gguf_new(uint32_t version)
{
    struct test_gguf *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    w->version = version;
    w->alignment = 32;
    return w;
}

void test_gguf_kv_raw(struct test_gguf *w, const char *key, size_t key_len, uint32_t type,
                      const void *value, size_t n)
{
    put_str(&w->kv, key, key_len);
    put_u32(&w->kv, type);
    put(&w->kv, value, n);
    w->n_kv++;
}

static void scalar(struct test_gguf *w, const char *key, uint32_t type, const void *v, size_t n)
{
    test_gguf_kv_raw(w, key, strlen(key), type, v, n);
}

void test_gguf_u8(struct test_gguf *w, const char *k, uint8_t v) { scalar(w, k, GGUF_TYPE_UINT8, &v, 1); }
void test_gguf_i8(struct test_gguf *w, const char *k, int8_t v) { scalar(w, k, GGUF_TYPE_INT8, &v, 1); }
void test_gguf_u16(struct test_gguf *w, const char *k, uint16_t v) { scalar(w, k, GGUF_TYPE_UINT16, &v, 2); }
void test_gguf_i16(struct test_gguf *w, const char *k, int16_t v) { scalar(w, k, GGUF_TYPE_INT16, &v, 2); }
void test_gguf_u32(struct test_gguf *w, const char *k, uint32_t v) { scalar(w, k, GGUF_TYPE_UINT32, &v, 4); }
void test_gguf_i32(struct test_gguf *w, const char *k, int32_t v) { scalar(w, k, GGUF_TYPE_INT32, &v, 4); }
void test_gguf_u64(struct test_gguf *w, const char *k, uint64_t v) { scalar(w, k, GGUF_TYPE_UINT64, &v, 8); }
void test_gguf_i64(struct test_gguf *w, const char *k, int64_t v) { scalar(w, k, GGUF_TYPE_INT64, &v, 8); }
void test_gguf_f32(struct test_gguf *w, const char *k, float v) { scalar(w, k, GGUF_TYPE_FLOAT32, &v, 4); }
void test_gguf_f64(struct test_gguf *w, const char *k, double v) { scalar(w, k, GGUF_TYPE_FLOAT64, &v, 8); }

void test_gguf_bool(struct test_gguf *w, const char *k, bool v)
{
    uint8_t b = v;
    scalar(w, k, GGUF_TYPE_BOOL, &b, 1);
}

void test_gguf_str(struct test_gguf *w, const char *key, const char *v)
{
    put_str(&w->kv, key, strlen(key));
    put_u32(&w->kv, GGUF_TYPE_STRING);
    put_str(&w->kv, v, strlen(v));
    w->n_kv++;
}

void test_gguf_arr(struct test_gguf *w, const char *key, uint32_t elem_type, const void *elems,
                   uint64_t n)
{
    put_str(&w->kv, key, strlen(key));
    put_u32(&w->kv, GGUF_TYPE_ARRAY);
    put_u32(&w->kv, elem_type);
    put_u64(&w->kv, n);
    put(&w->kv, elems, (size_t)(n * gguf_type_size((enum gguf_type)elem_type)));
    w->n_kv++;
}

void test_gguf_arr_str(struct test_gguf *w, const char *key, const char *const *v,
                       const size_t *lens, uint64_t n)
{
    put_str(&w->kv, key, strlen(key));
    put_u32(&w->kv, GGUF_TYPE_ARRAY);
    put_u32(&w->kv, GGUF_TYPE_STRING);
    put_u64(&w->kv, n);
    for (uint64_t i = 0; i < n; i++)
        put_str(&w->kv, v[i], lens ? lens[i] : strlen(v[i]));
    w->n_kv++;
}

void test_gguf_alignment(struct test_gguf *w, uint32_t align)
{
    test_gguf_u32(w, "general.alignment", align);
    w->alignment = align;
}

void test_gguf_tensor_raw(struct test_gguf *w, const char *name, uint32_t n_dims,
                          const uint64_t *ne, uint32_t type, uint64_t offset)
{
    put_str(&w->info, name, strlen(name));
    put_u32(&w->info, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        put_u64(&w->info, ne[d]);
    put_u32(&w->info, type);
    put_u64(&w->info, offset);
    w->n_tensors++;
}

void test_gguf_data_raw(struct test_gguf *w, const void *bytes, size_t n)
{
    put(&w->data, bytes, n);
}

static void pad(struct bytes *b, size_t align)
{
    static const uint8_t zeros[64];
    while (b->len % align)
        put(b, zeros, align - b->len % align > sizeof zeros ? sizeof zeros
                                                            : align - b->len % align);
}

uint64_t test_gguf_tensor(struct test_gguf *w, const char *name, uint32_t n_dims,
                          const uint64_t *ne, uint32_t type, const void *data)
{
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++)
        n *= ne[d];
    uint64_t bytes = n / ggml_type_block_elems(type) * ggml_type_block_bytes(type);
    pad(&w->data, w->alignment);
    uint64_t off = w->data.len;
    test_gguf_tensor_raw(w, name, n_dims, ne, type, off);
    if (data) {
        put(&w->data, data, bytes);
    } else {
        for (uint64_t i = 0; i < bytes; i++) {
            uint8_t b = (uint8_t)(i * 31 + off);
            put(&w->data, &b, 1);
        }
    }
    return off;
}

uint8_t *test_gguf_finish(struct test_gguf *w, size_t *len)
{
    struct bytes out = {0};
    put(&out, "GGUF", 4);
    put_u32(&out, w->version);
    put_u64(&out, w->n_tensors);
    put_u64(&out, w->n_kv);
    put(&out, w->kv.p, w->kv.len);
    put(&out, w->info.p, w->info.len);
    if (w->data.len) {
        pad(&out, w->alignment);
        put(&out, w->data.p, w->data.len);
    }
    free(w->kv.p);
    free(w->info.p);
    free(w->data.p);
    free(w);
    *len = out.len;
    if (!out.p) /* keep a valid pointer for an empty file */
        out.p = malloc(1);
    return out.p;
}

bool test_gguf_save(const uint8_t *buf, size_t len, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(buf, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}
