/* gguf.c — see gguf.h.
 *
 * Parsing is one forward pass over the bytes with a cursor that checks every
 * read against the bytes that remain, so validation itself never reads out
 * of bounds. Counts from the header are bounded by the smallest encoding of
 * one item before anything is allocated, which keeps allocation proportional
 * to the file's real size whatever the header claims.
 */
#include "engine/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_ALIGNMENT_KEY "general.alignment"
/* Smallest encodings: a kv is a 1-byte key (8 + 1), a type (4) and a 1-byte
 * value; a tensor info is a 1-byte name, n_dims, one dimension, type and
 * offset. */
#define KV_MIN_BYTES (8 + 1 + 4 + 1)
#define TENSOR_MIN_BYTES (8 + 1 + 4 + 8 + 4 + 8)

struct gguf_file {
    const uint8_t *base;
    uint64_t size;
    bool mapped; /* munmap at close */
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset; /* start of the tensor data section */
    uint64_t n_kv;
    struct gguf_kv *kv;
    uint64_t n_tensors;
    struct gguf_tensor *tensors;
    /* Open-addressing hash tables of index + 1 (0 = empty slot); a power of
     * two at least twice the item count, so probes stay short. */
    uint64_t *kv_slots;
    uint64_t kv_mask;
    uint64_t *tensor_slots;
    uint64_t tensor_mask;
};

/* ---- ggml type facts ------------------------------------------------------ */

struct ggml_type_info {
    const char *name;
    uint32_t block_elems;
    uint32_t block_bytes;
};

static const struct ggml_type_info *ggml_type_lookup(uint32_t t)
{
    /* Sizes of ggml's block structs (ggml-common.h); QK_K = 256. */
    static const struct ggml_type_info table[] = {
        [GGML_TYPE_F32] = {"f32", 1, 4},
        [GGML_TYPE_F16] = {"f16", 1, 2},
        [GGML_TYPE_Q4_0] = {"q4_0", 32, 2 + 16},
        [GGML_TYPE_Q4_1] = {"q4_1", 32, 2 + 2 + 16},
        [GGML_TYPE_Q5_0] = {"q5_0", 32, 2 + 4 + 16},
        [GGML_TYPE_Q5_1] = {"q5_1", 32, 2 + 2 + 4 + 16},
        [GGML_TYPE_Q8_0] = {"q8_0", 32, 2 + 32},
        [GGML_TYPE_Q8_1] = {"q8_1", 32, 2 + 2 + 32},
        [GGML_TYPE_Q2_K] = {"q2_k", 256, 16 + 64 + 2 + 2},
        [GGML_TYPE_Q3_K] = {"q3_k", 256, 32 + 64 + 12 + 2},
        [GGML_TYPE_Q4_K] = {"q4_k", 256, 2 + 2 + 12 + 128},
        [GGML_TYPE_Q5_K] = {"q5_k", 256, 2 + 2 + 12 + 32 + 128},
        [GGML_TYPE_Q6_K] = {"q6_k", 256, 128 + 64 + 16 + 2},
        [GGML_TYPE_Q8_K] = {"q8_k", 256, 4 + 256 + 16 * 2},
        [GGML_TYPE_BF16] = {"bf16", 1, 2},
    };
    if (t >= sizeof table / sizeof table[0] || !table[t].name)
        return NULL;
    return &table[t];
}

const char *ggml_type_name(enum ggml_type t)
{
    const struct ggml_type_info *ti = ggml_type_lookup((uint32_t)t);
    return ti ? ti->name : NULL;
}

uint32_t ggml_type_block_elems(enum ggml_type t)
{
    const struct ggml_type_info *ti = ggml_type_lookup((uint32_t)t);
    return ti ? ti->block_elems : 0;
}

uint32_t ggml_type_block_bytes(enum ggml_type t)
{
    const struct ggml_type_info *ti = ggml_type_lookup((uint32_t)t);
    return ti ? ti->block_bytes : 0;
}

/* ---- metadata value types -------------------------------------------------- */

static const char *const gguf_type_names[] = {
    [GGUF_TYPE_UINT8] = "u8",     [GGUF_TYPE_INT8] = "i8",
    [GGUF_TYPE_UINT16] = "u16",   [GGUF_TYPE_INT16] = "i16",
    [GGUF_TYPE_UINT32] = "u32",   [GGUF_TYPE_INT32] = "i32",
    [GGUF_TYPE_FLOAT32] = "f32",  [GGUF_TYPE_BOOL] = "bool",
    [GGUF_TYPE_STRING] = "string", [GGUF_TYPE_ARRAY] = "array",
    [GGUF_TYPE_UINT64] = "u64",   [GGUF_TYPE_INT64] = "i64",
    [GGUF_TYPE_FLOAT64] = "f64",
};

const char *gguf_type_name(enum gguf_type t)
{
    if ((uint32_t)t >= sizeof gguf_type_names / sizeof gguf_type_names[0])
        return NULL;
    return gguf_type_names[t];
}

uint64_t gguf_type_size(enum gguf_type t)
{
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

/* ---- little-endian loads (the host may be anything) ------------------------ */

static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld64(const uint8_t *p) { return ld32(p) | (uint64_t)ld32(p + 4) << 32; }

static float ldf32(const uint8_t *p)
{
    uint32_t u = ld32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static double ldf64(const uint8_t *p)
{
    uint64_t u = ld64(p);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* An integer scalar as sign + magnitude, so every integer type (u64 and i64
 * included) compares exactly against any target range. */
struct gguf_int {
    bool negative;
    uint64_t magnitude;
};

static bool gguf_load_int(uint32_t type, const uint8_t *p, struct gguf_int *out)
{
    int64_t s;
    switch (type) {
    case GGUF_TYPE_UINT8: *out = (struct gguf_int){false, p[0]}; return true;
    case GGUF_TYPE_UINT16: *out = (struct gguf_int){false, ld16(p)}; return true;
    case GGUF_TYPE_UINT32: *out = (struct gguf_int){false, ld32(p)}; return true;
    case GGUF_TYPE_UINT64: *out = (struct gguf_int){false, ld64(p)}; return true;
    case GGUF_TYPE_INT8: s = (int8_t)p[0]; break;
    case GGUF_TYPE_INT16: s = (int16_t)ld16(p); break;
    case GGUF_TYPE_INT32: s = (int32_t)ld32(p); break;
    case GGUF_TYPE_INT64: s = (int64_t)ld64(p); break;
    default: return false;
    }
    out->negative = s < 0;
    out->magnitude = s < 0 ? 0 - (uint64_t)s : (uint64_t)s;
    return true;
}

static int64_t gguf_int_as_i64(struct gguf_int v)
{
    return v.negative ? (int64_t)(0 - v.magnitude) : (int64_t)v.magnitude;
}

/* ---- errors ------------------------------------------------------------------ */

/* A printable copy of a name from the file: a hostile file must not be able
 * to put terminal escapes into our messages. */
static void name_copy(struct gguf_str s, char *out, size_t size)
{
    size_t n = s.len < size - 1 ? (size_t)s.len : size - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[n] = '\0';
    if (s.len > n && size > 4)
        memcpy(out + size - 4, "...", 4);
}

/* A key or tensor name for a message: printable, at most 80 characters.
 * The temporary lives until the end of the full expression that uses `.s`. */
struct shown {
    char s[84];
};

static struct shown shown(struct gguf_str s)
{
    struct shown out;
    name_copy(s, out.s, sizeof out.s);
    return out;
}

static bool corrupt_at(struct err *e, struct gguf_str who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ERR_CORRUPT with param naming the key or tensor at fault (when there is
 * one, made printable); the caller's message names it too. */
static bool corrupt_at(struct err *e, struct gguf_str who, const char *fmt, ...)
{
    if (!e)
        return false;
    char msg[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char param[sizeof e->param];
    param[0] = '\0';
    if (who.ptr)
        name_copy(who, param, sizeof param);
    return err_set_param(e, ERR_CORRUPT, param, "%s", msg);
}

/* ---- cursor ------------------------------------------------------------------ */

struct cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos; /* invariant: pos <= size */
};

static uint64_t cur_left(const struct cursor *c) { return c->size - c->pos; }

static bool cur_has(const struct cursor *c, uint64_t n) { return n <= cur_left(c); }

static const uint8_t *cur_take(struct cursor *c, uint64_t n)
{
    const uint8_t *p = c->base + c->pos;
    c->pos += n;
    return p;
}

/* `what` describes the field for the message ("key 'x': value"). */
static bool cur_u32(struct cursor *c, uint32_t *v, struct gguf_str who,
                    const char *what, struct err *e)
{
    if (!cur_has(c, 4))
        return corrupt_at(e, who, "%s at offset %llu: truncated (file ends at %llu)", what,
                          (unsigned long long)c->pos, (unsigned long long)c->size);
    *v = ld32(cur_take(c, 4));
    return true;
}

static bool cur_u64(struct cursor *c, uint64_t *v, struct gguf_str who,
                    const char *what, struct err *e)
{
    if (!cur_has(c, 8))
        return corrupt_at(e, who, "%s at offset %llu: truncated (file ends at %llu)", what,
                          (unsigned long long)c->pos, (unsigned long long)c->size);
    *v = ld64(cur_take(c, 8));
    return true;
}

static bool cur_str(struct cursor *c, struct gguf_str *s, struct gguf_str who,
                    const char *what, struct err *e)
{
    uint64_t at = c->pos, len = 0;
    if (!cur_u64(c, &len, who, what, e))
        return false;
    if (!cur_has(c, len))
        return corrupt_at(e, who,
                          "%s at offset %llu: string length %llu exceeds the %llu bytes left",
                          what, (unsigned long long)at, (unsigned long long)len,
                          (unsigned long long)cur_left(c));
    s->ptr = (const char *)cur_take(c, len);
    s->len = len;
    return true;
}

/* ---- hash index ----------------------------------------------------------------- */

static uint64_t hash_bytes(const char *p, uint64_t n)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (uint64_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static bool str_eq_n(struct gguf_str a, const char *p, uint64_t n)
{
    return a.len == n && (n == 0 || memcmp(a.ptr, p, n) == 0);
}

static bool slots_alloc(uint64_t n, uint64_t **slots, uint64_t *mask)
{
    uint64_t cap = 8;
    while (cap < 2 * n)
        cap *= 2;
    *slots = calloc(cap, sizeof **slots);
    *mask = cap - 1;
    return *slots != NULL;
}

/* Find the slot of name `p`/`n`: its entry's index + 1, or the empty slot
 * where it would go. `name_of` maps an index to its stored name. */
static uint64_t *slots_probe(uint64_t *slots, uint64_t mask, const char *p, uint64_t n,
                             const void *items, size_t stride, size_t name_off)
{
    uint64_t i = hash_bytes(p, n) & mask;
    for (;;) {
        uint64_t *slot = &slots[i];
        if (*slot == 0)
            return slot;
        const struct gguf_str *name =
            (const struct gguf_str *)((const char *)items + (*slot - 1) * stride + name_off);
        if (str_eq_n(*name, p, n))
            return slot;
        i = (i + 1) & mask;
    }
}

static uint64_t *kv_slot(const struct gguf_file *f, const char *p, uint64_t n)
{
    return slots_probe(f->kv_slots, f->kv_mask, p, n, f->kv, sizeof *f->kv,
                       offsetof(struct gguf_kv, key));
}

static uint64_t *tensor_slot(const struct gguf_file *f, const char *p, uint64_t n)
{
    return slots_probe(f->tensor_slots, f->tensor_mask, p, n, f->tensors, sizeof *f->tensors,
                       offsetof(struct gguf_tensor, name));
}

/* ---- metadata -------------------------------------------------------------------- */

static bool parse_array(struct cursor *c, struct gguf_kv *kv, struct err *e)
{
    uint32_t et;
    uint64_t at = c->pos;
    if (!cur_u32(c, &et, kv->key, "array element type", e) ||
        !cur_u64(c, &kv->arr_len, kv->key, "array length", e))
        return false;
    if (et == GGUF_TYPE_ARRAY)
        return corrupt_at(e, kv->key, "key '%s' at offset %llu: nested arrays are not supported",
                          shown(kv->key).s,
                          (unsigned long long)at);
    if (et != GGUF_TYPE_STRING && gguf_type_size((enum gguf_type)et) == 0)
        return corrupt_at(e, kv->key, "key '%s' at offset %llu: unknown array element type %u",
                          shown(kv->key).s,
                          (unsigned long long)at, et);
    kv->arr_type = (enum gguf_type)et;
    kv->data = c->base + c->pos;
    uint64_t esize = et == GGUF_TYPE_STRING ? 8 : gguf_type_size((enum gguf_type)et);
    /* Each element takes at least esize bytes: a length beyond what is left
     * is refused before anything is allocated for it. */
    if (kv->arr_len > cur_left(c) / esize)
        return corrupt_at(e, kv->key,
                          "key '%s' at offset %llu: array of %llu %s elements exceeds the %llu bytes left",
                          shown(kv->key).s,
                          (unsigned long long)at, (unsigned long long)kv->arr_len,
                          gguf_type_name(kv->arr_type), (unsigned long long)cur_left(c));
    if (et != GGUF_TYPE_STRING) {
        cur_take(c, kv->arr_len * esize);
        return true;
    }
    uint64_t *off = NULL;
    if (kv->arr_len > 0 && !(off = malloc(kv->arr_len * sizeof *off)))
        return err_set(e, ERR_NOMEM, "out of memory indexing key '%s'",
                       shown(kv->key).s);
    kv->arr_str_off = off;
    for (uint64_t i = 0; i < kv->arr_len; i++) {
        off[i] = c->pos - (uint64_t)(kv->data - c->base);
        struct gguf_str s;
        if (!cur_str(c, &s, kv->key, "array string element", e))
            return err_wrap(e, "key '%s', element %llu",
                            shown(kv->key).s,
                            (unsigned long long)i);
    }
    return true;
}

static bool parse_kv(struct gguf_file *f, struct cursor *c, uint64_t i, struct err *e)
{
    struct gguf_kv *kv = &f->kv[i];
    struct gguf_str none = {0};
    uint64_t at = c->pos;
    if (!cur_str(c, &kv->key, none, "key", e))
        return err_wrap(e, "metadata entry %llu", (unsigned long long)i);
    if (kv->key.len == 0)
        return corrupt_at(e, none, "metadata entry %llu at offset %llu has an empty key",
                          (unsigned long long)i, (unsigned long long)at);
    const struct shown kn = shown(kv->key);
    const char *kl = kn.s;
    uint64_t *slot = kv_slot(f, kv->key.ptr, kv->key.len);
    if (*slot)
        return corrupt_at(e, kv->key, "duplicate key '%s' at offset %llu", kl,
                          (unsigned long long)at);
    uint32_t t;
    if (!cur_u32(c, &t, kv->key, "value type", e))
        return err_wrap(e, "key '%s'", kl);
    if (!gguf_type_name((enum gguf_type)t))
        return corrupt_at(e, kv->key, "key '%s' at offset %llu: unknown value type %u", kl, (unsigned long long)(c->pos - 4), t);
    kv->type = (enum gguf_type)t;
    if (t == GGUF_TYPE_STRING) {
        if (!cur_str(c, &kv->str, kv->key, "string value", e))
            return err_wrap(e, "key '%s'", kl);
        kv->data = (const uint8_t *)kv->str.ptr;
    } else if (t == GGUF_TYPE_ARRAY) {
        if (!parse_array(c, kv, e))
            return false;
    } else {
        uint64_t n = gguf_type_size((enum gguf_type)t);
        if (!cur_has(c, n))
            return corrupt_at(e, kv->key, "key '%s' at offset %llu: %s value truncated", kl, (unsigned long long)c->pos, gguf_type_name(kv->type));
        kv->data = cur_take(c, n);
    }
    *slot = i + 1;
    return true;
}

static bool read_alignment(struct gguf_file *f, struct err *e)
{
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *kv = gguf_kv_find(f, GGUF_ALIGNMENT_KEY);
    if (!kv)
        return true;
    struct gguf_int v;
    struct gguf_str key = kv->key;
    if (!gguf_load_int(kv->type, kv->data, &v))
        return corrupt_at(e, key, "key '" GGUF_ALIGNMENT_KEY "': type %s is not an integer",
                          gguf_type_name(kv->type));
    if (v.negative || v.magnitude == 0 || v.magnitude > UINT32_MAX ||
        (v.magnitude & (v.magnitude - 1)) != 0)
        return corrupt_at(e, key, "key '" GGUF_ALIGNMENT_KEY "': %s%llu is not a power of two",
                          v.negative ? "-" : "", (unsigned long long)v.magnitude);
    f->alignment = v.magnitude;
    return true;
}

/* ---- tensors ------------------------------------------------------------------------ */

static bool parse_tensor(struct gguf_file *f, struct cursor *c, uint64_t i, uint64_t *rel_off,
                         struct err *e)
{
    struct gguf_tensor *t = &f->tensors[i];
    struct gguf_str none = {0};
    uint64_t at = c->pos;
    if (!cur_str(c, &t->name, none, "tensor name", e))
        return err_wrap(e, "tensor %llu", (unsigned long long)i);
    if (t->name.len == 0)
        return corrupt_at(e, none, "tensor %llu at offset %llu has an empty name",
                          (unsigned long long)i, (unsigned long long)at);
    uint64_t *slot = tensor_slot(f, t->name.ptr, t->name.len);
    if (*slot)
        return corrupt_at(e, t->name, "duplicate tensor name '%s' at offset %llu", shown(t->name).s,
                          (unsigned long long)at);
    if (!cur_u32(c, &t->n_dims, t->name, "n_dims", e))
        return err_wrap(e, "tensor '%s'", shown(t->name).s);
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return corrupt_at(e, t->name, "tensor '%s': n_dims %u is not in 1..%d", shown(t->name).s,
                          t->n_dims, GGUF_MAX_DIMS);
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims)
            continue;
        if (!cur_u64(c, &t->ne[d], t->name, "dimension", e))
            return err_wrap(e, "tensor '%s'", shown(t->name).s);
        if (t->ne[d] == 0)
            return corrupt_at(e, t->name, "tensor '%s': dimension %u is 0", shown(t->name).s, d);
        /* ggml counts elements in int64_t. */
        if (__builtin_mul_overflow(n_elements, t->ne[d], &n_elements) ||
            n_elements > (uint64_t)INT64_MAX)
            return corrupt_at(e, t->name, "tensor '%s': element count overflows at dimension %u",
                              shown(t->name).s, d);
    }
    t->n_elements = n_elements;
    uint32_t type;
    if (!cur_u32(c, &type, t->name, "tensor type", e))
        return err_wrap(e, "tensor '%s'", shown(t->name).s);
    const struct ggml_type_info *ti = ggml_type_lookup(type);
    if (!ti)
        return corrupt_at(e, t->name, "tensor '%s': unknown ggml type %u", shown(t->name).s, type);
    t->type = (enum ggml_type)type;
    if (t->ne[0] % ti->block_elems != 0)
        return corrupt_at(e, t->name,
                          "tensor '%s': ne[0] = %llu is not a multiple of the %s block size %u",
                          shown(t->name).s, (unsigned long long)t->ne[0], ti->name, ti->block_elems);
    /* n_elements fits int64 and block_bytes/block_elems is at most 4 for every
     * type we know, yet check anyway: the table may grow. */
    if (__builtin_mul_overflow(n_elements / ti->block_elems, (uint64_t)ti->block_bytes,
                               &t->n_bytes))
        return corrupt_at(e, t->name, "tensor '%s': byte size overflows", shown(t->name).s);
    if (!cur_u64(c, rel_off, t->name, "data offset", e))
        return err_wrap(e, "tensor '%s'", shown(t->name).s);
    *slot = i + 1;
    return true;
}

struct extent {
    uint64_t start, end, index;
};

static int extent_cmp(const void *a, const void *b)
{
    const struct extent *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Place every tensor's data and check it lies inside the file, aligned, and
 * apart from the others. rel[i] is tensor i's offset in the data section. */
static bool place_tensors(struct gguf_file *f, const uint64_t *rel, struct err *e)
{
    if (f->n_tensors == 0)
        return true;
    struct extent *ext = malloc(f->n_tensors * sizeof *ext);
    if (!ext)
        return err_set(e, ERR_NOMEM, "out of memory indexing %llu tensors",
                       (unsigned long long)f->n_tensors);
    bool ok = false;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        struct gguf_tensor *t = &f->tensors[i];
        uint64_t start, end;
        if (rel[i] % f->alignment != 0) {
            corrupt_at(e, t->name,
                       "tensor '%s': data offset %llu is not a multiple of the alignment %llu",
                       shown(t->name).s, (unsigned long long)rel[i],
                       (unsigned long long)f->alignment);
            goto out;
        }
        if (__builtin_add_overflow(f->data_offset, rel[i], &start) ||
            __builtin_add_overflow(start, t->n_bytes, &end) || end > f->size) {
            corrupt_at(e, t->name,
                       "tensor '%s': data (%llu bytes at data offset %llu) extends past the "
                       "end of the file (%llu bytes, data section at %llu)",
                       shown(t->name).s, (unsigned long long)t->n_bytes,
                       (unsigned long long)rel[i], (unsigned long long)f->size,
                       (unsigned long long)f->data_offset);
            goto out;
        }
        t->data = f->base + start;
        ext[i] = (struct extent){start, end, i};
    }
    qsort(ext, f->n_tensors, sizeof *ext, extent_cmp);
    for (uint64_t i = 1; i < f->n_tensors; i++) {
        if (ext[i].start < ext[i - 1].end) {
            const struct gguf_tensor *a = &f->tensors[ext[i - 1].index];
            const struct gguf_tensor *b = &f->tensors[ext[i].index];
            corrupt_at(e, b->name, "tensor '%s': data overlaps tensor '%s'",
                       shown(b->name).s,
                       shown(a->name).s);
            goto out;
        }
    }
    ok = true;
out:
    free(ext);
    return ok;
}

/* ---- open ------------------------------------------------------------------------------ */

static bool parse_header(struct gguf_file *f, struct cursor *c, struct err *e)
{
    struct gguf_str none = {0};
    if (c->size < 4 || memcmp(c->base, "GGUF", 4) != 0)
        return corrupt_at(e, none, "not a GGUF file (bad magic)");
    cur_take(c, 4);
    if (!cur_u32(c, &f->version, none, "version", e))
        return false;
    uint32_t v = f->version;
    if (v == 1)
        return err_set(e, ERR_UNSUPPORTED,
                       "GGUF version 1 is not supported (re-convert the model with a "
                       "current llama.cpp to get version 3)");
    if (v == 0x02000000 || v == 0x03000000)
        return err_set(e, ERR_UNSUPPORTED, "big-endian GGUF files are not supported");
    if (v == 0 || v > 0xffff)
        return corrupt_at(e, none, "bad GGUF version %u", v);
    if (v > 3)
        return err_set(e, ERR_UNSUPPORTED, "GGUF version %u is not supported (2 and 3 are)", v);
    if (!cur_u64(c, &f->n_tensors, none, "tensor count", e) ||
        !cur_u64(c, &f->n_kv, none, "metadata count", e))
        return false;
    /* Bounded by the smallest encoding of each item before allocating. */
    uint64_t left = cur_left(c);
    if (f->n_kv > left / KV_MIN_BYTES || f->n_tensors > left / TENSOR_MIN_BYTES ||
        f->n_kv * KV_MIN_BYTES + f->n_tensors * TENSOR_MIN_BYTES > left)
        return corrupt_at(e, none,
                          "header claims %llu metadata entries and %llu tensors, more than "
                          "the %llu bytes that follow can hold",
                          (unsigned long long)f->n_kv, (unsigned long long)f->n_tensors,
                          (unsigned long long)left);
    return true;
}

static bool gguf_parse(struct gguf_file *f, struct err *e)
{
    struct cursor c = {f->base, f->size, 0};
    if (!parse_header(f, &c, e))
        return false;
    f->kv = calloc(f->n_kv ? f->n_kv : 1, sizeof *f->kv);
    f->tensors = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->tensors);
    if (!f->kv || !f->tensors || !slots_alloc(f->n_kv, &f->kv_slots, &f->kv_mask) ||
        !slots_alloc(f->n_tensors, &f->tensor_slots, &f->tensor_mask))
        return err_set(e, ERR_NOMEM, "out of memory indexing %llu keys and %llu tensors",
                       (unsigned long long)f->n_kv, (unsigned long long)f->n_tensors);
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (!parse_kv(f, &c, i, e))
            return false;
    if (!read_alignment(f, e))
        return false;
    uint64_t *rel = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof *rel);
    if (!rel)
        return err_set(e, ERR_NOMEM, "out of memory indexing tensors");
    bool ok = true;
    for (uint64_t i = 0; ok && i < f->n_tensors; i++)
        ok = parse_tensor(f, &c, i, &rel[i], e);
    if (ok) {
        /* The data section starts at the next multiple of the alignment; a
         * file without tensors may end before it. */
        uint64_t pad = (f->alignment - c.pos % f->alignment) % f->alignment;
        f->data_offset = c.pos + pad; /* no overflow: pos <= size, pad < 2^32 */
        ok = place_tensors(f, rel, e);
    }
    free(rel);
    return ok;
}

static bool gguf_finish_open(struct gguf_file *f, struct gguf_file **out, struct err *e)
{
    if (!gguf_parse(f, e)) {
        gguf_close(f);
        return false;
    }
    *out = f;
    return true;
}

bool gguf_open_memory(const void *buf, size_t len, struct gguf_file **out, struct err *e)
{
    *out = NULL;
    struct gguf_file *f = calloc(1, sizeof *f);
    if (!f)
        return err_set(e, ERR_NOMEM, "out of memory");
    f->base = buf;
    f->size = len;
    if (!buf && len)
        f->size = 0;
    return gguf_finish_open(f, out, e);
}

bool gguf_open(const char *path, struct gguf_file **out, struct err *e)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set_param(e, ERR_IO, path, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int er = errno;
        close(fd);
        return err_set_param(e, ERR_IO, path, "cannot stat %s: %s", path, strerror(er));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_set_param(e, ERR_IO, path, "%s is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return err_set_param(e, ERR_CORRUPT, path, "%s: empty file, not a GGUF file", path);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int er = errno;
    close(fd); /* the mapping keeps the file */
    if (map == MAP_FAILED)
        return err_set_param(e, ERR_IO, path, "cannot map %s: %s", path, strerror(er));
    struct gguf_file *f = calloc(1, sizeof *f);
    if (!f) {
        munmap(map, (size_t)st.st_size);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    f->base = map;
    f->size = (uint64_t)st.st_size;
    f->mapped = true;
    if (!gguf_finish_open(f, out, e))
        return err_wrap(e, "%s", path);
    return true;
}

void gguf_close(struct gguf_file *f)
{
    if (!f)
        return;
    if (f->kv)
        for (uint64_t i = 0; i < f->n_kv; i++)
            free((void *)f->kv[i].arr_str_off);
    free(f->kv);
    free(f->tensors);
    free(f->kv_slots);
    free(f->tensor_slots);
    if (f->mapped)
        munmap((void *)f->base, (size_t)f->size);
    free(f);
}

/* ---- accessors ---------------------------------------------------------------------------- */

uint32_t gguf_version(const struct gguf_file *f) { return f->version; }
uint64_t gguf_alignment(const struct gguf_file *f) { return f->alignment; }
uint64_t gguf_file_size(const struct gguf_file *f) { return f->size; }
uint64_t gguf_kv_count(const struct gguf_file *f) { return f->n_kv; }
uint64_t gguf_tensor_count(const struct gguf_file *f) { return f->n_tensors; }

const struct gguf_kv *gguf_kv_at(const struct gguf_file *f, uint64_t i)
{
    return i < f->n_kv ? &f->kv[i] : NULL;
}

const struct gguf_kv *gguf_kv_find(const struct gguf_file *f, const char *key)
{
    uint64_t slot = *kv_slot(f, key, strlen(key));
    return slot ? &f->kv[slot - 1] : NULL;
}

const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *f, uint64_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const struct gguf_tensor *gguf_tensor_find(const struct gguf_file *f, const char *name)
{
    uint64_t slot = *tensor_slot(f, name, strlen(name));
    return slot ? &f->tensors[slot - 1] : NULL;
}

uint64_t gguf_tensor_file_offset(const struct gguf_file *f, const struct gguf_tensor *t)
{
    return (uint64_t)((const uint8_t *)t->data - f->base);
}

bool gguf_str_eq(struct gguf_str a, const char *s) { return str_eq_n(a, s, strlen(s)); }

/* The kv for a getter, or ERR_NOT_FOUND. */
static const struct gguf_kv *kv_get(const struct gguf_file *f, const char *key, struct err *e)
{
    const struct gguf_kv *kv = gguf_kv_find(f, key);
    if (!kv)
        err_set_param(e, ERR_NOT_FOUND, key, "key '%s' is missing", key);
    return kv;
}

static bool kv_wrong_type(const struct gguf_kv *kv, const char *key, const char *want,
                          struct err *e)
{
    return err_set_param(e, ERR_CORRUPT, key, "key '%s': expected %s, found %s", key, want,
                         kv->type == GGUF_TYPE_ARRAY ? "array" : gguf_type_name(kv->type));
}

/* Integer getters share this: any integer type whose value lies in [lo, hi]. */
static bool get_int_in(const struct gguf_file *f, const char *key, int64_t lo, uint64_t hi,
                       struct gguf_int *out, struct err *e)
{
    const struct gguf_kv *kv = kv_get(f, key, e);
    if (!kv)
        return false;
    if (!gguf_load_int(kv->type, kv->data, out))
        return kv_wrong_type(kv, key, "an integer", e);
    bool fits = out->negative ? lo < 0 && out->magnitude <= 0 - (uint64_t)lo
                              : out->magnitude <= hi;
    if (!fits)
        return err_set_param(e, ERR_CORRUPT, key, "key '%s': value %s%llu is out of range",
                             key, out->negative ? "-" : "",
                             (unsigned long long)out->magnitude);
    return true;
}

bool gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out, struct err *e)
{
    struct gguf_int v;
    if (!get_int_in(f, key, 0, UINT32_MAX, &v, e))
        return false;
    *out = (uint32_t)v.magnitude;
    return true;
}

bool gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *out, struct err *e)
{
    struct gguf_int v;
    if (!get_int_in(f, key, 0, UINT64_MAX, &v, e))
        return false;
    *out = v.magnitude;
    return true;
}

bool gguf_get_i32(const struct gguf_file *f, const char *key, int32_t *out, struct err *e)
{
    struct gguf_int v;
    if (!get_int_in(f, key, INT32_MIN, INT32_MAX, &v, e))
        return false;
    *out = (int32_t)gguf_int_as_i64(v);
    return true;
}

bool gguf_get_f32(const struct gguf_file *f, const char *key, float *out, struct err *e)
{
    const struct gguf_kv *kv = kv_get(f, key, e);
    if (!kv)
        return false;
    if (kv->type == GGUF_TYPE_FLOAT32)
        *out = ldf32(kv->data);
    else if (kv->type == GGUF_TYPE_FLOAT64)
        *out = (float)ldf64(kv->data);
    else
        return kv_wrong_type(kv, key, "a float", e);
    return true;
}

bool gguf_get_bool(const struct gguf_file *f, const char *key, bool *out, struct err *e)
{
    const struct gguf_kv *kv = kv_get(f, key, e);
    if (!kv)
        return false;
    if (kv->type != GGUF_TYPE_BOOL)
        return kv_wrong_type(kv, key, "a bool", e);
    if (kv->data[0] > 1)
        return err_set_param(e, ERR_CORRUPT, key, "key '%s': bool value %u is neither 0 nor 1",
                             key, kv->data[0]);
    *out = kv->data[0] == 1;
    return true;
}

bool gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out,
                  struct err *e)
{
    const struct gguf_kv *kv = kv_get(f, key, e);
    if (!kv)
        return false;
    if (kv->type != GGUF_TYPE_STRING)
        return kv_wrong_type(kv, key, "a string", e);
    *out = kv->str;
    return true;
}

bool gguf_get_arr(const struct gguf_file *f, const char *key, enum gguf_type elem_type,
                  const struct gguf_kv **out, struct err *e)
{
    if (elem_type == GGUF_TYPE_ARRAY || !gguf_type_name(elem_type))
        return err_set_param(e, ERR_INVALID, key, "key '%s': bad array element type %d", key,
                             (int)elem_type);
    const struct gguf_kv *kv = kv_get(f, key, e);
    if (!kv)
        return false;
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != elem_type) {
        char want[32];
        snprintf(want, sizeof want, "an array of %s", gguf_type_name(elem_type));
        if (kv->type != GGUF_TYPE_ARRAY)
            return kv_wrong_type(kv, key, want, e);
        return err_set_param(e, ERR_CORRUPT, key, "key '%s': expected %s, found an array of %s",
                             key, want, gguf_type_name(kv->arr_type));
    }
    *out = kv;
    return true;
}

struct gguf_str gguf_kv_arr_str(const struct gguf_kv *kv, uint64_t i)
{
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING || i >= kv->arr_len)
        return (struct gguf_str){"", 0};
    const uint8_t *p = kv->data + kv->arr_str_off[i];
    return (struct gguf_str){(const char *)p + 8, ld64(p)};
}

/* Element i of a numeric array, or NULL (then the getters return 0). */
static const uint8_t *arr_elem(const struct gguf_kv *kv, uint64_t i)
{
    uint64_t size = gguf_type_size(kv->arr_type);
    if (kv->type != GGUF_TYPE_ARRAY || size == 0 || i >= kv->arr_len)
        return NULL;
    return kv->data + i * size;
}

static double arr_num(const struct gguf_kv *kv, uint64_t i, int64_t *as_int, bool *is_int)
{
    const uint8_t *p = arr_elem(kv, i);
    struct gguf_int v;
    *is_int = false;
    if (!p)
        return 0;
    if (kv->arr_type == GGUF_TYPE_FLOAT32)
        return ldf32(p);
    if (kv->arr_type == GGUF_TYPE_FLOAT64)
        return ldf64(p);
    if (kv->arr_type == GGUF_TYPE_BOOL)
        return p[0];
    gguf_load_int(kv->arr_type, p, &v);
    *is_int = true;
    *as_int = gguf_int_as_i64(v);
    return 0;
}

float gguf_kv_arr_f32(const struct gguf_kv *kv, uint64_t i)
{
    if (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_FLOAT32 && i < kv->arr_len)
        return ldf32(kv->data + 4 * i); /* the hot case: token scores */
    int64_t n = 0;
    bool is_int;
    double d = arr_num(kv, i, &n, &is_int);
    return is_int ? (float)n : (float)d;
}

/* Float to integer casts of out-of-range values are undefined in C: clamp. */
static int64_t clamp_i64(double d)
{
    if (!(d == d))
        return 0;
    if (d >= 9.2233720368547758e18)
        return INT64_MAX;
    if (d <= -9.2233720368547758e18)
        return INT64_MIN;
    return (int64_t)d;
}

int32_t gguf_kv_arr_i32(const struct gguf_kv *kv, uint64_t i)
{
    if (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_INT32 && i < kv->arr_len)
        return (int32_t)ld32(kv->data + 4 * i); /* the hot case: token types */
    int64_t n = 0;
    bool is_int;
    double d = arr_num(kv, i, &n, &is_int);
    return (int32_t)(is_int ? n : clamp_i64(d));
}

uint32_t gguf_kv_arr_u32(const struct gguf_kv *kv, uint64_t i)
{
    if (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_UINT32 && i < kv->arr_len)
        return ld32(kv->data + 4 * i);
    int64_t n = 0;
    bool is_int;
    double d = arr_num(kv, i, &n, &is_int);
    return (uint32_t)(is_int ? n : clamp_i64(d));
}
