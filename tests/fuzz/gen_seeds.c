/* gen_seeds.c — writes the tiny GGUF seed files committed in
 * tests/fuzz/seeds/fuzz_gguf/ (not built by the Makefile; rerun by hand if
 * the writer or the format coverage changes):
 *
 *   cc -std=c17 -D_GNU_SOURCE -I. -o build/gen_seeds tests/fuzz/gen_seeds.c \
 *      tests/unit/gguf_writer.c engine/gguf.c engine/err.c
 *   build/gen_seeds tests/fuzz/seeds/fuzz_gguf
 */
#include <stdio.h>
#include <stdlib.h>

#include "engine/gguf.h"
#include "tests/unit/gguf_writer.h"

static void save(const char *dir, const char *name, struct test_gguf *w)
{
    size_t len;
    uint8_t *buf = test_gguf_finish(w, &len);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!test_gguf_save(buf, len, path)) {
        perror(path);
        exit(1);
    }
    free(buf);
}

static struct test_gguf *every_value_type(uint32_t version)
{
    struct test_gguf *w = test_gguf_new(version);
    test_gguf_str(w, "general.architecture", "llama");
    test_gguf_u8(w, "a.u8", 200);
    test_gguf_i8(w, "a.i8", -5);
    test_gguf_u16(w, "a.u16", 60000);
    test_gguf_i16(w, "a.i16", -3000);
    test_gguf_u32(w, "a.u32", 4000000000u);
    test_gguf_i32(w, "a.i32", -7);
    test_gguf_u64(w, "a.u64", 1ull << 40);
    test_gguf_i64(w, "a.i64", -(1ll << 40));
    test_gguf_f32(w, "a.f32", 1.5f);
    test_gguf_f64(w, "a.f64", 0.25);
    test_gguf_bool(w, "a.bool", true);
    const char *s[] = {"x", "", "yz"};
    test_gguf_arr_str(w, "a.strs", s, NULL, 3);
    int32_t i[] = {1, -2, 3};
    test_gguf_arr(w, "a.i32s", GGUF_TYPE_INT32, i, 3);
    test_gguf_tensor(w, "t.f32", 2, (const uint64_t[]){3, 2}, GGML_TYPE_F32, NULL);
    test_gguf_tensor(w, "t.q8_0", 1, (const uint64_t[]){32}, GGML_TYPE_Q8_0, NULL);
    return w;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds DIR\n");
        return 2;
    }
    save(argv[1], "v3-every-value-type.gguf", every_value_type(3));
    save(argv[1], "v2-every-value-type.gguf", every_value_type(2));

    struct test_gguf *w = test_gguf_new(3);
    test_gguf_alignment(w, 64);
    static const uint32_t types[] = {
        GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
        GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, GGML_TYPE_Q8_1, GGML_TYPE_Q2_K,
        GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_Q8_K,
    };
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        uint64_t ne = ggml_type_block_elems(types[k]);
        test_gguf_tensor(w, ggml_type_name(types[k]), 1, &ne, types[k], NULL);
    }
    save(argv[1], "v3-every-ggml-type-align64.gguf", w);

    w = test_gguf_new(3);
    test_gguf_str(w, "tokenizer.ggml.model", "gpt2");
    test_gguf_str(w, "tokenizer.ggml.pre", "default");
    const char *toks[] = {"a", "b", "ab", "<|endoftext|>"};
    test_gguf_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 4);
    int32_t tt[] = {1, 1, 1, 3};
    test_gguf_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, tt, 4);
    const char *merges[] = {"a b"};
    test_gguf_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 1);
    test_gguf_u32(w, "tokenizer.ggml.eos_token_id", 3);
    save(argv[1], "v3-vocab-only.gguf", w);
    return 0;
}
