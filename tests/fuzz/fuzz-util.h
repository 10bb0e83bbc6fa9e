/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shared by the fuzz targets.  Each target defines LLVMFuzzerTestOneInput;
 * it is linked either with libFuzzer (meson -Dfuzzing=true, clang) or with
 * replay.c, which feeds it every file of the seed corpus once (the normal
 * build's regression test).
 *
 * FUZZ_CHECK aborts on a broken invariant, so that libFuzzer saves the
 * input as a crash and the replay test fails: the targets look for wrong
 * answers, not only for memory errors.
 */
#ifndef STRATAFS_FUZZ_UTIL_H
#define STRATAFS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(expr, ...)                                                 \
	do {                                                                  \
		if (!(expr)) {                                                \
			fprintf(stderr, "%s:%d: invariant '%s' broken: ",      \
				__FILE__, __LINE__, #expr);                   \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
			abort();                                              \
		}                                                             \
	} while (0)

/* The input as a C string: cut at the first NUL, always terminated. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	return g_strndup((const char *)data, size);
}

#endif
