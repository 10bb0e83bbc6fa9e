// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target: decoders of what a layer hands us in xattrs and names.  The
 * same input goes to each:
 *   - strata_parse_opaque (whiteout.c): an overlay.opaque value; only "y"
 *     and "x" mean something, as the kernel reads them;
 *   - strata_parse_override (attr.c): a containers override_stat value
 *     "uid:gid:mode[:type]"; what it accepts is in range (ids below
 *     (uid_t)-1, mode within 07777) and survives being written back the
 *     way strata_write_override writes it; a canonical value is accepted
 *     with exactly its numbers;
 *   - strata_filter_xattr_list (xattr.c): a listxattr buffer of a real
 *     object, compared with our own reading: private names dropped,
 *     escaped "P.overlay.overlay.X" shown as "P.overlay.X", everything
 *     else kept in order, an unterminated tail dropped;
 *   - the name predicates of whiteout.c, on each name of that list.
 */
#include "fuzz-util.h"
#include "stratafs/stratafs.h"

static void check_opaque(const uint8_t *data, size_t size)
{
	enum strata_opaque_val v =
		strata_parse_opaque((const char *)data, (ssize_t)size);
	enum strata_opaque_val want = STRATA_OPAQUE_NONE;

	if (size == 1 && data[0] == 'y')
		want = STRATA_OPAQUE_Y;
	else if (size == 1 && data[0] == 'x')
		want = STRATA_OPAQUE_X;
	FUZZ_CHECK(v == want, "opaque value of %zu bytes read as %d", size,
		   (int)v);
}

/* "D+:D+:O+" and optionally ":" and anything, D decimal, O octal digits;
 * the numbers when it is. */
static bool canonical_override(const char *s, size_t len, uint64_t num[3])
{
	size_t i = 0;

	for (int f = 0; f < 3; f++) {
		size_t start = i;
		unsigned base = f == 2 ? 8 : 10;

		num[f] = 0;
		while (i < len && s[i] >= '0' && s[i] < '0' + (int)base) {
			if (num[f] <= UINT64_MAX / 16)
				num[f] = num[f] * base + (uint64_t)(s[i] - '0');
			else
				num[f] = UINT64_MAX;
			i++;
		}
		if (i == start)
			return false;
		if (f < 2) {
			if (i >= len || s[i] != ':')
				return false;
			i++;
		}
	}
	return i == len || s[i] == ':';
}

static void check_override(const uint8_t *data, size_t size)
{
	uid_t uid = 7, uid2;
	gid_t gid = 7, gid2;
	mode_t mode = 7, mode2;
	uint64_t num[3];
	int r = strata_parse_override((const char *)data, size, &uid, &gid,
				      &mode);
	bool canon = size > 0 && memchr(data, '\0', size) == NULL &&
		     canonical_override((const char *)data, size, num);

	if (r < 0) {
		FUZZ_CHECK(uid == 7 && gid == 7 && mode == 7,
			   "outputs written on failure");
		/* a canonical value in range must not be refused */
		FUZZ_CHECK(!(canon && size < 64 && num[0] < UINT32_MAX &&
			     num[1] < UINT32_MAX && num[2] <= 07777),
			   "canonical override refused");
		return;
	}
	FUZZ_CHECK(r == 0, "r=%d", r);
	FUZZ_CHECK(uid != (uid_t)-1 && gid != (gid_t)-1,
		   "id -1 accepted: %u:%u", (unsigned)uid, (unsigned)gid);
	FUZZ_CHECK((mode & ~07777) == 0, "mode %o", (unsigned)mode);
	if (canon)
		FUZZ_CHECK(uid == num[0] && gid == num[1] && mode == num[2],
			   "canonical value read as %u:%u:%o", (unsigned)uid,
			   (unsigned)gid, (unsigned)mode);

	/* what we would write back reads the same */
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%u:%u:%o", (unsigned)uid,
			 (unsigned)gid, (unsigned)mode);
	FUZZ_CHECK(strata_parse_override(buf, n, &uid2, &gid2, &mode2) == 0 &&
		   uid2 == uid && gid2 == gid && mode2 == mode,
		   "written back as '%s', not read the same", buf);
}

/* Our reading of how a real xattr name shows through the mount. */
static const char *model_shown(const char *name, char **unescaped)
{
	static const char *const esc[] = { "trusted.overlay.",
					   "user.overlay." };

	*unescaped = NULL;
	for (size_t i = 0; i < G_N_ELEMENTS(esc); i++) {
		if (!g_str_has_prefix(name, esc[i]))
			continue;
		if (g_str_has_prefix(name + strlen(esc[i]), "overlay.")) {
			*unescaped = g_strconcat(
				esc[i], name + strlen(esc[i]) + 8, NULL);
			return *unescaped;
		}
		return NULL; /* a marker of the overlay */
	}
	if (g_str_has_prefix(name, "user.fuseoverlayfs.") ||
	    g_str_has_prefix(name, "trusted.stratafs.") ||
	    g_str_has_prefix(name, "user.stratafs.") ||
	    g_str_has_prefix(name, "user.containers.override_stat") ||
	    g_str_has_prefix(name, "security.containers.override_stat"))
		return NULL;
	return name;
}

static void check_names(const uint8_t *data, size_t size)
{
	g_autofree char *buf = g_memdup2(data, size);
	g_autoptr(GString) want = g_string_new(NULL);
	size_t out;

	for (size_t i = 0; i < size;) {
		const char *name = (const char *)data + i;
		size_t l = strnlen(name, size - i);
		g_autofree char *tmp = NULL;
		const char *shown;

		if (i + l >= size)
			break; /* no NUL: not a name */
		shown = model_shown(name, &tmp);
		if (shown)
			g_string_append_len(want, shown, strlen(shown) + 1);

		/* the predicates agree with each other */
		FUZZ_CHECK(strata_is_aufs_name(name) ==
				   g_str_has_prefix(name, ".wh."),
			   "aufs name '%s'", name);
		FUZZ_CHECK(!strata_is_marker_xattr(name) ||
				   strata_is_private_xattr(name),
			   "marker '%s' not private", name);
		FUZZ_CHECK(strata_is_private_xattr(name) == (shown != name),
			   "private '%s'", name);
		i += l + 1;
	}
	out = strata_filter_xattr_list(buf, size);
	FUZZ_CHECK(out <= size, "list grew: %zu > %zu", out, size);
	FUZZ_CHECK(out == want->len &&
			   (out == 0 || memcmp(buf, want->str, out) == 0),
		   "filtered list differs (%zu bytes, want %zu)", out,
		   want->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_opaque(data, size);
	check_override(data, size);
	check_names(data, size);
	return 0;
}
