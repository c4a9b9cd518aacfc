/* sx_strerror: one table for the library's own codes, the C library for errno values. */
#include <errno.h>
#include <string.h>

#include <strix/error.h>

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
