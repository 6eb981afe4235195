/* fuzz_finance_input.c — the text a finance caller controls: a period
 * ("YYYY-MM"), a bucket width and a group_by list (query strings and CLI
 * flags), and the amounts rendered back. Each parser must accept or
 * refuse, never crash or read out of bounds; what it accepts must render
 * back to itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/invoices.h"
#include "server/usage_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct err e;
    int64_t start, end;
    if (invoices_period_parse(s, &start, &end, &e)) {
        char back[INVOICE_PERIOD_MAX];
        invoices_period_of(start, back);
        if (strcmp(back, s) != 0 || end <= start)
            abort();
        invoices_period_of(end - 1, back);
        if (strcmp(back, s) != 0)
            abort();
    }
    enum usage_bucket b;
    unsigned g;
    if (usage_report_parse_bucket(s, &b, &e)) {
        int64_t t = size >= 8 ? (int64_t)((uint64_t)data[0] << 40 | (uint64_t)data[1] << 32 |
                                          (uint64_t)data[2] << 24 | (uint64_t)data[3] << 16 |
                                          (uint64_t)data[4] << 8 | data[5])
                              : 0;
        int64_t f = usage_report_bucket_floor(b, t), n = usage_report_bucket_next(b, t);
        if (!(f <= t && t < n))
            abort();
    }
    usage_report_parse_group_by(s, &g, &e);
    char amount[32];
    int64_t v = 0;
    memcpy(&v, data, size < sizeof v ? size : sizeof v);
    invoices_amount_text(v, s, amount, sizeof amount);
    free(s);
    return 0;
}
