/*
 * Force-included (-include) in the ThreadSanitizer build only.
 *
 * With CK_USE_CC_BUILTINS=1, ck's read-modify-write operations become __sync builtins, which TSan
 * understands, but its plain loads and stores (ck_pr_md_load_* / ck_pr_md_store_*, used by
 * ck_pr_load_*, ck_pr_store_* and inside ck's own fas/add loops) stay volatile accesses, which
 * TSan treats as non-atomic: every ck_ring, ck_stack and ck_ec load would be reported as racing
 * with the CAS that publishes it. This header includes ck's GCC port first, then redirects those
 * primitives to C11 acquire loads and release stores, and only then lets ck_pr.h build the rest
 * on top. TSan then sees the orderings that ck's explicit fences give on real hardware; the
 * library's code is unchanged.
 */
#ifndef STRIX_TESTS_CK_TSAN_H
#define STRIX_TESTS_CK_TSAN_H

#include <ck_cc.h>
#include <ck_limits.h>
#include <ck_md.h>
#include <ck_stdint.h>
#include <ck_stdbool.h>

#define CK_PR_H /* gcc/ck_pr.h insists on being included from ck_pr.h */
#include <gcc/ck_pr.h>
#undef CK_PR_H

#define SX__TSAN_LOAD(T, SRC) __atomic_load_n((T const *)(SRC), __ATOMIC_ACQUIRE)
#define SX__TSAN_STORE(T, DST, VAL) __atomic_store_n((T *)(DST), (T)(VAL), __ATOMIC_RELEASE)

#define ck_pr_md_load_ptr(SRC) ((void *)SX__TSAN_LOAD(void *, SRC))
#define ck_pr_md_load_char(SRC) SX__TSAN_LOAD(char, SRC)
#define ck_pr_md_load_uint(SRC) SX__TSAN_LOAD(unsigned int, SRC)
#define ck_pr_md_load_int(SRC) SX__TSAN_LOAD(int, SRC)
#define ck_pr_md_load_64(SRC) SX__TSAN_LOAD(uint64_t, SRC)
#define ck_pr_md_load_32(SRC) SX__TSAN_LOAD(uint32_t, SRC)
#define ck_pr_md_load_16(SRC) SX__TSAN_LOAD(uint16_t, SRC)
#define ck_pr_md_load_8(SRC) SX__TSAN_LOAD(uint8_t, SRC)

#define ck_pr_md_store_ptr(DST, VAL) SX__TSAN_STORE(void *, DST, VAL)
#define ck_pr_md_store_char(DST, VAL) SX__TSAN_STORE(char, DST, VAL)
#define ck_pr_md_store_uint(DST, VAL) SX__TSAN_STORE(unsigned int, DST, VAL)
#define ck_pr_md_store_int(DST, VAL) SX__TSAN_STORE(int, DST, VAL)
#define ck_pr_md_store_64(DST, VAL) SX__TSAN_STORE(uint64_t, DST, VAL)
#define ck_pr_md_store_32(DST, VAL) SX__TSAN_STORE(uint32_t, DST, VAL)
#define ck_pr_md_store_16(DST, VAL) SX__TSAN_STORE(uint16_t, DST, VAL)
#define ck_pr_md_store_8(DST, VAL) SX__TSAN_STORE(uint8_t, DST, VAL)

#include <ck_pr.h>

#endif
