/* Shared by the libFuzzer targets: reading the input as numbers, and saturating arithmetic. */
#ifndef STRIX_FUZZ_H
#define STRIX_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A divergence from the model: say what, then abort (libFuzzer keeps the input). */
#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); abort(); } while (0)

/* The rest of the fuzzer's input. Reads past its end give zero bytes. */
struct fz_in {
	const uint8_t *p;
	size_t n;
};

/* The next `bytes` bytes (at most 8), big-endian. */
static inline uint64_t fz_take(struct fz_in *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++) {
		v <<= 8;
		if (in->n > 0) {
			v |= *in->p++;
			in->n--;
		}
	}
	return v;
}

static inline uint64_t sat_add(uint64_t a, uint64_t b)
{
	return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

#endif /* STRIX_FUZZ_H */
