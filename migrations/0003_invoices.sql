-- 0003_invoices: what finance bills from the ledger, frozen once finalized.
-- docs/finance.md explains every figure; keep the two in step.
--
-- Draft invoices are not stored: they are computed from the ledger, plans,
-- subscriptions and credits whenever they are read, so they are never
-- stale. Closing a month (maasd invoices close) stores its invoices,
-- finalized, and from then on nothing here can change: triggers refuse
-- UPDATE and DELETE, and an invoice's lines are complete once its header
-- row exists.

-- The billing anchor each subscription took at its 'created' and
-- 'plan_changed' changes. The subscriptions row only holds the anchor in
-- force now (an interval change moves it), and invoicing must rebuild every
-- past period, so a trigger records it in the same transaction as the
-- change: the tenancy code does not need to know.
CREATE TABLE subscription_anchors (
    change_id             INTEGER PRIMARY KEY REFERENCES subscription_changes (id),
    subscription_id       TEXT NOT NULL REFERENCES subscriptions (id),
    at                    INTEGER NOT NULL,
    billing_anchor_day    INTEGER NOT NULL CHECK (billing_anchor_day BETWEEN 1 AND 31),
    billing_anchor_month  INTEGER NOT NULL CHECK (billing_anchor_month BETWEEN 1 AND 12)
);
CREATE INDEX subscription_anchors_by_sub ON subscription_anchors (subscription_id, at);

CREATE TRIGGER subscription_anchors_capture AFTER INSERT ON subscription_changes
WHEN NEW.kind IN ('created', 'plan_changed')
BEGIN
    INSERT INTO subscription_anchors (change_id, subscription_id, at, billing_anchor_day,
                                      billing_anchor_month)
    SELECT NEW.id, s.id, NEW.at, s.billing_anchor_day, s.billing_anchor_month
    FROM subscriptions s WHERE s.id = NEW.subscription_id;
END;

-- Subscriptions that predate this migration: their anchor now is the best
-- knowledge there is (exact unless their billing interval changed).
INSERT INTO subscription_anchors (change_id, subscription_id, at, billing_anchor_day,
                                  billing_anchor_month)
SELECT c.id, c.subscription_id, c.at, s.billing_anchor_day, s.billing_anchor_month
FROM subscription_changes c JOIN subscriptions s ON s.id = c.subscription_id
WHERE c.kind IN ('created', 'plan_changed');

CREATE TRIGGER subscription_anchors_no_update BEFORE UPDATE ON subscription_anchors
BEGIN SELECT RAISE(ABORT, 'subscription_anchors is append-only'); END;
CREATE TRIGGER subscription_anchors_no_delete BEFORE DELETE ON subscription_anchors
BEGIN SELECT RAISE(ABORT, 'subscription_anchors is append-only'); END;

-- Finance reads the ledger by time across every customer (usage reports,
-- the revenue summary); without this index each report scans all history.
CREATE INDEX usage_ledger_by_started ON usage_ledger (started_at);

-- Finalized invoices. `id` is derived from (subscription_id,
-- service_start), so a draft keeps its id when it is finalized.
CREATE TABLE invoices (
    id               TEXT PRIMARY KEY,            -- 'in_…'
    number           INTEGER NOT NULL UNIQUE CHECK (number >= 1),  -- 1, 2, 3, … in finalization order
    customer_id      TEXT NOT NULL REFERENCES customers (id),
    subscription_id  TEXT NOT NULL REFERENCES subscriptions (id),
    plan_id          TEXT NOT NULL,               -- the plan at the end of the service window
    period           TEXT NOT NULL,               -- 'YYYY-MM': the month of service_end - 1 ms
    period_start     INTEGER NOT NULL,            -- the billing period as subscribed [start, end)
    period_end       INTEGER NOT NULL CHECK (period_end > period_start),
    service_start    INTEGER NOT NULL,            -- the part of it the subscription was live
    service_end      INTEGER NOT NULL CHECK (service_end > service_start),
    currency         TEXT NOT NULL,
    total_micros     INTEGER NOT NULL,
    line_count       INTEGER NOT NULL CHECK (line_count >= 0),
    late_seq         INTEGER NOT NULL,            -- the late_usage rows known when finalized: seq <= this
    finalized_at     INTEGER NOT NULL,
    finalized_by     TEXT NOT NULL,
    UNIQUE (subscription_id, service_start)
);
CREATE INDEX invoices_by_period ON invoices (period, customer_id);
CREATE INDEX invoices_by_customer ON invoices (customer_id, service_end);

CREATE TABLE invoice_lines (
    -- Deferred: lines are inserted before their header (see below).
    invoice_id         TEXT NOT NULL REFERENCES invoices (id) DEFERRABLE INITIALLY DEFERRED,
    line_no            INTEGER NOT NULL CHECK (line_no >= 1),
    type               TEXT NOT NULL CHECK (type IN ('base_fee', 'proration_charge',
                           'proration_credit', 'allowance', 'usage_input', 'usage_output',
                           'usage_requests', 'adjustment', 'credit_tokens', 'credit_amount')),
    description        TEXT NOT NULL,
    plan_version_id    INTEGER REFERENCES plan_versions (id),
    ref                TEXT,                      -- the credit, or the invoice adjusted
    start_at           INTEGER NOT NULL,          -- the time the line covers [start_at, end_at)
    end_at             INTEGER NOT NULL,
    quantity           INTEGER NOT NULL,
    included_quantity  INTEGER NOT NULL,
    unit               TEXT NOT NULL,             -- 'period', 'token', 'request', 'micros'
    unit_price_micros  INTEGER NOT NULL,          -- per unit; per 1 000 000 for tokens
    amount_micros      INTEGER NOT NULL,          -- rounded once, half-even, to the currency's minor unit
    ledger_rows        INTEGER,                   -- usage and adjustment lines: rows covered
    digest             TEXT,                      -- SHA-256 hex over those rows, see docs/finance.md
    PRIMARY KEY (invoice_id, line_no)
) WITHOUT ROWID;
-- What each credit gave to finalized invoices (credit lines name it in ref).
CREATE INDEX invoice_lines_by_ref ON invoice_lines (ref) WHERE ref IS NOT NULL;

-- Months closed: every invoice whose service window ends in the month is
-- finalized in the same transaction as this row.
CREATE TABLE invoice_periods (
    period        TEXT PRIMARY KEY,               -- 'YYYY-MM'
    closed_at     INTEGER NOT NULL,
    closed_by     TEXT NOT NULL,
    invoices      INTEGER NOT NULL,
    first_number  INTEGER,                        -- NULL when the month had no invoice
    last_number   INTEGER
);

-- Ledger rows that arrived for a finalized invoice's window after it was
-- finalized (a crash-recovered request, a slow writer). Found by a trigger
-- at insert time, so "late" follows commit order, not clocks: the invoice
-- was computed from exactly the rows committed before it. seq numbers
-- them in arrival order (an INTEGER PRIMARY KEY: VACUUM keeps it), and
-- each finalized invoice records the highest seq at its finalization
-- (invoices.late_seq): a late row is billed as an adjustment on the
-- customer's first invoice finalized after it arrived, or on the draft
-- that follows.
CREATE TABLE late_usage (
    seq           INTEGER PRIMARY KEY,
    request_id    TEXT NOT NULL UNIQUE REFERENCES usage_ledger (request_id),
    invoice_id    TEXT NOT NULL REFERENCES invoices (id),
    customer_id   TEXT NOT NULL
);
CREATE INDEX late_usage_by_customer ON late_usage (customer_id);
CREATE INDEX late_usage_by_invoice ON late_usage (invoice_id);

-- Every ledger insert compiles this trigger (ledger_insert prepares each
-- time): it is kept to one indexed lookup with no subquery.
CREATE TRIGGER usage_ledger_late AFTER INSERT ON usage_ledger
BEGIN
    INSERT OR IGNORE INTO late_usage (request_id, invoice_id, customer_id)
    SELECT NEW.request_id, i.id, NEW.customer_id FROM invoices i
    WHERE i.customer_id = NEW.customer_id AND i.service_end > NEW.started_at
      AND i.service_start <= NEW.started_at;
END;

-- Finalized means final.
CREATE TRIGGER invoices_no_update BEFORE UPDATE ON invoices
BEGIN SELECT RAISE(ABORT, 'a finalized invoice cannot be changed'); END;
CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices
BEGIN SELECT RAISE(ABORT, 'a finalized invoice cannot be deleted'); END;
CREATE TRIGGER invoice_lines_no_update BEFORE UPDATE ON invoice_lines
BEGIN SELECT RAISE(ABORT, 'the lines of a finalized invoice cannot be changed'); END;
CREATE TRIGGER invoice_lines_no_delete BEFORE DELETE ON invoice_lines
BEGIN SELECT RAISE(ABORT, 'the lines of a finalized invoice cannot be deleted'); END;
-- Lines go in before their header (in one transaction); once the header
-- exists the invoice is complete.
CREATE TRIGGER invoice_lines_complete BEFORE INSERT ON invoice_lines
WHEN EXISTS (SELECT 1 FROM invoices WHERE id = NEW.invoice_id)
BEGIN SELECT RAISE(ABORT, 'a finalized invoice cannot get new lines'); END;
CREATE TRIGGER invoices_lines_present BEFORE INSERT ON invoices
WHEN (SELECT count(*) FROM invoice_lines WHERE invoice_id = NEW.id) <> NEW.line_count
BEGIN SELECT RAISE(ABORT, 'an invoice must be stored with all its lines'); END;
CREATE TRIGGER invoice_periods_no_update BEFORE UPDATE ON invoice_periods
BEGIN SELECT RAISE(ABORT, 'a closed period cannot be reopened'); END;
CREATE TRIGGER invoice_periods_no_delete BEFORE DELETE ON invoice_periods
BEGIN SELECT RAISE(ABORT, 'a closed period cannot be reopened'); END;
CREATE TRIGGER late_usage_no_update BEFORE UPDATE ON late_usage
BEGIN SELECT RAISE(ABORT, 'late_usage is append-only'); END;
CREATE TRIGGER late_usage_no_delete BEFORE DELETE ON late_usage
BEGIN SELECT RAISE(ABORT, 'late_usage is append-only'); END;
