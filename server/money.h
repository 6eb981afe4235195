/*
 * money.h — amounts of money as int64 micro-units (1 USD = 1,000,000),
 * to and from the decimal text people type and read.
 *
 * Contract
 *   money_parse() accepts an optional '-', digits and at most six decimals
 *   ("20", "20.5", "0.000001"); anything else, or a value beyond ±9.2e12
 *   units, is ERR_INVALID. No floating point anywhere: a price entered is
 *   the price stored.
 */
#ifndef MAASD_MONEY_H
#define MAASD_MONEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

#define MONEY_MICROS 1000000LL

bool money_parse(const char *s, int64_t *out_micros, struct err *e);
/* "20.50", "0.000001", "-3.00": at least two decimals, trailing zeros
 * beyond them dropped. buf >= 32 bytes. */
void money_format(int64_t micros, char *buf, size_t size);

#endif
