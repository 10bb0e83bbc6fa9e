// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The main() of a fuzz target in a build without libFuzzer: run the
 * target once on each file named on the command line, or on every file
 * of each directory named (sorted, so that a failure is reproducible).
 * A broken invariant or a crash aborts, which fails the meson test that
 * runs the checked-in corpus.
 */
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#include "fuzz-util.h"

static int run_file(const char *path)
{
	g_autofree char *buf = NULL;
	g_autoptr(GError) e = NULL;
	gsize len = 0;

	if (!g_file_get_contents(path, &buf, &len, &e)) {
		fprintf(stderr, "replay: %s\n", e->message);
		return -1;
	}
	/* a copy of exactly len bytes, as libFuzzer passes it, so that an
	 * overread past the input is as visible as under the fuzzer */
	g_autofree uint8_t *data = g_memdup2(buf, len);
	LLVMFuzzerTestOneInput(data, len);
	return 0;
}

/* g_ptr_array_sort hands pointers to the elements */
static gint cmp_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, unsigned *count)
{
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL) {
		fprintf(stderr, "replay: %s: %s\n", dir, g_strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			g_ptr_array_add(names, g_strdup(de->d_name));
	closedir(d);
	g_ptr_array_sort(names, cmp_str);
	for (guint i = 0; i < names->len; i++) {
		g_autofree char *p =
			g_build_filename(dir, names->pdata[i], NULL);

		if (run_file(p) < 0)
			return -1;
		(*count)++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	unsigned count = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i],
				g_strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode) ? run_dir(argv[i], &count)
					: run_file(argv[i]))
			return 1;
		if (!S_ISDIR(st.st_mode))
			count++;
	}
	printf("replayed %u input(s), no failure\n", count);
	return count > 0 ? 0 : 1;
}
