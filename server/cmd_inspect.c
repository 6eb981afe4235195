/* cmd_inspect.c — `maasd inspect [--full] PATH`: what a GGUF file holds.
 *
 * Prints the version, every metadata key with its type and value (arrays as
 * element type, length and the first few elements; long strings cut), and
 * the tensor table. --full prints whole strings and arrays. Everything is
 * read through engine/gguf.h, so a file that inspects is a file that loads
 * as far as the format goes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "engine/gguf.h"
#include "server/cli.h"

#define SHORT_STRING 80
#define SHORT_ARRAY 8

/* A string from the file, quoted, with anything unprintable escaped. */
static void print_str(FILE *out, struct gguf_str s, bool full)
{
    uint64_t n = !full && s.len > SHORT_STRING ? SHORT_STRING : s.len;
    fputc('"', out);
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out); /* UTF-8 passes through */
    }
    fputc('"', out);
    if (n < s.len)
        fprintf(out, "... (%" PRIu64 " bytes)", s.len);
}

/* A key or tensor name, padded to `width`: bare when it is a plain
 * identifier (the usual case), quoted and escaped otherwise. */
static void print_name(FILE *out, struct gguf_str s, int width)
{
    bool plain = s.len > 0 && s.len < 200;
    for (uint64_t i = 0; plain && i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-';
    }
    if (plain)
        fprintf(out, "%-*.*s", width, (int)s.len, s.ptr);
    else
        print_str(out, s, true);
}

/* One scalar at p of type t; maasd runs on x86-64, so the file's
 * little-endian values load as they are. */
static void print_scalar(FILE *out, enum gguf_type t, const uint8_t *p)
{
    union {
        uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
        uint64_t u64; int64_t i64; float f32; double f64;
    } v;
    switch (t) {
    case GGUF_TYPE_UINT8: memcpy(&v.u8, p, 1); fprintf(out, "%u", v.u8); break;
    case GGUF_TYPE_INT8: memcpy(&v.i8, p, 1); fprintf(out, "%d", v.i8); break;
    case GGUF_TYPE_UINT16: memcpy(&v.u16, p, 2); fprintf(out, "%u", v.u16); break;
    case GGUF_TYPE_INT16: memcpy(&v.i16, p, 2); fprintf(out, "%d", v.i16); break;
    case GGUF_TYPE_UINT32: memcpy(&v.u32, p, 4); fprintf(out, "%" PRIu32, v.u32); break;
    case GGUF_TYPE_INT32: memcpy(&v.i32, p, 4); fprintf(out, "%" PRId32, v.i32); break;
    case GGUF_TYPE_UINT64: memcpy(&v.u64, p, 8); fprintf(out, "%" PRIu64, v.u64); break;
    case GGUF_TYPE_INT64: memcpy(&v.i64, p, 8); fprintf(out, "%" PRId64, v.i64); break;
    case GGUF_TYPE_FLOAT32: memcpy(&v.f32, p, 4); fprintf(out, "%.9g", (double)v.f32); break;
    case GGUF_TYPE_FLOAT64: memcpy(&v.f64, p, 8); fprintf(out, "%.17g", v.f64); break;
    case GGUF_TYPE_BOOL: fputs(p[0] ? "true" : "false", out); break;
    default: fputs("?", out); break;
    }
}

static void print_kv(FILE *out, const struct gguf_kv *kv, bool full)
{
    fputs("  ", out);
    print_name(out, kv->key, 40);
    if (kv->type == GGUF_TYPE_ARRAY) {
        fprintf(out, " array[%s] (%" PRIu64 "): [", gguf_type_name(kv->arr_type), kv->arr_len);
        uint64_t n = !full && kv->arr_len > SHORT_ARRAY ? SHORT_ARRAY : kv->arr_len;
        for (uint64_t i = 0; i < n; i++) {
            if (i)
                fputs(", ", out);
            if (kv->arr_type == GGUF_TYPE_STRING)
                print_str(out, gguf_kv_arr_str(kv, i), full);
            else
                print_scalar(out, kv->arr_type, kv->data + i * gguf_type_size(kv->arr_type));
        }
        fputs(n < kv->arr_len ? ", ...]\n" : "]\n", out);
        return;
    }
    fprintf(out, " %s: ", gguf_type_name(kv->type));
    if (kv->type == GGUF_TYPE_STRING)
        print_str(out, kv->str, full);
    else
        print_scalar(out, kv->type, kv->data);
    fputc('\n', out);
}

static void print_tensor(FILE *out, const struct gguf_file *f, const struct gguf_tensor *t)
{
    char shape[128];
    int n = 0;
    for (uint32_t d = 0; d < t->n_dims; d++)
        n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%" PRIu64, d ? "x" : "[",
                      t->ne[d]);
    snprintf(shape + n, sizeof shape - (size_t)n, "]");
    fputs("  ", out);
    print_name(out, t->name, 32);
    fprintf(out, " %-5s %-16s offset %-10" PRIu64 " %" PRIu64 " bytes\n", ggml_type_name(t->type),
            shape, gguf_tensor_file_offset(f, t), t->n_bytes);
}

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    bool full = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--full") == 0) {
            full = true;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "usage: maasd inspect [--full] PATH\n");
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "usage: maasd inspect [--full] PATH\n");
        return 2;
    }
    struct gguf_file *f = NULL;
    struct err e = {0};
    if (!gguf_open(path, &f, &e))
        return cli_fail(&e);
    uint64_t weights = 0;
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++)
        weights += gguf_tensor_at(f, i)->n_bytes;
    printf("%s: GGUF v%" PRIu32 ", %" PRIu64 " bytes, alignment %" PRIu64 ", %" PRIu64
           " metadata keys, %" PRIu64 " tensors (%" PRIu64 " bytes of tensor data)\n",
           path, gguf_version(f), gguf_file_size(f), gguf_alignment(f), gguf_kv_count(f),
           gguf_tensor_count(f), weights);
    printf("\nmetadata:\n");
    for (uint64_t i = 0; i < gguf_kv_count(f); i++)
        print_kv(stdout, gguf_kv_at(f, i), full);
    printf("\ntensors:\n");
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++)
        print_tensor(stdout, f, gguf_tensor_at(f, i));
    gguf_close(f);
    return 0;
}
