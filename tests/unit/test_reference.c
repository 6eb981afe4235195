/* test_reference.c — the engine against llama.cpp's logits for the reference
 * models in shared/reference (llama F32/F16/BF16/Q8_0, qwen2 F32), and
 * against llama2.c's greedy generation for shared/models/stories260K.gguf.
 * Skips, with a message, when the shared folder is absent.
 *
 * Per model and prompt: the prompt as one batch (logits at every position),
 * then 23 decode calls (the 24 greedy tokens), compared with the stored
 * logits (tolerances of reference/README.md) and the greedy tokens exactly.
 * Prompt p2 is then re-run in chunks, mixed with other sequences in the same
 * batches, and with one thread: its logits must be bitwise identical. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/forward.h"
#include "engine/gguf.h"
#include "engine/kvcache.h"
#include "engine/model.h"
#include "tests/unit/testutil.h"

#define N_VOCAB 512
#define N_GEN 24

struct ref_model {
    const char *name;
    double max_tol;
    double rms_tol;
};

static const struct ref_model ref_models[] = {
    {"ref-llama-f32", 1e-3, 1e-3},
    {"ref-llama-f16", 2e-2, 2e-2},
    {"ref-llama-bf16", 0.1, 0.1},
    {"ref-llama-q8_0", 0.5, 0.1},
    {"ref-qwen2-f32", 1e-3, 1e-3},
};

struct engine {
    struct gguf_file *file;
    struct model *model;
    struct kvcache *kv;
    struct threadpool *tp;
    struct forward *fw;
};

static bool engine_open(const char *path, int threads, struct engine *g)
{
    struct err e;
    memset(g, 0, sizeof *g);
    if (!gguf_open(path, &g->file, &e) || !threadpool_create(threads, &g->tp, &e) ||
        !model_load(g->file, g->tp, &g->model, &e)) {
        print_error("%s: %s (%s)\n", path, e.msg, e.param);
        return false;
    }
    struct kvcache_config kc = {
        .n_layer = g->model->hp.n_layer,
        .n_head_kv = g->model->hp.n_head_kv,
        .head_dim = g->model->hp.head_dim,
        .max_seqs = 8,
        .max_seq_tokens = g->model->hp.n_ctx_train,
    };
    kc.budget_bytes = kvcache_block_bytes(&kc) * 64;
    struct forward_options fo = {.max_batch = 128, .max_outputs = 128, .isa = -1};
    if (!kvcache_create(&kc, &g->kv, &e) || !forward_create(g->model, g->kv, g->tp, &fo, &g->fw, &e)) {
        print_error("%s: %s\n", path, e.msg);
        return false;
    }
    return true;
}

static void engine_close(struct engine *g)
{
    forward_destroy(g->fw);
    kvcache_destroy(g->kv);
    model_free(g->model);
    threadpool_destroy(g->tp);
    gguf_close(g->file);
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

static float *read_f32(const char *rel, size_t *n)
{
    const char *p = test_shared_path(rel);
    if (!p)
        return NULL;
    size_t len;
    char *buf = test_read_file(p, &len);
    if (buf)
        *n = len / sizeof(float);
    return (float *)buf;
}

static int *json_ints(const cJSON *arr, int *n)
{
    *n = cJSON_GetArraySize(arr);
    int *v = malloc(sizeof(int) * (size_t)(*n > 0 ? *n : 1));
    for (int i = 0; i < *n; i++)
        v[i] = cJSON_GetArrayItem(arr, i)->valueint;
    return v;
}

struct diff {
    double max, sum_sq;
    size_t n;
};

static void diff_add(struct diff *d, const float *a, const float *b, int n)
{
    for (int i = 0; i < n; i++) {
        double x = fabs((double)a[i] - b[i]);
        if (x > d->max)
            d->max = x;
        d->sum_sq += x * x;
        d->n++;
    }
}

/* Feed a prompt in chunks (sizes cycling through `chunks`), keeping the
 * logits of every position in out[n][N_VOCAB]; a second sequence `other`
 * (>= 0) gets one decode token in every batch when given. */
static void run_prompt_chunked(struct engine *g, int32_t seq, const int *tok, int n,
                               const int *chunks, int n_chunks, int32_t other, float *out)
{
    struct err e;
    int32_t btok[128], bseq[128];
    uint32_t bpos[128];
    uint8_t bout[128];
    int done = 0, ci = 0;
    while (done < n) {
        int m = chunks[ci++ % n_chunks];
        if (m > n - done)
            m = n - done;
        int k = 0;
        if (other >= 0) { /* another sequence's token first, then ours */
            assert_true(kvcache_seq_reserve(g->kv, other, 1, &e));
            btok[k] = 7 + done % 50;
            bseq[k] = other;
            bpos[k] = kvcache_seq_len(g->kv, other);
            bout[k] = FORWARD_OUT_LOGITS;
            k++;
        }
        for (int i = 0; i < m; i++, k++) {
            btok[k] = tok[done + i];
            bseq[k] = seq;
            bpos[k] = (uint32_t)(done + i);
            bout[k] = FORWARD_OUT_LOGITS;
        }
        struct forward_batch b = {.n_tokens = (uint32_t)k, .tokens = btok, .seq = bseq, .pos = bpos, .out = bout};
        if (!forward_run(g->fw, &b, &e))
            fail_msg("forward_run: %s", e.msg);
        for (int i = 0; i < m; i++)
            memcpy(out + (size_t)(done + i) * N_VOCAB, forward_logits(g->fw, (uint32_t)(k - m + i)),
                   N_VOCAB * sizeof(float));
        done += m;
    }
}

static void check_model(const struct ref_model *rm)
{
    char rel[256];
    snprintf(rel, sizeof rel, "reference/%s.gguf", rm->name);
    const char *p = test_shared_path(rel);
    if (!p)
        return;
    char gguf_path[4096];
    snprintf(gguf_path, sizeof gguf_path, "%s", p);
    snprintf(rel, sizeof rel, "reference/%s.json", rm->name);
    p = test_shared_path(rel);
    assert_non_null(p);
    char *js = test_read_file(p, NULL);
    cJSON *root = cJSON_Parse(js);
    assert_non_null(root);

    struct engine g;
    assert_true(engine_open(gguf_path, 2, &g));
    struct err e;
    struct diff total = {0};
    const cJSON *prompts = cJSON_GetObjectItem(root, "prompts");
    float *p2_logits = NULL;
    int p2_n = 0, *p2_tok = NULL;
    for (int k = 0; k < cJSON_GetArraySize(prompts); k++) {
        const cJSON *pr = cJSON_GetArrayItem(prompts, k);
        const char *id = cJSON_GetObjectItem(pr, "id")->valuestring;
        int n, n_greedy;
        int *tok = json_ints(cJSON_GetObjectItem(pr, "tokens"), &n);
        int *greedy = json_ints(cJSON_GetObjectItem(pr, "greedy_tokens"), &n_greedy);
        assert_int_equal(n_greedy, N_GEN);
        size_t n_pl, n_gl;
        snprintf(rel, sizeof rel, "reference/%s.%s.prompt_logits.f32", rm->name, id);
        float *pl = read_f32(rel, &n_pl);
        snprintf(rel, sizeof rel, "reference/%s.%s.gen_logits.f32", rm->name, id);
        float *gl = read_f32(rel, &n_gl);
        assert_non_null(pl);
        assert_non_null(gl);
        assert_int_equal(n_pl, (size_t)n * N_VOCAB);
        assert_int_equal(n_gl, (size_t)(N_GEN - 1) * N_VOCAB);

        int32_t seq;
        assert_true(kvcache_seq_new(g.kv, &seq, &e));
        assert_true(kvcache_seq_reserve(g.kv, seq, (uint32_t)(n + N_GEN), &e));
        float *logits = malloc(sizeof(float) * (size_t)n * N_VOCAB);
        int whole[1] = {n};
        run_prompt_chunked(&g, seq, tok, n, whole, 1, -1, logits);
        struct diff dp = {0}, dg = {0};
        diff_add(&dp, logits, pl, n * N_VOCAB);
        if (argmax(logits + (size_t)(n - 1) * N_VOCAB, N_VOCAB) != greedy[0])
            fail_msg("%s %s: first greedy token %d, expected %d", rm->name, id,
                     argmax(logits + (size_t)(n - 1) * N_VOCAB, N_VOCAB), greedy[0]);
        for (int j = 0; j < N_GEN - 1; j++) {
            int32_t t = greedy[j];
            uint32_t pos = (uint32_t)(n + j);
            uint8_t want = FORWARD_OUT_LOGITS;
            struct forward_batch b = {.n_tokens = 1, .tokens = &t, .seq = &seq, .pos = &pos, .out = &want};
            assert_true(forward_run(g.fw, &b, &e));
            const float *lg = forward_logits(g.fw, 0);
            diff_add(&dg, lg, gl + (size_t)j * N_VOCAB, N_VOCAB);
            if (argmax(lg, N_VOCAB) != greedy[j + 1])
                fail_msg("%s %s: greedy token %d is %d, expected %d", rm->name, id, j + 1,
                         argmax(lg, N_VOCAB), greedy[j + 1]);
        }
        kvcache_seq_free(g.kv, seq);
        print_message("  %-15s %s: prompt max %.3g, gen max %.3g, rms %.3g, greedy tokens identical\n",
                      rm->name, id, dp.max, dg.max, sqrt((dp.sum_sq + dg.sum_sq) / (double)(dp.n + dg.n)));
        if (dp.max > rm->max_tol || dg.max > rm->max_tol)
            fail_msg("%s %s: logits differ by up to %g (limit %g)", rm->name, id,
                     dp.max > dg.max ? dp.max : dg.max, rm->max_tol);
        total.max = fmax(total.max, fmax(dp.max, dg.max));
        total.sum_sq += dp.sum_sq + dg.sum_sq;
        total.n += dp.n + dg.n;
        if (strcmp(id, "p2") == 0) {
            p2_logits = logits;
            p2_n = n;
            p2_tok = tok;
        } else {
            free(logits);
            free(tok);
        }
        free(greedy);
        free(pl);
        free(gl);
    }
    double rms = sqrt(total.sum_sq / (double)total.n);
    if (rms > rm->rms_tol)
        fail_msg("%s: rms logit difference %g (limit %g)", rm->name, rms, rm->rms_tol);

    /* p2 in chunks, alone and beside another sequence: bitwise equal. */
    assert_non_null(p2_logits);
    float *again = malloc(sizeof(float) * (size_t)p2_n * N_VOCAB);
    const int chunks_a[] = {7, 13, 1, 40};
    const int chunks_b[] = {1};
    const int *chunk_sets[] = {chunks_a, chunks_b};
    const int chunk_lens[] = {4, 1};
    for (int cs = 0; cs < 2; cs++)
        for (int with_other = 0; with_other < 2; with_other++) {
            int32_t seq, other = -1;
            assert_true(kvcache_seq_new(g.kv, &seq, &e));
            assert_true(kvcache_seq_reserve(g.kv, seq, (uint32_t)p2_n, &e));
            if (with_other)
                assert_true(kvcache_seq_new(g.kv, &other, &e));
            run_prompt_chunked(&g, seq, p2_tok, p2_n, chunk_sets[cs], chunk_lens[cs], other, again);
            assert_memory_equal(again, p2_logits, sizeof(float) * (size_t)p2_n * N_VOCAB);
            kvcache_seq_free(g.kv, seq);
            if (other >= 0)
                kvcache_seq_free(g.kv, other);
        }
    engine_close(&g);

    /* one thread: bitwise equal too */
    assert_true(engine_open(gguf_path, 1, &g));
    int32_t seq;
    assert_true(kvcache_seq_new(g.kv, &seq, &e));
    assert_true(kvcache_seq_reserve(g.kv, seq, (uint32_t)p2_n, &e));
    int whole[1] = {p2_n};
    run_prompt_chunked(&g, seq, p2_tok, p2_n, whole, 1, -1, again);
    assert_memory_equal(again, p2_logits, sizeof(float) * (size_t)p2_n * N_VOCAB);
    engine_close(&g);

    free(again);
    free(p2_logits);
    free(p2_tok);
    cJSON_Delete(root);
    free(js);
}

static void test_reference_models(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof ref_models / sizeof ref_models[0]; i++)
        check_model(&ref_models[i]);
}

static void test_stories260k_greedy(void **state)
{
    (void)state;
    const char *p = test_shared_path("models/stories260K.gguf");
    if (!p) {
        skip();
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s", p);
    p = test_shared_path("models/stories260K.expected.json");
    assert_non_null(p);
    char *js = test_read_file(p, NULL);
    cJSON *root = cJSON_Parse(js);
    int n_exp;
    int *expected = json_ints(cJSON_GetObjectItem(root, "expected_token_ids"), &n_exp);
    assert_int_equal(n_exp, 200);

    struct engine g;
    assert_true(engine_open(path, 2, &g));
    struct err e;
    int32_t seq;
    assert_true(kvcache_seq_new(g.kv, &seq, &e));
    assert_true(kvcache_seq_reserve(g.kv, seq, 201, &e));
    int32_t tok = 1; /* BOS */
    for (int i = 0; i < n_exp; i++) {
        uint32_t pos = (uint32_t)i;
        uint8_t want = FORWARD_OUT_LOGITS;
        struct forward_batch b = {.n_tokens = 1, .tokens = &tok, .seq = &seq, .pos = &pos, .out = &want};
        assert_true(forward_run(g.fw, &b, &e));
        tok = argmax(forward_logits(g.fw, 0), (int)g.model->hp.n_vocab);
        if (tok != expected[i])
            fail_msg("stories260K: token %d is %d, llama2.c says %d", i, tok, expected[i]);
    }
    print_message("  stories260K: 200 greedy tokens identical to llama2.c\n");
    engine_close(&g);
    free(expected);
    cJSON_Delete(root);
    free(js);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_models),
        cmocka_unit_test(test_stories260k_greedy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
