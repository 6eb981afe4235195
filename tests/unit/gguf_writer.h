/*
 * gguf_writer.h — a tiny GGUF writer for tests (and fuzz seeds): builds a
 * file in memory, valid by default, with raw entry points so a test can
 * write exactly the malformed structure it wants to see refused.
 *
 * Usage: w = test_gguf_new(3); add keys and tensors in file order;
 * buf = test_gguf_finish(w, &len) returns the malloc'ed file (free() it) and
 * frees the writer. Allocation failure aborts: this is test code.
 *
 * Layout of what finish() produces: header (magic, version, tensor count,
 * kv count: 24 bytes), the kvs, the tensor infos, padding to the alignment,
 * the data section. Nothing follows the last tensor's data, so any
 * truncation of a file with tensors is detectable.
 */
#ifndef MAASD_TESTS_GGUF_WRITER_H
#define MAASD_TESTS_GGUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TEST_GGUF_HEADER_BYTES 24

struct test_gguf;

struct test_gguf *test_gguf_new(uint32_t version);

void test_gguf_u8(struct test_gguf *w, const char *key, uint8_t v);
void test_gguf_i8(struct test_gguf *w, const char *key, int8_t v);
void test_gguf_u16(struct test_gguf *w, const char *key, uint16_t v);
void test_gguf_i16(struct test_gguf *w, const char *key, int16_t v);
void test_gguf_u32(struct test_gguf *w, const char *key, uint32_t v);
void test_gguf_i32(struct test_gguf *w, const char *key, int32_t v);
void test_gguf_u64(struct test_gguf *w, const char *key, uint64_t v);
void test_gguf_i64(struct test_gguf *w, const char *key, int64_t v);
void test_gguf_f32(struct test_gguf *w, const char *key, float v);
void test_gguf_f64(struct test_gguf *w, const char *key, double v);
void test_gguf_bool(struct test_gguf *w, const char *key, bool v);
void test_gguf_str(struct test_gguf *w, const char *key, const char *v);
/* Numeric array: n elements of elem_type (a scalar GGUF type) from `elems`,
 * host layout (little-endian x86-64). */
void test_gguf_arr(struct test_gguf *w, const char *key, uint32_t elem_type,
                   const void *elems, uint64_t n);
/* Array of n strings; lens NULL means NUL-terminated strings. */
void test_gguf_arr_str(struct test_gguf *w, const char *key, const char *const *v,
                       const size_t *lens, uint64_t n);
/* Key of length key_len (may hold any bytes), a raw type and raw value
 * bytes, written verbatim. */
void test_gguf_kv_raw(struct test_gguf *w, const char *key, size_t key_len, uint32_t type,
                      const void *value, size_t n);
/* Writes general.alignment (u32) and pads later tensor data to it. */
void test_gguf_alignment(struct test_gguf *w, uint32_t align);

/* A tensor whose data (NULL = a byte pattern) is appended, aligned, to the
 * data section; its byte size follows from type and ne via
 * engine/gguf.h's block sizes. Returns the data-section offset. */
uint64_t test_gguf_tensor(struct test_gguf *w, const char *name, uint32_t n_dims,
                          const uint64_t *ne, uint32_t type, const void *data);
/* A tensor info written verbatim; no data is appended. */
void test_gguf_tensor_raw(struct test_gguf *w, const char *name, uint32_t n_dims,
                          const uint64_t *ne, uint32_t type, uint64_t offset);
/* Bytes appended to the data section as they are. */
void test_gguf_data_raw(struct test_gguf *w, const void *bytes, size_t n);

uint8_t *test_gguf_finish(struct test_gguf *w, size_t *len);

/* Write bytes to path; false on failure. */
bool test_gguf_save(const uint8_t *buf, size_t len, const char *path);

#endif
