-- 0002_tenancy: who may call maasd, on which terms, and what they used.
-- docs/billing.md documents every table and column; keep the two in step.
--
-- Conventions: times are INTEGER milliseconds since the Unix epoch, UTC;
-- ranges are half-open [start, end); money is INTEGER micro-units of the
-- row's currency (1 USD = 1000000); public ids are a type prefix + 20
-- base62 characters. Tables that are history (plan versions in force,
-- subscription changes, the usage ledger, the audit log) refuse UPDATE and
-- DELETE through triggers: corrections are new rows.

CREATE TABLE customers (
    id          TEXT PRIMARY KEY,                 -- 'cus_…'
    name        TEXT NOT NULL,
    email       TEXT,
    status      TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended', 'erased')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX customers_by_created ON customers (created_at, id);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,             -- 'key_…'
    customer_id     TEXT NOT NULL REFERENCES customers (id),
    name            TEXT NOT NULL DEFAULT '',
    display_prefix  TEXT NOT NULL,                -- 'mk_live_abcd…wxyz'
    hash            BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),  -- HMAC-SHA-256(pepper, secret)
    scopes          TEXT NOT NULL CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
    allowed_models  TEXT CHECK (allowed_models IS NULL OR
                                (json_valid(allowed_models) AND json_type(allowed_models) = 'array')),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,                      -- NULL: never
    revoked_at      INTEGER,                      -- NULL: not revoked; may be in the future (rotation grace)
    last_used_at    INTEGER,                      -- at most once a minute
    rotated_to      TEXT REFERENCES api_keys (id) -- the key that replaced this one
);
CREATE INDEX api_keys_by_customer ON api_keys (customer_id, created_at, id);

CREATE TABLE plans (
    id          TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 32),  -- 'free', 'pro', …
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE plan_versions (
    id                          INTEGER PRIMARY KEY,
    plan_id                     TEXT NOT NULL REFERENCES plans (id),
    version                     INTEGER NOT NULL CHECK (version >= 1),
    effective_from              INTEGER NOT NULL,
    billing_interval            TEXT NOT NULL CHECK (billing_interval IN ('month', 'year')),
    currency                    TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    base_fee_micros             INTEGER NOT NULL CHECK (base_fee_micros >= 0),
    included_tokens             INTEGER NOT NULL CHECK (included_tokens >= 0),
    price_input_per_1m_micros   INTEGER NOT NULL CHECK (price_input_per_1m_micros >= 0),
    price_output_per_1m_micros  INTEGER NOT NULL CHECK (price_output_per_1m_micros >= 0),
    price_per_request_micros    INTEGER NOT NULL CHECK (price_per_request_micros >= 0),
    requests_per_minute         INTEGER NOT NULL CHECK (requests_per_minute >= 1),
    tokens_per_minute           INTEGER NOT NULL CHECK (tokens_per_minute >= 1),
    max_concurrent_requests     INTEGER NOT NULL CHECK (max_concurrent_requests >= 1),
    max_tokens_per_request      INTEGER NOT NULL CHECK (max_tokens_per_request >= 1),
    allowed_models              TEXT CHECK (allowed_models IS NULL OR
                                            (json_valid(allowed_models) AND json_type(allowed_models) = 'array')),
    scheduler_weight            INTEGER NOT NULL CHECK (scheduler_weight BETWEEN 1 AND 1000),
    trial_days                  INTEGER NOT NULL CHECK (trial_days BETWEEN 0 AND 365),
    hard_cap                    INTEGER NOT NULL CHECK (hard_cap IN (0, 1)),
    created_at                  INTEGER NOT NULL,
    UNIQUE (plan_id, version),
    UNIQUE (plan_id, effective_from)
);

CREATE TABLE subscriptions (
    id                    TEXT PRIMARY KEY,       -- 'sub_…'
    customer_id           TEXT NOT NULL REFERENCES customers (id),
    plan_id               TEXT NOT NULL REFERENCES plans (id),
    status                TEXT NOT NULL
                          CHECK (status IN ('trialing', 'active', 'past_due', 'canceled')),
    billing_anchor_day    INTEGER NOT NULL CHECK (billing_anchor_day BETWEEN 1 AND 31),
    billing_anchor_month  INTEGER NOT NULL CHECK (billing_anchor_month BETWEEN 1 AND 12),
    current_period_start  INTEGER NOT NULL,
    current_period_end    INTEGER NOT NULL CHECK (current_period_end > current_period_start),
    trial_end             INTEGER,
    cancel_at_period_end  INTEGER NOT NULL DEFAULT 0 CHECK (cancel_at_period_end IN (0, 1)),
    canceled_at           INTEGER,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);
-- One live subscription per customer; canceled ones stay as history.
CREATE UNIQUE INDEX subscriptions_one_live ON subscriptions (customer_id) WHERE status <> 'canceled';
CREATE INDEX subscriptions_by_customer ON subscriptions (customer_id, created_at);
-- The renewal job (every minute) finds what time has moved on without a scan.
CREATE INDEX subscriptions_live_by_period_end ON subscriptions (current_period_end)
    WHERE status <> 'canceled';
CREATE INDEX subscriptions_trials_by_end ON subscriptions (trial_end) WHERE status = 'trialing';

CREATE TABLE subscription_changes (
    id                    INTEGER PRIMARY KEY,
    subscription_id       TEXT NOT NULL REFERENCES subscriptions (id),
    at                    INTEGER NOT NULL,
    kind                  TEXT NOT NULL CHECK (kind IN ('created', 'plan_changed', 'renewed',
                              'trial_ended', 'cancel_scheduled', 'canceled', 'status_changed')),
    from_plan_version_id  INTEGER REFERENCES plan_versions (id),
    to_plan_version_id    INTEGER REFERENCES plan_versions (id),
    from_status           TEXT,
    to_status             TEXT,
    actor                 TEXT NOT NULL
);
CREATE INDEX subscription_changes_by_sub ON subscription_changes (subscription_id, at);

CREATE TABLE credits (
    id           TEXT PRIMARY KEY,                -- 'cred_…'
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    kind         TEXT NOT NULL CHECK (kind IN ('prepaid', 'promotional')),
    unit         TEXT NOT NULL CHECK (unit IN ('micros', 'tokens')),
    currency     TEXT CHECK ((unit = 'micros') = (currency IS NOT NULL)),
    amount       INTEGER NOT NULL CHECK (amount > 0),
    remaining    INTEGER NOT NULL CHECK (remaining BETWEEN 0 AND amount),
    granted_at   INTEGER NOT NULL,
    expires_at   INTEGER,                          -- NULL: never
    reason       TEXT NOT NULL,
    granted_by   TEXT NOT NULL
);
CREATE INDEX credits_by_customer ON credits (customer_id, granted_at, id);

CREATE TABLE usage_ledger (
    request_id         TEXT PRIMARY KEY,          -- a request is recorded at most once
    customer_id        TEXT NOT NULL REFERENCES customers (id),
    api_key_id         TEXT NOT NULL REFERENCES api_keys (id),
    model              TEXT NOT NULL,
    endpoint           TEXT NOT NULL,
    prompt_tokens      INTEGER NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens  INTEGER NOT NULL CHECK (completion_tokens >= 0),
    finish_reason      TEXT,
    client_aborted     INTEGER NOT NULL CHECK (client_aborted IN (0, 1)),
    status             INTEGER NOT NULL,          -- HTTP status returned
    queue_ms           INTEGER NOT NULL CHECK (queue_ms >= 0),
    compute_ms         INTEGER NOT NULL CHECK (compute_ms >= 0),
    started_at         INTEGER NOT NULL,
    finished_at        INTEGER NOT NULL CHECK (finished_at >= started_at),
    recorded_at        INTEGER NOT NULL,
    plan_version_id    INTEGER NOT NULL REFERENCES plan_versions (id)
);
CREATE INDEX usage_ledger_by_customer ON usage_ledger (customer_id, started_at);

-- Daily totals of the ledger, kept by a trigger in the same transaction as
-- each ledger row: admission loads a period's usage and /v1/usage answers
-- day buckets from at most a few hundred rows. Billing periods start at
-- 00:00 UTC (caltime.h), so a period is a whole number of these days.
CREATE TABLE usage_daily (
    customer_id        TEXT NOT NULL,
    day                INTEGER NOT NULL,          -- 00:00 UTC of started_at's day, ms
    model              TEXT NOT NULL,
    api_key_id         TEXT NOT NULL,
    requests           INTEGER NOT NULL,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    PRIMARY KEY (customer_id, day, model, api_key_id)
) WITHOUT ROWID;

CREATE TABLE audit_log (
    seq          INTEGER PRIMARY KEY,             -- 1, 2, 3, … without gaps
    at           INTEGER NOT NULL,
    actor        TEXT NOT NULL,                   -- 'key:key_…', 'cli:<unix user>', 'system:<what>'
    action       TEXT NOT NULL,                   -- 'customer.create', 'key.revoke', …
    target       TEXT NOT NULL,                   -- id of what was acted on
    before_json  TEXT,                            -- the row before (NULL for creations)
    after_json   TEXT,                            -- the row after
    prev_hash    TEXT NOT NULL,                   -- hash of row seq-1 (64 zeros for seq 1)
    hash         TEXT NOT NULL                    -- SHA-256 hex, see docs/billing.md
);

CREATE TABLE idempotency_keys (
    customer_id      TEXT NOT NULL,
    key              TEXT NOT NULL,
    request_hash     BLOB NOT NULL,               -- SHA-256 of method, path and body
    status           TEXT NOT NULL CHECK (status IN ('in_flight', 'done')),
    response_status  INTEGER,
    response_body    BLOB,                        -- non-streamed responses only; purged at expires_at
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    PRIMARY KEY (customer_id, key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);

-- Seed plans. effective_from = 0: in force since before any customer.
INSERT INTO plans (id, name, created_at) VALUES
    ('free', 'Free', 0), ('pro', 'Pro', 0), ('enterprise', 'Enterprise', 0);
INSERT INTO plan_versions (plan_id, version, effective_from, billing_interval, currency,
    base_fee_micros, included_tokens, price_input_per_1m_micros, price_output_per_1m_micros,
    price_per_request_micros, requests_per_minute, tokens_per_minute, max_concurrent_requests,
    max_tokens_per_request, allowed_models, scheduler_weight, trial_days, hard_cap, created_at)
VALUES
    -- free: 100k tokens a month, refused beyond them
    ('free', 1, 0, 'month', 'USD', 0, 100000, 0, 0, 0,
     20, 10000, 2, 1024, NULL, 1, 0, 1, 0),
    -- pro: $20/month with 2M tokens, then $0.50 in / $1.50 out per 1M tokens
    ('pro', 1, 0, 'month', 'USD', 20000000, 2000000, 500000, 1500000, 0,
     600, 200000, 8, 4096, NULL, 4, 14, 0, 0),
    -- enterprise: $6000/year with 600M tokens, then $0.30 in / $1.00 out per 1M
    ('enterprise', 1, 0, 'year', 'USD', 6000000000, 600000000, 300000, 1000000, 0,
     6000, 2000000, 32, 8192, NULL, 16, 0, 0, 0);

-- History is append-only. "now" in SQL: ms since the epoch.
CREATE TRIGGER plan_versions_no_backdating BEFORE INSERT ON plan_versions
WHEN NEW.effective_from < CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - 1000
BEGIN
    SELECT RAISE(ABORT, 'a plan version cannot take effect in the past: history is never rewritten');
END;
CREATE TRIGGER plan_versions_in_order BEFORE INSERT ON plan_versions
WHEN NEW.effective_from <= (SELECT max(effective_from) FROM plan_versions WHERE plan_id = NEW.plan_id)
BEGIN
    SELECT RAISE(ABORT, 'a new plan version must take effect after the latest version of its plan');
END;
CREATE TRIGGER plan_versions_frozen_update BEFORE UPDATE ON plan_versions
WHEN OLD.effective_from <= CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
  OR NEW.effective_from <= CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
BEGIN
    SELECT RAISE(ABORT, 'a plan version in force cannot be changed: create a new version');
END;
CREATE TRIGGER plan_versions_frozen_delete BEFORE DELETE ON plan_versions
WHEN OLD.effective_from <= CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
BEGIN
    SELECT RAISE(ABORT, 'a plan version in force cannot be deleted: create a new version');
END;

CREATE TRIGGER subscription_changes_no_update BEFORE UPDATE ON subscription_changes
BEGIN SELECT RAISE(ABORT, 'subscription_changes is append-only'); END;
CREATE TRIGGER subscription_changes_no_delete BEFORE DELETE ON subscription_changes
BEGIN SELECT RAISE(ABORT, 'subscription_changes is append-only'); END;

CREATE TRIGGER usage_ledger_no_update BEFORE UPDATE ON usage_ledger
BEGIN SELECT RAISE(ABORT, 'usage_ledger is append-only'); END;
CREATE TRIGGER usage_ledger_no_delete BEFORE DELETE ON usage_ledger
BEGIN SELECT RAISE(ABORT, 'usage_ledger is append-only'); END;

CREATE TRIGGER usage_ledger_daily AFTER INSERT ON usage_ledger
BEGIN
    INSERT INTO usage_daily (customer_id, day, model, api_key_id, requests, prompt_tokens,
                             completion_tokens)
    VALUES (NEW.customer_id, NEW.started_at - NEW.started_at % 86400000, NEW.model,
            NEW.api_key_id, 1, NEW.prompt_tokens, NEW.completion_tokens)
    ON CONFLICT (customer_id, day, model, api_key_id) DO UPDATE SET
        requests = requests + 1,
        prompt_tokens = prompt_tokens + excluded.prompt_tokens,
        completion_tokens = completion_tokens + excluded.completion_tokens;
END;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
