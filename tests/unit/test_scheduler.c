/* test_scheduler.c — continuous batching on real models: the built-in demo
 * model always, stories260K (a trained model) when the shared data is
 * there. Timing is never asserted: fairness is measured in scheduler
 * events, not milliseconds. */
#include "tests/unit/testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "engine/demo_model.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/scheduler.h"
#include "engine/threadpool.h"
#include "engine/tokenizer.h"

struct env {
    void *buf;
    struct gguf_file *g;
    struct model *m;
    struct tokenizer *tok;
    struct threadpool *tp;
    pthread_mutex_t tp_lock;
};

static bool env_open(struct env *v, const char *path)
{
    struct err e = {0};
    memset(v, 0, sizeof *v);
    if (path) {
        if (!gguf_open(path, &v->g, &e))
            fail_msg("%s", e.msg);
    } else {
        size_t len;
        if (!demo_model_gguf(&v->buf, &len, &e) || !gguf_open_memory(v->buf, len, &v->g, &e))
            fail_msg("%s", e.msg);
    }
    if (!threadpool_create(2, &v->tp, &e) || !model_load(v->g, v->tp, &v->m, &e) ||
        !tokenizer_load(v->g, &v->tok, &e))
        fail_msg("%s", e.msg);
    pthread_mutex_init(&v->tp_lock, NULL);
    return true;
}

static void env_close(struct env *v)
{
    tokenizer_free(v->tok);
    model_free(v->m);
    threadpool_destroy(v->tp);
    gguf_close(v->g);
    free(v->buf);
    pthread_mutex_destroy(&v->tp_lock);
}

static struct sched *start_with(struct env *v, const struct sched_options *o)
{
    struct sched *s = NULL;
    struct err e = {0};
    if (!sched_start(v->m, v->tok, v->tp, &v->tp_lock, o, &s, &e))
        fail_msg("%s", e.msg);
    return s;
}

static struct sched *start(struct env *v, int max_running, int max_batch, int max_queue,
                           uint64_t kv_bytes)
{
    struct sched_options o = {.max_running = max_running, .max_batch_tokens = max_batch,
                              .max_queue = max_queue, .kv_cache_bytes = kv_bytes, .n_ctx = 0};
    return start_with(v, &o);
}

/* ---- collecting events from the scheduler thread ---- */

#define MAX_TOK 512

struct result {
    pthread_mutex_t *lock;
    pthread_cond_t *cond;
    int64_t *clock;             /* shared count of token events, for ordering */
    int choices;
    int32_t tokens[SCHED_MAX_CHOICES][MAX_TOK];
    int n_tokens[SCHED_MAX_CHOICES];
    char text[SCHED_MAX_CHOICES][4096];
    size_t text_len[SCHED_MAX_CHOICES];
    enum sched_finish finish[SCHED_MAX_CHOICES];
    int64_t first_token_clock;  /* *clock when our first token came */
    int32_t scored[MAX_TOK];    /* prompt_logprobs: prompt tokens reported, in order */
    float scored_lp[MAX_TOK];
    int n_scored;
    bool scored_late;
    bool done;
    enum sched_finish req_finish;
    struct err err;
    int64_t prompt_tokens, completion_tokens;
    float embedding[1024];
    int embedding_dim;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static int64_t g_clock;

static void on_event(void *user, const struct sched_event *ev)
{
    struct result *r = user;
    pthread_mutex_lock(&g_lock);
    switch (ev->kind) {
    case SCHED_EV_PROMPT_TOKEN:
        r->scored_late |= r->n_tokens[0] > 0; /* must come before generated tokens */
        if (r->n_scored < MAX_TOK) {
            r->scored[r->n_scored] = ev->token;
            r->scored_lp[r->n_scored++] = ev->sample->logprob;
        }
        break;
    case SCHED_EV_TOKEN:
        if (r->n_tokens[ev->choice] == 0 && ev->choice == 0 && r->first_token_clock < 0)
            r->first_token_clock = g_clock;
        g_clock++;
        if (r->n_tokens[ev->choice] < MAX_TOK)
            r->tokens[ev->choice][r->n_tokens[ev->choice]++] = ev->token;
        /* text follows */
        __attribute__((fallthrough));
    case SCHED_EV_CHOICE_DONE:
        if (r->text_len[ev->choice] + ev->text_len < sizeof r->text[0]) {
            memcpy(r->text[ev->choice] + r->text_len[ev->choice], ev->text, ev->text_len);
            r->text_len[ev->choice] += ev->text_len;
        }
        if (ev->kind == SCHED_EV_CHOICE_DONE)
            r->finish[ev->choice] = ev->finish;
        break;
    case SCHED_EV_REQUEST_DONE:
        r->done = true;
        r->req_finish = ev->finish;
        r->err = ev->err;
        r->prompt_tokens = ev->prompt_tokens;
        r->completion_tokens = ev->completion_tokens;
        if (ev->embedding) {
            r->embedding_dim = ev->embedding_dim;
            memcpy(r->embedding, ev->embedding, (size_t)ev->embedding_dim * sizeof(float));
        }
        pthread_cond_broadcast(&g_cond);
        break;
    }
    pthread_mutex_unlock(&g_lock);
}

static struct result *result_new(void)
{
    struct result *r = calloc(1, sizeof *r);
    r->first_token_clock = -1;
    return r;
}

static void wait_done(struct result *r)
{
    pthread_mutex_lock(&g_lock);
    while (!r->done)
        pthread_cond_wait(&g_cond, &g_lock);
    pthread_mutex_unlock(&g_lock);
}

static struct sched_request greedy(const int32_t *prompt, size_t n, int max_tokens,
                                   struct result *r)
{
    struct sched_request q = {.prompt = prompt, .n_prompt = n, .n_choices = 1,
                              .max_tokens = max_tokens, .weight = 1, .on_event = on_event,
                              .user = r};
    sampler_params_default(&q.sampling);
    q.sampling.temperature = 0;
    return q;
}

static uint64_t submit(struct sched *s, const struct sched_request *q)
{
    uint64_t id;
    struct err e = {0};
    if (!sched_submit(s, q, 1, &id, &e))
        fail_msg("submit: %s", e.msg);
    return id;
}

/* ---- tests ---- */

static void test_stories_matches_llama2c(void **state)
{
    (void)state;
    const char *path = test_shared_path("models/stories260K.gguf");
    if (!path)
        skip();
    char model_path[4096];
    snprintf(model_path, sizeof model_path, "%s", path);
    const char *jpath = test_shared_path("models/stories260K.expected.json");
    char *json = test_read_file(jpath, NULL);
    cJSON *root = cJSON_Parse(json);
    cJSON *ids = cJSON_GetObjectItem(root, "expected_token_ids");
    const char *expected_text = cJSON_GetObjectItem(root, "expected_text")->valuestring;
    assert_non_null(ids);
    int n_expected = cJSON_GetArraySize(ids);

    struct env v;
    env_open(&v, model_path);
    struct sched *s = start(&v, 8, 64, 16, 16 << 20);
    int32_t bos = 1;
    struct result *r = result_new();
    struct sched_request q = greedy(&bos, 1, n_expected, r);
    submit(s, &q);
    wait_done(r);
    assert_int_equal(r->n_tokens[0], n_expected);
    for (int i = 0; i < n_expected; i++)
        assert_int_equal(r->tokens[0][i], cJSON_GetArrayItem(ids, i)->valueint);
    assert_int_equal(r->prompt_tokens, 1);
    assert_int_equal(r->completion_tokens, n_expected);
    /* The streamed text events, concatenated, are the expected text. */
    assert_int_equal(r->text_len[0], strlen(expected_text));
    assert_memory_equal(r->text[0], expected_text, r->text_len[0]);
    sched_stop(s);
    env_close(&v);
    cJSON_Delete(root);
    free(json);
    free(r);
}

static void test_batch_invariance_and_forks(void **state)
{
    (void)state;
    struct env v;
    env_open(&v, NULL);
    struct sched *s = start(&v, 32, 64, 64, 64 << 20);
    int32_t prompt[] = {72, 101, 108, 108, 111, 32, 119, 111};

    struct result *alone = result_new();
    struct sched_request q = greedy(prompt, 8, 40, alone);
    submit(s, &q);
    wait_done(alone);
    assert_int_equal(alone->n_tokens[0] > 0, 1);

    /* The same request among twelve others with different prompts and
     * lengths, sampled and greedy, submitted at once. */
    struct result *others[12], *again = result_new();
    int32_t noise[12][40];
    for (int i = 0; i < 12; i++) {
        others[i] = result_new();
        for (int k = 0; k < 40; k++)
            noise[i][k] = 65 + (i * 7 + k * 3) % 50;
        struct sched_request o = greedy(noise[i], (size_t)(3 + i * 3), 30, others[i]);
        o.sampling.temperature = 0.9f;
        o.sampling.seed = (uint64_t)i;
        submit(s, &o);
    }
    q.user = again;
    submit(s, &q);
    for (int i = 0; i < 12; i++)
        wait_done(others[i]);
    wait_done(again);
    assert_int_equal(again->n_tokens[0], alone->n_tokens[0]);
    assert_memory_equal(again->tokens[0], alone->tokens[0], sizeof(int32_t) * (size_t)alone->n_tokens[0]);

    /* n = 3 greedy choices share the prompt's KV and all equal the single one. */
    struct result *three = result_new();
    q.user = three;
    q.n_choices = 3;
    submit(s, &q);
    wait_done(three);
    for (int c = 0; c < 3; c++) {
        assert_int_equal(three->n_tokens[c], alone->n_tokens[0]);
        assert_memory_equal(three->tokens[c], alone->tokens[0], sizeof(int32_t) * (size_t)alone->n_tokens[0]);
    }
    assert_int_equal(three->prompt_tokens, 8);
    assert_int_equal(three->completion_tokens, 3 * alone->n_tokens[0]);

    sched_stop(s);
    for (int i = 0; i < 12; i++)
        free(others[i]);
    free(alone);
    free(again);
    free(three);
    env_close(&v);
}

/* Pacing changes which requests share a step, never what they produce:
 * under a step budget (a 2x target, no minimum, so the demo model's short
 * steps are paced too) a burst gives the same tokens as without, a request
 * with more choices than the budget still runs, and the budget shows in the
 * stats. */
static void test_paced_batching_same_tokens(void **state)
{
    (void)state;
    struct env v;
    env_open(&v, NULL);
    enum { N = 24 };
    int32_t prompts[N][24];
    struct result *r[2][N], *wide[2];
    struct sched_stats st[2];
    for (int run = 0; run < 2; run++) {
        struct sched_options o = {.max_running = 32, .max_batch_tokens = 64, .max_queue = 64,
                                  .kv_cache_bytes = 64 << 20, .prefill_chunk = 8,
                                  .itl_factor = run ? 2 : 0, .itl_min_target_ms = 0};
        struct sched *s = start_with(&v, &o);
        /* A one-token request first: the pacer knows the base step. */
        struct result *warm = result_new();
        prompts[0][0] = 72;
        struct sched_request q = greedy(prompts[0], 1, 4, warm);
        submit(s, &q);
        wait_done(warm);
        free(warm);
        for (int i = 0; i < N; i++) {
            r[run][i] = result_new();
            for (int k = 0; k < 24; k++)
                prompts[i][k] = 65 + (i * 5 + k * 7) % 50;
            q = greedy(prompts[i], (size_t)(4 + i % 20), 20 + i, r[run][i]);
            submit(s, &q);
        }
        wide[run] = result_new();
        q = greedy(prompts[3], 6, 10, wide[run]);
        q.n_choices = SCHED_MAX_CHOICES;
        submit(s, &q);
        for (int i = 0; i < N; i++)
            wait_done(r[run][i]);
        wait_done(wide[run]);
        sched_get_stats(s, &st[run]);
        sched_stop(s);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[1][i]->req_finish, r[0][i]->req_finish);
        assert_int_equal(r[1][i]->n_tokens[0], r[0][i]->n_tokens[0]);
        assert_memory_equal(r[1][i]->tokens[0], r[0][i]->tokens[0],
                            sizeof(int32_t) * (size_t)r[0][i]->n_tokens[0]);
        assert_int_equal(r[1][i]->completion_tokens, r[0][i]->completion_tokens);
        free(r[0][i]);
        free(r[1][i]);
    }
    for (int c = 0; c < SCHED_MAX_CHOICES; c++)
        assert_int_equal(wide[1]->n_tokens[c], wide[0]->n_tokens[c]);
    assert_true(st[0].step_target_ms == 0 && st[0].step_token_budget == 0);
    assert_true(st[1].step_target_ms > 0 && st[1].step_token_budget >= 1);
    free(wide[0]);
    free(wide[1]);
    env_close(&v);
}

/* Also: prompt scoring (prompt_logprobs) under preemption. */
static void test_memory_pressure_recomputes_exactly(void **state)
{
    (void)state;
    struct env v;
    env_open(&v, NULL);
    /* Reference outputs with plenty of memory... */
    struct sched *big = start(&v, 16, 64, 64, 64 << 20);
    int32_t prompts[8][24];
    struct result *ref[8], *tight[8];
    for (int i = 0; i < 8; i++) {
        for (int k = 0; k < 24; k++)
            prompts[i][k] = 40 + (i * 11 + k * 5) % 80;
        ref[i] = result_new();
        struct sched_request q = greedy(prompts[i], 24, 48, ref[i]);
        q.prompt_logprobs = i % 2 == 0;
        submit(big, &q);
    }
    for (int i = 0; i < 8; i++)
        wait_done(ref[i]);
    sched_stop(big);

    /* ...and with a cache that holds about three of the eight sequences:
     * requests wait or are preempted and recomputed, never fail, and give
     * the same tokens. */
    size_t per_token = 2 * v.m->hp.n_layer * v.m->hp.n_head_kv * v.m->hp.head_dim * sizeof(float);
    struct sched *small = start(&v, 16, 64, 64, per_token * 16 * 14);
    for (int i = 0; i < 8; i++) {
        tight[i] = result_new();
        struct sched_request q = greedy(prompts[i], 24, 48, tight[i]);
        q.prompt_logprobs = i % 2 == 0;
        submit(small, &q);
    }
    for (int i = 0; i < 8; i++) {
        wait_done(tight[i]);
        assert_int_equal(tight[i]->err.code, ERR_OK);
        assert_int_equal(tight[i]->n_tokens[0], ref[i]->n_tokens[0]);
        assert_memory_equal(tight[i]->tokens[0], ref[i]->tokens[0],
                            sizeof(int32_t) * (size_t)ref[i]->n_tokens[0]);
        /* Recomputation is not billed: the prompt counts once. Nor is a
         * scored prompt token reported twice, and its score is the same. */
        assert_int_equal(tight[i]->prompt_tokens, 24);
        assert_int_equal(tight[i]->n_scored, i % 2 == 0 ? 23 : 0);
        assert_int_equal(ref[i]->n_scored, tight[i]->n_scored);
        assert_false(tight[i]->scored_late || ref[i]->scored_late);
        for (int k = 0; k < tight[i]->n_scored; k++) {
            assert_int_equal(tight[i]->scored[k], prompts[i][k + 1]);
            assert_true(tight[i]->scored_lp[k] <= 0 && tight[i]->scored_lp[k] == ref[i]->scored_lp[k]);
        }
    }
    sched_stop(small);
    for (int i = 0; i < 8; i++) {
        free(ref[i]);
        free(tight[i]);
    }
    env_close(&v);
}

static void test_cancel_deadline_and_queue(void **state)
{
    (void)state;
    struct env v;
    env_open(&v, NULL);
    struct sched *s = start(&v, 1, 32, 2, 64 << 20);
    int32_t prompt[] = {72, 105, 33};

    /* Cancel after the first token: the tokens processed are reported. */
    struct result *r = result_new();
    struct sampler_bias no_eos = {tokenizer_eos(v.tok), -100};
    struct sched_request q = greedy(prompt, 3, 400, r);
    q.sampling.logit_bias = &no_eos;
    q.sampling.n_logit_bias = 1;
    uint64_t id = submit(s, &q);
    for (;;) {
        pthread_mutex_lock(&g_lock);
        int n = r->n_tokens[0];
        pthread_mutex_unlock(&g_lock);
        if (n > 0)
            break;
    }
    sched_cancel(s, id);
    wait_done(r);
    assert_int_equal(r->req_finish, SCHED_FINISH_CANCELLED);
    assert_int_equal(r->prompt_tokens, 3);
    assert_true(r->completion_tokens >= 1 && r->completion_tokens < 400);
    assert_int_equal(r->completion_tokens, r->n_tokens[0]);

    /* A deadline in the past ends the request with TIMEOUT. */
    struct result *t = result_new();
    q = greedy(prompt, 3, 400, t);
    q.deadline_ms = sched_now_ms() - 1;
    submit(s, &q);
    wait_done(t);
    assert_int_equal(t->req_finish, SCHED_FINISH_TIMEOUT);
    assert_int_equal(t->err.code, ERR_TIMEOUT);

    /* One running, two waiting: the next submit is refused (all or none). */
    struct result *a = result_new(), *b = result_new(), *c = result_new(), *d = result_new();
    uint64_t ids[2];
    struct sched_request qa = greedy(prompt, 3, 300, a), qb = greedy(prompt, 3, 300, b),
                         qc = greedy(prompt, 3, 300, c), qd = greedy(prompt, 3, 300, d);
    qa.sampling.logit_bias = &no_eos;
    qa.sampling.n_logit_bias = 1;
    uint64_t ida = submit(s, &qa);
    while (true) {
        struct sched_stats st;
        sched_get_stats(s, &st);
        if (st.running == 1)
            break;
    }
    uint64_t idb = submit(s, &qb);
    uint64_t idc = submit(s, &qc);
    struct err e = {0};
    struct sched_request pair[2] = {qd, qd};
    assert_false(sched_submit(s, pair, 2, ids, &e));
    assert_int_equal(e.code, ERR_OVERLOADED);
    sched_cancel(s, ida);
    sched_cancel(s, idb);
    sched_cancel(s, idc);
    wait_done(a);
    wait_done(b);
    wait_done(c);
    /* Never-run requests report zero usage. */
    assert_int_equal(c->prompt_tokens, 0);
    assert_int_equal(c->completion_tokens, 0);

    /* Requests that can never fit are refused at submit. */
    struct sched_request huge = greedy(prompt, 3, 1 << 24, d);
    assert_false(sched_submit(s, &huge, 1, ids, &e));
    assert_int_equal(e.code, ERR_INVALID);

    sched_stop(s);
    free(r);
    free(t);
    free(a);
    free(b);
    free(c);
    free(d);
    env_close(&v);
}

static void test_fairness_between_tenants(void **state)
{
    (void)state;
    struct env v;
    env_open(&v, NULL);
    /* Four running slots; tenant A floods sixteen long requests. */
    struct sched *s = start(&v, 4, 64, 64, 64 << 20);
    int32_t prompt[] = {65, 66, 67, 68};
    struct sampler_bias no_eos = {tokenizer_eos(v.tok), -100};
    struct result *flood[16];
    for (int i = 0; i < 16; i++) {
        flood[i] = result_new();
        struct sched_request q = greedy(prompt, 4, 120, flood[i]);
        q.tenant = 1;
        q.sampling.logit_bias = &no_eos;
        q.sampling.n_logit_bias = 1;
        submit(s, &q);
    }
    /* Let A's flood get going, then B asks once. */
    while (true) {
        pthread_mutex_lock(&g_lock);
        int64_t now = g_clock;
        pthread_mutex_unlock(&g_lock);
        if (now > 40)
            break;
    }
    struct result *b = result_new();
    struct sched_request qb = greedy(prompt, 4, 8, b);
    qb.tenant = 2;
    pthread_mutex_lock(&g_lock);
    int64_t submitted_at = g_clock;
    pthread_mutex_unlock(&g_lock);
    submit(s, &qb);
    wait_done(b);
    /* B's first token comes within a few steps (a step yields at most four
     * tokens here), not after A's queue of 16 x 120 tokens drains. */
    int64_t waited = b->first_token_clock - submitted_at;
    assert_true(waited >= 0);
    if (waited > 4 * 4)
        fail_msg("tenant B waited %lld token events for its first token", (long long)waited);
    for (int i = 0; i < 16; i++)
        wait_done(flood[i]);
    sched_stop(s);
    for (int i = 0; i < 16; i++)
        free(flood[i]);
    free(b);
    env_close(&v);
}

static void test_embeddings_are_unit_vectors(void **state)
{
    (void)state;
    struct env v;
    env_open(&v, NULL);
    struct sched *s = start(&v, 8, 16, 16, 64 << 20);
    int32_t prompt[40];
    for (int i = 0; i < 40; i++)
        prompt[i] = 33 + i;
    struct result *a = result_new(), *b = result_new();
    struct sched_request q = {.prompt = prompt, .n_prompt = 40, .embedding = true, .weight = 1,
                              .on_event = on_event, .user = a, .n_choices = 1};
    submit(s, &q); /* 40 tokens through 16-token batches: pooled across chunks */
    q.user = b;
    q.n_prompt = 39;
    submit(s, &q);
    wait_done(a);
    wait_done(b);
    assert_int_equal(a->embedding_dim, (int)v.m->hp.n_embd);
    double norm = 0, dot = 0;
    for (int i = 0; i < a->embedding_dim; i++) {
        norm += (double)a->embedding[i] * a->embedding[i];
        dot += (double)a->embedding[i] * b->embedding[i];
    }
    assert_true(norm > 0.999 && norm < 1.001);
    assert_true(dot < 0.99999); /* different inputs, different vectors */
    assert_int_equal(a->prompt_tokens, 40);
    assert_int_equal(a->completion_tokens, 0);
    sched_stop(s);
    free(a);
    free(b);
    env_close(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_matches_llama2c),
        cmocka_unit_test(test_batch_invariance_and_forks),
        cmocka_unit_test(test_paced_batching_same_tokens),
        cmocka_unit_test(test_memory_pressure_recomputes_exactly),
        cmocka_unit_test(test_cancel_deadline_and_queue),
        cmocka_unit_test(test_fairness_between_tenants),
        cmocka_unit_test(test_embeddings_are_unit_vectors),
    };
    return cmocka_run_group_tests_name("scheduler", tests, NULL, NULL);
}
