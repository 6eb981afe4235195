/*
 * testutil.h — helpers for the cmocka unit tests.
 *
 * Shared data (../shared beside the checkout, or $MAASD_SHARED) is optional:
 * the project's users do not have it. A test that needs it calls
 * test_shared_path() and skips, with a message, when it returns NULL.
 */
#ifndef MAASD_TESTUTIL_H
#define MAASD_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Full path of `rel` inside the shared data folder, or NULL (with a "skip"
 * line on stderr) when the folder or file is absent. Static storage: copy
 * the result before calling again. */
const char *test_shared_path(const char *rel);

/* A fresh empty directory under $TMPDIR for this test; static storage. */
const char *test_tmpdir(void);

/* Read a whole file; returns malloc'ed bytes (NUL-terminated) or NULL. */
char *test_read_file(const char *path, size_t *len);

#endif
