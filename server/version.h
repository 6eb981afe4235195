/*
 * version.h — build identity, compiled into build/gen/version.c by the
 * Makefile (version, git commit, compiler flags). Served by GET /version and
 * `maasd version`.
 */
#ifndef MAASD_VERSION_H
#define MAASD_VERSION_H

extern const char maasd_version[];
extern const char maasd_git_commit[];
extern const char maasd_build_flags[];

#endif
