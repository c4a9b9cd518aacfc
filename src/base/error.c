/* sx_strerror: one table for the library's own codes, the C library for errno values; sx_version;
 * and the report of a failed debug assertion (SX__ASSERT). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strix/error.h>
#include <strix/version.h>

#include "base/base.h"

const char *sx_strerror(int code)
{
	switch (code) {
	case 0:
		return "success";
	case SX_ECIRCUIT_OPEN:
		return "circuit breaker is open";
	case SX_ERATE_LIMITED:
		return "rate limit exceeded";
	case SX_EREJECTED:
		return "rejected by policy";
	case SX_ESIGNAL:
		return "interrupted by a signal";
	default:
		break;
	}
	if (code < 0 && code > SX_EBASE) {
		/* strerrordesc_np returns a constant string (or NULL), never a buffer. */
		const char *s = strerrordesc_np(-code);

		if (s != NULL)
			return s;
	}
	return "unknown error";
}

const char *sx_version(void)
{
	return STRIX_VERSION_STRING;
}

void sx__assert_fail(const char *what, const char *file, int line)
{
	fprintf(stderr, "strix: %s:%d: assertion failed: %s\n", file, line, what);
	abort();
}
