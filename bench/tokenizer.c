/*
 * bench/tokenizer.c — cost of tokenizer_encode() on 10 kB of mixed text
 * (English, punctuation, digits, Cyrillic, CJK, emoji, whitespace runs) for
 * each of llama.cpp's test vocabularies in the shared data.
 *
 * The baseline, measured in the same run on the same text, is the least any
 * tokenizer must do: walk every byte, classifying UTF-8 characters and
 * spaces. Figures are ratios to that baseline, with microseconds for
 * orientation. Without the shared data there is nothing to measure.
 *
 *   build/bench/tokenizer [iterations]      (default 30 per vocabulary)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/gguf.h"
#include "engine/tokenizer.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static volatile size_t sink;

static double time_baseline(const char *text, size_t len, int iters)
{
    double t0 = now_us();
    for (int it = 0; it < iters; it++) {
        size_t chars = 0, spaces = 0;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)text[i];
            chars += (c & 0xc0) != 0x80;
            spaces += c == ' ' || c == '\n' || c == '\t';
        }
        sink = chars + spaces;
    }
    return (now_us() - t0) / iters;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 30;
    if (iters < 1)
        iters = 1;
    const char *root = getenv("MAASD_SHARED");
    if (!root || !*root)
        root = "../shared";
    static const char piece[] =
        "The quick brown fox jumps over the lazy dog. Hello, y'all! How are you "
        "\xf0\x9f\x98\x81 ?\xe6\x88\x91\xe6\x83\xb3\xe5\x9c\xa8" "apple 1314151 "
        "\xd0\xbd\xd0\xb5\xd1\x89\xd0\xbe \xd0\xbd\xd0\xb0 3.14159\n\t    int x = 42;\n";
    char text[10240 + sizeof piece];
    size_t len = 0;
    while (len + sizeof piece - 1 <= 10240) {
        memcpy(text + len, piece, sizeof piece - 1);
        len += sizeof piece - 1;
    }
    double base = time_baseline(text, len, iters * 20);
    printf("tokenizer: encode %zu bytes; baseline (walk the bytes) %.1f us\n", len, base);

    static const char *const names[] = {"llama-spm", "phi-3", "gpt-2", "falcon", "deepseek-llm",
                                        "deepseek-coder", "mpt", "refact", "starcoder"};
    for (size_t v = 0; v < sizeof names / sizeof names[0]; v++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tokenizers/ggml-vocab-%s.gguf", root, names[v]);
        struct gguf_file *g = NULL;
        struct tokenizer *t = NULL;
        struct err e = {0};
        if (!gguf_open(path, &g, &e)) {
            printf("tokenizer: %s skipped (%s)\n", names[v], e.msg);
            continue;
        }
        if (!tokenizer_load(g, &t, &e)) {
            fprintf(stderr, "tokenizer: %s: %s\n", names[v], e.msg);
            return 1;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        double t0 = now_us();
        for (int it = 0; it < iters; it++) {
            free(ids);
            if (!tokenizer_encode(t, text, len, 0, &ids, &n, &e)) {
                fprintf(stderr, "tokenizer: %s: %s\n", names[v], e.msg);
                return 1;
            }
        }
        double us = (now_us() - t0) / iters;
        printf("  %-15s %5zu ids  %8.1f us  %6.1fx baseline\n", names[v], n, us, us / base);
        free(ids);
        tokenizer_free(t);
        gguf_close(g);
    }
    return 0;
}
