/* admission.c — see admission.h. */
#include "server/admission.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 1024
#define IDLE_MS (5 * 60000)
/* Bucket levels are kept in units of 1/60000 of a request or token, so a
 * limit of L per minute refills exactly L units per millisecond: integer
 * arithmetic, no drift. */
#define SCALE 60000

struct bucket {
    int64_t level;   /* scaled; may go below zero after an under-estimate */
    int64_t limit;   /* per minute */
    int64_t at;      /* last refill, ms */
};

struct cust {
    char id[RANDID_MAX];
    struct bucket req, tok;
    int64_t concurrent;
    int64_t period_start;
    bool period_loaded;
    int64_t period_used;      /* loaded ledger total + settled since */
    int64_t period_reserved;  /* reservations of this period's requests in flight */
    int64_t last_seen;
    struct cust *next;
};

struct admission {
    pthread_mutex_t lock;
    admission_usage_fn load;
    void *load_arg;
    struct cust *buckets[BUCKETS];
    size_t n;
};

struct admission *admission_new(admission_usage_fn load, void *load_arg)
{
    struct admission *adm = calloc(1, sizeof *adm);
    if (!adm)
        return NULL;
    pthread_mutex_init(&adm->lock, NULL);
    adm->load = load;
    adm->load_arg = load_arg;
    return adm;
}

void admission_free(struct admission *adm)
{
    if (!adm)
        return;
    for (int i = 0; i < BUCKETS; i++) {
        for (struct cust *c = adm->buckets[i], *next; c; c = next) {
            next = c->next;
            free(c);
        }
    }
    pthread_mutex_destroy(&adm->lock);
    free(adm);
}

static unsigned slot_of(const char *id)
{
    unsigned h = 2166136261u;
    for (const unsigned char *s = (const unsigned char *)id; *s; s++)
        h = (h ^ *s) * 16777619u;
    return h % BUCKETS;
}

static struct cust *lookup(struct admission *adm, const char *id, bool create, int64_t now)
{
    struct cust **pp = &adm->buckets[slot_of(id)];
    for (struct cust *c = *pp; c; c = c->next)
        if (strcmp(c->id, id) == 0)
            return c;
    if (!create)
        return NULL;
    struct cust *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    snprintf(c->id, sizeof c->id, "%s", id);
    c->req.at = c->tok.at = now;
    c->req.limit = c->tok.limit = -1; /* filled on first refill */
    c->next = *pp;
    *pp = c;
    adm->n++;
    return c;
}

/* Bring a bucket to `now` under `limit` (a new plan may change it). A new
 * bucket starts full. */
static void refill(struct bucket *b, int64_t limit, int64_t now)
{
    int64_t cap = limit * SCALE;
    if (b->limit < 0) {
        b->level = cap;
    } else if (now - b->at >= SCALE) {
        b->level = cap; /* a minute refills any bucket, and bounds the product below */
    } else if (now > b->at) {
        int64_t add = (now - b->at) * limit;
        b->level = b->level > cap - add ? cap : b->level + add;
    }
    if (b->level > cap)
        b->level = cap;
    b->limit = limit;
    if (now > b->at)
        b->at = now;
}

static int64_t remaining(const struct bucket *b) { return b->level > 0 ? b->level / SCALE : 0; }

/* ms until the bucket holds `units` (whole units), rounded up. */
static int64_t wait_for(const struct bucket *b, int64_t units)
{
    int64_t missing = units * SCALE - b->level;
    return missing <= 0 ? 0 : (missing + b->limit - 1) / b->limit;
}

static void fill_headers(const struct cust *c, struct admission_headers *h)
{
    h->valid = true;
    h->limit_requests = c->req.limit;
    h->remaining_requests = remaining(&c->req);
    h->reset_requests_ms = wait_for(&c->req, c->req.limit);
    h->limit_tokens = c->tok.limit;
    h->remaining_tokens = remaining(&c->tok);
    h->reset_tokens_ms = wait_for(&c->tok, c->tok.limit);
}

static int64_t ceil_s(int64_t ms) { return ms <= 0 ? 1 : (ms + 999) / 1000; }

static bool load_period(struct admission *adm, struct cust *c, const struct principal *p,
                        struct err *e)
{
    if (c->period_start != p->period_start) {
        /* A new period: tickets of the old one no longer count here. */
        c->period_start = p->period_start;
        c->period_loaded = false;
        c->period_used = 0;
        c->period_reserved = 0;
    }
    if (c->period_loaded)
        return true;
    int64_t used = 0;
    if (adm->load && !adm->load(adm->load_arg, c->id, p->period_start, p->period_end, &used, e))
        return false;
    c->period_used = used;
    c->period_loaded = true;
    return true;
}

static bool admit_locked(struct admission *adm, const struct principal *p, int64_t est_prompt,
                         int64_t max_tokens, int64_t now, struct admission_ticket *t,
                         struct admission_headers *h, struct err *e)
{
    if (!p->has_plan)
        return err_set(e, ERR_QUOTA,
                       "This account has no active subscription; contact the operator");
    if (strcmp(p->subscription_status, "past_due") == 0) {
        h->retry_after_s = 0;
        return err_set(e, ERR_QUOTA,
                       "This account's payment is past due; inference resumes once it is settled");
    }
    const struct plan_version *pv = &p->plan;
    if (max_tokens <= 0)
        max_tokens = pv->max_tokens_per_request;
    if (est_prompt < 0)
        est_prompt = 0;
    if (max_tokens > pv->max_tokens_per_request)
        return err_set_param(e, ERR_INVALID, "max_tokens",
                             "max_tokens is %lld; your plan allows at most %lld per request",
                             (long long)max_tokens, (long long)pv->max_tokens_per_request);

    struct cust *c = lookup(adm, p->customer_id, true, now);
    c->last_seen = now;
    refill(&c->req, pv->requests_per_minute, now);
    refill(&c->tok, pv->tokens_per_minute, now);
    fill_headers(c, h);

    if (c->concurrent >= pv->max_concurrent_requests) {
        h->retry_after_s = 1;
        return err_set(e, ERR_RATE_LIMITED,
                       "Too many concurrent requests: your plan allows %lld at a time",
                       (long long)pv->max_concurrent_requests);
    }
    if (c->req.level < SCALE) {
        h->retry_after_s = ceil_s(wait_for(&c->req, 1));
        return err_set(e, ERR_RATE_LIMITED,
                       "Rate limit reached for requests: limit %lld per minute; retry in %llds",
                       (long long)pv->requests_per_minute, (long long)h->retry_after_s);
    }
    int64_t granted = max_tokens;
    if (pv->hard_cap) {
        if (!load_period(adm, c, p, e))
            return false;
        int64_t left = pv->included_tokens + p->credit_tokens - c->period_used - c->period_reserved;
        if (left <= est_prompt) {
            h->retry_after_s = ceil_s(p->period_end - now);
            return err_set(e, ERR_QUOTA,
                           "You exceeded your plan's included tokens for this billing period "
                           "(%lld); upgrade your plan or wait for the next period",
                           (long long)(pv->included_tokens + p->credit_tokens));
        }
        if (left - est_prompt < granted)
            granted = left - est_prompt;
    }
    int64_t need = est_prompt + granted;
    if (need > pv->tokens_per_minute) {
        h->retry_after_s = 60;
        return err_set(e, ERR_RATE_LIMITED,
                       "Request too large: it needs %lld tokens (prompt + max_tokens) but your "
                       "limit is %lld tokens per minute; lower max_tokens",
                       (long long)need, (long long)pv->tokens_per_minute);
    }
    if (c->tok.level < need * SCALE) {
        h->retry_after_s = ceil_s(wait_for(&c->tok, need));
        return err_set(e, ERR_RATE_LIMITED,
                       "Rate limit reached for tokens: limit %lld per minute, this request "
                       "reserves %lld; retry in %llds",
                       (long long)pv->tokens_per_minute, (long long)need,
                       (long long)h->retry_after_s);
    }

    /* Everything passed: reserve all of it. */
    c->req.level -= SCALE;
    c->tok.level -= need * SCALE;
    c->concurrent++;
    if (pv->hard_cap)
        c->period_reserved += need;
    fill_headers(c, h);
    memset(t, 0, sizeof *t);
    snprintf(t->customer_id, sizeof t->customer_id, "%s", p->customer_id);
    t->plan_version_id = pv->id;
    t->period_start = p->period_start;
    t->max_tokens = granted;
    t->reserved_tokens = need;
    t->hard_cap = pv->hard_cap;
    t->active = true;
    return true;
}

bool admission_admit(struct admission *adm, const struct principal *p, int64_t est_prompt_tokens,
                     int64_t max_tokens, int64_t now_ms, struct admission_ticket *ticket,
                     struct admission_headers *h, struct err *e)
{
    memset(h, 0, sizeof *h);
    ticket->active = false;
    pthread_mutex_lock(&adm->lock);
    bool ok = admit_locked(adm, p, est_prompt_tokens, max_tokens, now_ms, ticket, h, e);
    pthread_mutex_unlock(&adm->lock);
    return ok;
}

void admission_settle(struct admission *adm, struct admission_ticket *t, int64_t prompt_tokens,
                      int64_t completion_tokens, int64_t now_ms)
{
    if (!t->active)
        return;
    t->active = false;
    pthread_mutex_lock(&adm->lock);
    struct cust *c = lookup(adm, t->customer_id, false, now_ms);
    if (c) {
        int64_t used = prompt_tokens + completion_tokens;
        if (c->concurrent > 0)
            c->concurrent--;
        if (c->tok.limit > 0) {
            refill(&c->tok, c->tok.limit, now_ms);
            int64_t cap = c->tok.limit * SCALE;
            c->tok.level += (t->reserved_tokens - used) * SCALE;
            if (c->tok.level > cap)
                c->tok.level = cap;
        }
        if (t->hard_cap && c->period_start == t->period_start) {
            c->period_reserved -= t->reserved_tokens;
            if (c->period_reserved < 0)
                c->period_reserved = 0;
            c->period_used += used;
        }
        c->last_seen = now_ms;
    }
    pthread_mutex_unlock(&adm->lock);
}

void admission_sweep(struct admission *adm, int64_t now_ms)
{
    pthread_mutex_lock(&adm->lock);
    for (int i = 0; i < BUCKETS; i++) {
        struct cust **pp = &adm->buckets[i];
        while (*pp) {
            struct cust *c = *pp;
            if (c->concurrent == 0 && c->period_reserved == 0 && now_ms - c->last_seen > IDLE_MS) {
                *pp = c->next;
                free(c);
                adm->n--;
            } else {
                pp = &c->next;
            }
        }
    }
    pthread_mutex_unlock(&adm->lock);
}

size_t admission_tracked(struct admission *adm)
{
    pthread_mutex_lock(&adm->lock);
    size_t n = adm->n;
    pthread_mutex_unlock(&adm->lock);
    return n;
}

void admission_format_duration(int64_t ms, char *buf, size_t size)
{
    if (ms < 0)
        ms = 0;
    if (ms < 1000) {
        snprintf(buf, size, "%lldms", (long long)ms);
        return;
    }
    int64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
    char secs[16];
    if (frac) {
        snprintf(secs, sizeof secs, "%lld.%03lld", (long long)s, (long long)frac);
        size_t n = strlen(secs);
        while (secs[n - 1] == '0')
            secs[--n] = '\0';
    } else {
        snprintf(secs, sizeof secs, "%lld", (long long)s);
    }
    if (h)
        snprintf(buf, size, "%lldh%lldm%ss", (long long)h, (long long)m, secs);
    else if (m)
        snprintf(buf, size, "%lldm%ss", (long long)m, secs);
    else
        snprintf(buf, size, "%ss", secs);
}
