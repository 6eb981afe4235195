/*
 * config.h — the daemon's settings: one table, four sources.
 *
 * Contract
 *   Every setting is one row of the table in config.c: its flag name
 *   (--listen), environment variable (MAASD_LISTEN), config-file key
 *   (listen), default, and help. Precedence, highest first:
 *       command-line flag > environment > config file (--config) > default.
 *   config_load() fills a struct config from all four and validates every
 *   value; an invalid value fails with ERR_INVALID whose message names the
 *   setting and its source ("--max-body-bytes: not a size: 'x'").
 *   docs/operators.md carries the same table; `maasd serve --help` prints it.
 *
 * Ownership
 *   struct config is plain data (no pointers to free); copy it freely.
 */
#ifndef MAASD_CONFIG_H
#define MAASD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/err.h"
#include "server/log.h"

#define CONFIG_MAX_MODELS 16
#define CONFIG_PATH_MAX 1024

struct config_model {
    char id[64];
    char path[CONFIG_PATH_MAX];   /* "builtin:demo" for the built-in demo model */
};

struct config {
    char config_file[CONFIG_PATH_MAX];
    char listen_host[256];
    int listen_port;                  /* 0 = ephemeral (tests) */
    char db_path[CONFIG_PATH_MAX];
    struct config_model models[CONFIG_MAX_MODELS];
    int n_models;
    enum log_level log_level;
    uint64_t shutdown_timeout_ms;
    uint64_t max_body_bytes;
    int max_connections;
    uint64_t connection_timeout_ms;
    bool test_routes;                 /* the /_test/ routes, for the test suite only */

    /* inference (per model) */
    int max_running;
    int max_batch_tokens;
    int prefill_chunk;
    int itl_factor;
    int max_queue;
    uint64_t kv_cache_bytes;
    int ctx_size;                     /* 0 = the model's trained context */
    int threads;                      /* 0 = every online CPU */
    uint64_t request_timeout_ms;
    char key_pepper_file[CONFIG_PATH_MAX]; /* "" = <db_path>.pepper (server/pepper.h) */
    uint64_t idempotency_retention_ms;     /* stored idempotent responses live this long */
    uint64_t invoice_grace_ms;             /* a month closes this long after it ends */

    /* operations (docs/operators.md) */
    char metrics_token_file[CONFIG_PATH_MAX]; /* "" = /metrics open to loopback clients only */
    char tls_cert[CONFIG_PATH_MAX];           /* "" = plain HTTP */
    char tls_key[CONFIG_PATH_MAX];
    char backup_dir[CONFIG_PATH_MAX];         /* "" = no periodic backups */
    uint64_t backup_every_ms;
    int backup_keep;
};

/* Parse argv (after the subcommand name), the environment and the config
 * file into *cfg. `--help` is not handled here (see config_print_help). */
bool config_load(struct config *cfg, int argc, char **argv, struct err *e);

/* The settings table as help text (for `maasd serve --help`). */
void config_print_help(FILE *out);

#endif
