/* The version: the macros agree with each other and with the library linked at run time. */
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#include <strix.h>

static void test_library_version_is_the_headers(void **state)
{
	(void)state;
	assert_non_null(sx_version());
	assert_string_equal(sx_version(), STRIX_VERSION_STRING);
}

static void test_macros_spell_the_same_version(void **state)
{
	char spelled[32];

	(void)state;
	snprintf(spelled, sizeof(spelled), "%d.%d.%d", STRIX_VERSION_MAJOR, STRIX_VERSION_MINOR,
	    STRIX_VERSION_PATCH);
	assert_string_equal(spelled, STRIX_VERSION_STRING);
	assert_int_equal(STRIX_VERSION_NUMBER,
	    STRIX_VERSION_MAJOR * 10000 + STRIX_VERSION_MINOR * 100 + STRIX_VERSION_PATCH);
	assert_true(STRIX_VERSION_MINOR < 100 && STRIX_VERSION_PATCH < 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_library_version_is_the_headers),
		cmocka_unit_test(test_macros_spell_the_same_version),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
