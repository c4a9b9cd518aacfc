/**
 * @file
 * <strix/version.h>: the declarations of the version module (group strix_version).
 *
 * @defgroup strix_version Version
 * @ingroup strix
 *
 * strix version - the release this header belongs to, and the library's at run time.
 *
 * Versions follow MAJOR.MINOR.PATCH. While MAJOR is 0 the ABI may change in any MINOR release
 * (the shared library's soname, libstrix.so.0, stays); a PATCH release keeps the ABI.
 * @{
 */
#ifndef STRIX_VERSION_H
#define STRIX_VERSION_H

#include <strix/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/** MAJOR of this header's release. */
#define STRIX_VERSION_MAJOR 0
/** MINOR of this header's release. */
#define STRIX_VERSION_MINOR 1
/** PATCH of this header's release. */
#define STRIX_VERSION_PATCH 0
/** This header's release as a string, MAJOR.MINOR.PATCH. */
#define STRIX_VERSION_STRING "0.1.0"
/** One number that orders releases: MAJOR * 10000 + MINOR * 100 + PATCH. */
#define STRIX_VERSION_NUMBER \
	(STRIX_VERSION_MAJOR * 10000 + STRIX_VERSION_MINOR * 100 + STRIX_VERSION_PATCH)

/**
 * sx_version - the version of the library linked at run time, as STRIX_VERSION_STRING spells it
 * (compare with the macro to find a header/library mismatch). A static string; never NULL.
 * Wait-free, any thread.
 */
SX_API const char *sx_version(void);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_VERSION_H */
