/* money.c — see money.h. */
#include "server/money.h"

#include <stdio.h>
#include <string.h>

bool money_parse(const char *s, int64_t *out_micros, struct err *e)
{
    const char *p = s ? s : "";
    bool neg = *p == '-';
    p += neg;
    int64_t units = 0, frac = 0;
    int n_int = 0, n_frac = 0;
    for (; *p >= '0' && *p <= '9'; p++, n_int++) {
        if (units > (INT64_MAX / MONEY_MICROS - 9) / 10)
            return err_set(e, ERR_INVALID, "amount too large: '%s'", s);
        units = units * 10 + (*p - '0');
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, n_frac++) {
            if (n_frac == 6)
                return err_set(e, ERR_INVALID,
                               "amount '%s' has more than six decimals (micro-units)", s);
            frac = frac * 10 + (*p - '0');
        }
        if (n_frac == 0)
            n_int = 0; /* "5." is refused below */
    }
    if (*p || n_int == 0)
        return err_set(e, ERR_INVALID, "not an amount: '%s' (use e.g. 20 or 0.50)", s ? s : "");
    for (int i = n_frac; i < 6; i++)
        frac *= 10;
    int64_t v = units * MONEY_MICROS + frac;
    *out_micros = neg ? -v : v;
    return true;
}

void money_format(int64_t micros, char *buf, size_t size)
{
    /* Work on the magnitude as unsigned so INT64_MIN formats too. */
    uint64_t m = micros < 0 ? (uint64_t)0 - (uint64_t)micros : (uint64_t)micros;
    char frac[8];
    snprintf(frac, sizeof frac, "%06llu", (unsigned long long)(m % MONEY_MICROS));
    int keep = 6;
    while (keep > 2 && frac[keep - 1] == '0')
        keep--;
    frac[keep] = '\0';
    snprintf(buf, size, "%s%llu.%s", micros < 0 ? "-" : "",
             (unsigned long long)(m / MONEY_MICROS), frac);
}
