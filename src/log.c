// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Messages.  Before the daemon detaches they go to stderr as one line
 * "stratafs: ..."; a detached daemon has no stderr (callers such as
 * Podman read it to EOF), so it logs to syslog instead.
 */
#include <stdio.h>
#include <syslog.h>

#include "stratafs/stratafs.h"

static bool log_debug;
static bool log_syslog;

void strata_log_init(bool debug, bool to_syslog)
{
	log_debug = debug;
	log_syslog = to_syslog;
	if (to_syslog)
		openlog("stratafs", LOG_PID, LOG_DAEMON);
}

bool strata_log_debug_enabled(void)
{
	return log_debug;
}

static void vlog(int prio, const char *fmt, va_list ap)
{
	if (log_syslog) {
		vsyslog(prio, fmt, ap);
		return;
	}
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);

	/* one message, one line: user text (paths, option values) may hold
	 * control characters */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
	fprintf(stderr, "stratafs: %s\n", msg);
}

void strata_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap);
	va_end(ap);
}

void strata_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void strata_dbg(const char *fmt, ...)
{
	va_list ap;

	if (!log_debug)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}
