/**
 * @file
 * <strix/error.h>: the declarations of the errors module (group strix_error).
 *
 * @defgroup strix_error Errors
 * @ingroup strix
 *
 * strix error convention.
 *
 * Every strix function that can fail returns 0 on success or a negative code: the negated errno
 * where one fits (-EINVAL, -ENOMEM, -EAGAIN, -ECANCELED, -ETIMEDOUT, -ESHUTDOWN, -EINTR,
 * -EDEADLK), or one of the library codes below for conditions errno has no name for. A call that
 * fails changes nothing, and a callback passed to a call that fails is never invoked.
 *
 * Library codes live far below any errno value so the two ranges never meet.
 * @{
 */
#ifndef STRIX_ERROR_H
#define STRIX_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/** Marks the public ABI: strix is built with -fvisibility=hidden and a version script. */
#define SX_API __attribute__((visibility("default")))

#define SX_EBASE           (-10000) /**< the library codes are below this */
#define SX_ECIRCUIT_OPEN   (SX_EBASE - 1)  /**< circuit breaker is open: call not attempted */
#define SX_ERATE_LIMITED   (SX_EBASE - 2)  /**< rate limiter refused the call */
#define SX_EREJECTED       (SX_EBASE - 3)  /**< a policy (bulkhead, budget) rejected the call */
#define SX_ESIGNAL         (SX_EBASE - 4)  /**< ended by an OS signal */
#define SX_ELAST           (SX_EBASE - 4)  /**< lowest library code in use */

/**
 * sx_strerror - a human-readable, constant description of a strix return code.
 *
 * Accepts 0, any negated errno value and every SX_E* code. An unknown code yields
 * "unknown error". The returned string is static: never free it.
 * Never blocks; wait-free; callable from any thread and from a signal handler.
 */
SX_API const char *sx_strerror(int code);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_ERROR_H */
