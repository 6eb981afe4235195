/* fuzz_gguf.c — libFuzzer target for the GGUF reader: any bytes either fail
 * to open cleanly or open into a file whose every accessor stays inside the
 * buffer (ASan checks the reads, tensor data included). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void walk_kv(const struct gguf_file *f, const struct gguf_kv *kv)
{
    char key[256];
    size_t n = kv->key.len < sizeof key - 1 ? (size_t)kv->key.len : sizeof key - 1;
    memcpy(key, kv->key.ptr, n);
    key[n] = '\0';
    struct err e;
    uint32_t u32;
    uint64_t u64;
    int32_t i32;
    float f32;
    bool b;
    struct gguf_str s;
    const struct gguf_kv *arr;
    /* Every getter on every key: right types succeed, others fail cleanly. A
     * key with a NUL inside or longer than the buffer finds another or none. */
    sink += gguf_get_u32(f, key, &u32, &e) ? u32 : 0;
    sink += gguf_get_u64(f, key, &u64, &e) ? u64 : 0;
    sink += gguf_get_i32(f, key, &i32, &e) ? (uint64_t)i32 : 0;
    sink += gguf_get_f32(f, key, &f32, &e) ? (uint64_t)(f32 == f32) : 0;
    sink += gguf_get_bool(f, key, &b, &e) ? b : 0;
    sink += gguf_get_str(f, key, &s, &e) ? (s.len ? (uint8_t)s.ptr[s.len - 1] : 0) : 0;
    if (kv->type != GGUF_TYPE_ARRAY)
        return;
    sink += gguf_get_arr(f, key, kv->arr_type, &arr, &e);
    for (uint64_t i = 0; i <= kv->arr_len && i < 4096; i++) {
        struct gguf_str el = gguf_kv_arr_str(kv, i);
        sink += el.len ? (uint8_t)el.ptr[0] + (uint8_t)el.ptr[el.len - 1] : 0;
        float x = gguf_kv_arr_f32(kv, i);
        sink += (uint64_t)(x == x) + (uint64_t)gguf_kv_arr_i32(kv, i) + gguf_kv_arr_u32(kv, i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gguf_file *f = NULL;
    struct err e;
    if (!gguf_open_memory(data, size, &f, &e))
        return 0;
    sink += gguf_version(f) + gguf_alignment(f) + gguf_file_size(f);
    for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
        const struct gguf_kv *kv = gguf_kv_at(f, i);
        walk_kv(f, kv);
    }
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(f, i);
        char name[256];
        size_t n = t->name.len < sizeof name - 1 ? (size_t)t->name.len : sizeof name - 1;
        memcpy(name, t->name.ptr, n);
        name[n] = '\0';
        sink += gguf_tensor_find(f, name) != NULL;
        sink += gguf_tensor_file_offset(f, t);
        /* Data is contiguous: its first and last bytes bound it for ASan. */
        const uint8_t *p = t->data;
        sink += p[0] + p[t->n_bytes - 1];
        sink += ggml_type_block_bytes(t->type) + ggml_type_block_elems(t->type);
        sink += ggml_type_name(t->type)[0];
    }
    gguf_close(f);
    return 0;
}
