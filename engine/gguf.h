/*
 * gguf.h — a validating, memory-mapped reader for GGUF files (v2 and v3).
 *
 * Contract
 *   gguf_open() maps a file read-only and validates ALL of its structure
 *   before returning: magic, version, counts, every string and array length,
 *   every value type, tensor dimension counts and sizes, offsets and sizes of
 *   tensor data inside the file, alignment, and every size computation for
 *   integer overflow. After a successful open, every accessor below is safe:
 *   no pointer it returns reaches outside the mapping. A corrupt, truncated or
 *   hostile file fails with ERR_CORRUPT and a message naming the key or tensor
 *   at fault (ERR_IO when the file cannot be read at all).
 *
 *   gguf_open_memory() does the same over a caller-owned buffer (used by the
 *   fuzzer and the built-in demo model); the buffer must outlive the file.
 *
 *   Versions: GGUF v2 and v3, little-endian. v1 (32-bit lengths), later
 *   versions and byte-swapped (big-endian) files fail with ERR_UNSUPPORTED;
 *   a version of 0 or an absurd one (> 0xffff) is ERR_CORRUPT. Beyond the
 *   format itself, open also refuses: empty keys or tensor names, duplicate
 *   keys or tensor names, nested arrays, unknown value or ggml types, a
 *   `general.alignment` that is not a power of two, and tensors whose data
 *   overlap.
 *
 * Ownership
 *   struct gguf_file owns the mapping and a small index (allocated once at
 *   open). Every pointer returned by an accessor (strings, arrays, tensor
 *   data) points into the mapping and is valid until gguf_close(). Strings are
 *   NOT NUL-terminated: use the length.
 *
 * Threads
 *   A gguf_file is immutable after open; concurrent readers are fine.
 *
 * Semantics that the model loader relies on are checked here only as far as
 * the file format goes; whether a tensor has the shape a model needs is the
 * loader's job (engine/model.c).
 */
#ifndef MAASD_GGUF_H
#define MAASD_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

/* Metadata value types, numbered as in the GGUF specification. */
enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
};

/* Tensor element types, numbered as in ggml. Types this reader does not know
 * are refused at open (the block size of an unknown type is unknown, so its
 * byte size cannot be validated). */
enum ggml_type {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_BF16 = 30,
};

#define GGUF_MAX_DIMS 4

/* A length-delimited string inside the mapping (not NUL-terminated). */
struct gguf_str {
    const char *ptr;
    uint64_t len;
};

/* One metadata key/value. For scalars `data` points at the little-endian
 * value; for strings use `str`; for arrays `arr_type`, `arr_len` and `data`
 * (the first element) describe it — arrays of strings are read through
 * gguf_kv_arr_str(). Nested arrays are refused at open. For a string value
 * `data` equals `str.ptr`. */
struct gguf_kv {
    struct gguf_str key;
    enum gguf_type type;
    struct gguf_str str;        /* type == STRING */
    enum gguf_type arr_type;    /* type == ARRAY */
    uint64_t arr_len;           /* type == ARRAY */
    const uint8_t *data;
    /* Arrays of strings: byte offset from `data` of each element's length
     * prefix, built at open so gguf_kv_arr_str() is O(1). Owned by the
     * gguf_file; NULL otherwise. */
    const uint64_t *arr_str_off;
};

struct gguf_tensor {
    struct gguf_str name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous dimension; unused = 1 */
    enum ggml_type type;
    uint64_t n_elements;
    uint64_t n_bytes;
    /* Inside the mapping, at a multiple of gguf_alignment() from the start
     * of the file: aligned in memory for gguf_open() (page-aligned mapping),
     * and for gguf_open_memory() when the caller's buffer is so aligned. */
    const void *data;
};

struct gguf_file;

bool gguf_open(const char *path, struct gguf_file **out, struct err *e);
bool gguf_open_memory(const void *buf, size_t len, struct gguf_file **out,
                      struct err *e);
void gguf_close(struct gguf_file *f);

uint32_t gguf_version(const struct gguf_file *f);
uint64_t gguf_alignment(const struct gguf_file *f);
/* Whole file (or buffer) size in bytes; the sum of tensor bytes is the
 * model's weight memory. */
uint64_t gguf_file_size(const struct gguf_file *f);

/* --- metadata --- */
uint64_t gguf_kv_count(const struct gguf_file *f);
const struct gguf_kv *gguf_kv_at(const struct gguf_file *f, uint64_t i);
/* NULL when absent. */
const struct gguf_kv *gguf_kv_find(const struct gguf_file *f, const char *key);

/* Typed getters. They return false with ERR_NOT_FOUND when the key is absent
 * and ERR_CORRUPT (naming the key) when it has an incompatible type or value.
 * Integer getters accept any integer type whose value fits. */
bool gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out,
                  struct err *e);
bool gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *out,
                  struct err *e);
bool gguf_get_i32(const struct gguf_file *f, const char *key, int32_t *out,
                  struct err *e);
bool gguf_get_f32(const struct gguf_file *f, const char *key, float *out,
                  struct err *e);
bool gguf_get_bool(const struct gguf_file *f, const char *key, bool *out,
                   struct err *e);
bool gguf_get_str(const struct gguf_file *f, const char *key,
                  struct gguf_str *out, struct err *e);
/* An array whose elements have type elem_type (ERR_CORRUPT when the key is
 * not such an array). elem_type GGUF_TYPE_ARRAY is refused with ERR_INVALID:
 * nested arrays never pass open. *out points at the kv. */
bool gguf_get_arr(const struct gguf_file *f, const char *key,
                  enum gguf_type elem_type, const struct gguf_kv **out,
                  struct err *e);

/* Element i of a string array (i < arr_len; validated at open). Out of range
 * or not a string array: an empty string (ptr "", len 0). */
struct gguf_str gguf_kv_arr_str(const struct gguf_kv *kv, uint64_t i);
/* Element i of a numeric array converted to the requested C type (the caller
 * checked arr_type; a value out of the type's range is converted as C casts
 * do). Out of range i or a non-numeric array: 0. Never reads outside the
 * array. */
float gguf_kv_arr_f32(const struct gguf_kv *kv, uint64_t i);
int32_t gguf_kv_arr_i32(const struct gguf_kv *kv, uint64_t i);
uint32_t gguf_kv_arr_u32(const struct gguf_kv *kv, uint64_t i);

/* --- tensors --- */
uint64_t gguf_tensor_count(const struct gguf_file *f);
const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *f, uint64_t i);
/* NULL when absent. */
const struct gguf_tensor *gguf_tensor_find(const struct gguf_file *f,
                                           const char *name);
/* Byte offset of the tensor's data from the start of the file. */
uint64_t gguf_tensor_file_offset(const struct gguf_file *f,
                                 const struct gguf_tensor *t);

/* --- ggml type facts --- */
const char *ggml_type_name(enum ggml_type t);      /* "q8_0", NULL if unknown */
uint32_t ggml_type_block_elems(enum ggml_type t);  /* elements per block, 0 if unknown */
uint32_t ggml_type_block_bytes(enum ggml_type t);  /* bytes per block, 0 if unknown */

/* Stable lower-case name of a metadata value type ("u32", "string",
 * "array"); NULL if unknown. */
const char *gguf_type_name(enum gguf_type t);
/* Bytes of one value of a scalar type; 0 for strings, arrays and unknown
 * types. */
uint64_t gguf_type_size(enum gguf_type t);

/* True when the string equals the C string s. */
bool gguf_str_eq(struct gguf_str a, const char *s);

#endif
