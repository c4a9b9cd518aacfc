/*
 * The fast clock, sx__now_fast_ns (base/base.h): CLOCK_MONOTONIC for the paths that read the time
 * on every call (a pipeline's call, its timed layers).
 *
 * clock_gettime(2) through the vDSO reads the CPU's time-stamp counter in an ordered way (rdtscp
 * or lfence + rdtsc) under a sequence lock and scales it; in a virtual machine the ordered read
 * alone costs several times a plain rdtsc. Where the kernel keeps CLOCK_MONOTONIC on that counter
 * (its clocksource is "tsc", which it only picks for a counter that is invariant and in step
 * across CPUs), a thread can scale the counter itself:
 *
 *     now = anchor.ns + (rdtsc - anchor.tsc) * mult
 *
 * Each thread keeps its own anchor, a CLOCK_MONOTONIC reading and the counter at its middle
 * (from the tightest of a few brackets of two counter reads, so a preemption does not skew it),
 * and retakes it once it is SX__TSC_PERIOD ticks old, or the counter reads below it (a move to a
 * CPU whose counter is behind). `mult`, ns per tick in 32.32 fixed point, is measured between the
 * process's first anchor and each new one: the longest baseline, so two anchors' reading error
 * shrinks with the process's age. What remains between anchors is the difference between that
 * average rate and the kernel's current one (NTP slews CLOCK_MONOTONIC by at most 500 ppm) over
 * one period: under a microsecond, and it never accumulates, since every anchor is a fresh
 * reading. A new anchor may come out just below the extrapolation it replaces; the thread's
 * readings are then held at the last one until the clock passes it, so they never go back.
 *
 * Anywhere else (another clocksource, no /sys, another architecture) every sx__now_fast_ns
 * reading is clock_gettime: a thread's anchor is set so that every reading takes the slow path.
 *
 * sx__now_lag_ns, for the time a call starts, is the same reading where the counter is the
 * kernel's clocksource. Elsewhere (a virtual machine whose kernel keeps CLOCK_MONOTONIC on the
 * hypervisor's clock, for one) clock_gettime costs a few times a counter read, and a thread may
 * reuse its latest reading while the counter has moved less than SX__LAG_TICKS since just before
 * it was taken: the counter is then only a stopwatch, never scaled or compared across CPUs, so
 * all it needs is to keep counting while the thread is off its CPU. That is what /proc/cpuinfo's
 * constant_tsc and nonstop_tsc say (a constant rate, and no stop in idle states); without both,
 * every reading is clock_gettime. A counter that went back further than the ticks since the
 * reading, or jumped ahead (a move to another CPU, a restored snapshot), reads outside the window
 * and takes a new reading; a move to a CPU whose counter is behind by less adds that skew to the
 * lag, and a counter slower than a tick a nanosecond stretches the window by as much.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"

/* A new thread's anchor is 2^63 ticks from any counter reading: its first reading takes one. */
__thread sx__tclock sx__tclock_mine __attribute__((tls_model("initial-exec"))) = {
	.tsc = UINT64_C(1) << 63, .lag = UINT64_C(1) << 63
};

/* An anchor is the tightest of at most ANCHOR_TRIES brackets of counter reads around
 * clock_gettime, the first no wider than ANCHOR_TICKS (about 250 ns at 2 GHz) ending the search:
 * half the bracket bounds the anchor's error, and a preemption or an interrupt widens it. */
#define ANCHOR_TICKS (UINT64_C(1) << 9)
#define ANCHOR_TRIES 4
/* The first anchor's age, in ticks, before mult is measured from it (about 8 ms at 2 GHz): until
 * then readings are clock_gettime. */
#define MIN_BASELINE (UINT64_C(1) << 24)
/* An anchor's counter reading for a thread on the slow path: every counter reading is at least
 * SX__TSC_PERIOD from it (for the next 2^63 ticks), whatever the counter does. */
#define SLOW(t) ((t) + (UINT64_C(1) << 63))
/* A mult at or above this (256 ns per tick: a counter below 4 MHz) is not believed; below it,
 * the fast path's product of a tick count under SX__TSC_PERIOD and mult fits in 64 bits. */
#define MULT_MAX (UINT64_C(1) << 40)

static const char clocksource_path[] =
    "/sys/devices/system/clocksource/clocksource0/current_clocksource";
static const char cpuinfo_path[] = "/proc/cpuinfo";

enum { TSC_UNKNOWN = 0, TSC_USABLE, TSC_UNUSABLE };
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int tsc_state;
static bool lag_ok;                /* sx__now_lag_ns may reuse a reading (written once, in probe) */
static uint64_t base_tsc, base_ns; /* the process's first anchor (written once, in probe) */
static uint64_t base_mult;         /* the latest mult any thread measured (0: none yet) */

static inline uint64_t rdtsc(void)
{
#if defined(__x86_64__)
	return __builtin_ia32_rdtsc();
#else
	return 0;
#endif
}

/* A CLOCK_MONOTONIC reading, with the counter at its middle in *tsc. */
static uint64_t anchor_read(uint64_t *tsc)
{
	uint64_t t1, t2, ns, best_ns = 0, best_width = UINT64_MAX;

	for (int i = 0; i < ANCHOR_TRIES && best_width > ANCHOR_TICKS; i++) {
		t1 = rdtsc();
		ns = sx__now_ns();
		t2 = rdtsc();
		if (t2 >= t1 && t2 - t1 < best_width) {
			best_width = t2 - t1;
			best_ns = ns;
			*tsc = t1 + best_width / 2;
		}
	}
	if (best_width == UINT64_MAX) { /* the counter went back every time */
		*tsc = t2;
		best_ns = ns;
	}
	return best_ns;
}

/* Whether the file at path (a clocksource name) says "tsc". */
static bool tsc_is_clocksource(const char *path)
{
	char buf[16] = { 0 };
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	return n >= 3 && memcmp(buf, "tsc", 3) == 0 && (n == 3 || buf[3] == '\n');
}

/* Whether the first "flags" line of the cpuinfo file at path (within its first CPUINFO_HEAD
 * bytes, where the first CPU's entry is) lists both constant_tsc and nonstop_tsc. Reads with
 * read(2) into a buffer on the stack: the probe allocates nothing. */
#define CPUINFO_HEAD 8192
static bool counter_steady(const char *path)
{
	char buf[CPUINFO_HEAD + 1], *line, *end, *save = NULL;
	bool constant = false, nonstop = false;
	size_t len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	while (len < CPUINFO_HEAD && (n = read(fd, buf + len, CPUINFO_HEAD - len)) > 0)
		len += (size_t)n;
	(void)close(fd);
	buf[len] = '\0';
	for (line = buf; line != NULL && *line != '\0'; line = end != NULL ? end + 1 : NULL) {
		char *colon;

		end = strchr(line, '\n');
		if (end == NULL)
			break; /* a line cut short by the buffer's end is not read */
		*end = '\0';
		if (strncmp(line, "flags", 5) != 0 || (colon = strchr(line, ':')) == NULL)
			continue;
		for (char *w = strtok_r(colon + 1, " \t", &save); w != NULL;
		    w = strtok_r(NULL, " \t", &save)) {
			constant |= strcmp(w, "constant_tsc") == 0;
			nonstop |= strcmp(w, "nonstop_tsc") == 0;
		}
		break;
	}
	return constant && nonstop;
}

/* Decide once per process whether the counter may be used; take the first anchor if so. */
static void probe(void)
{
#if defined(__x86_64__)
	if (tsc_is_clocksource(clocksource_path)) {
		base_ns = anchor_read(&base_tsc);
		ck_pr_store_int(&tsc_state, TSC_USABLE);
		return;
	}
	lag_ok = counter_steady(cpuinfo_path);
#endif
	ck_pr_store_int(&tsc_state, TSC_UNUSABLE);
}

/* sx__now_fast_anchor - the slow half of sx__now_fast_ns: this thread's anchor is missing, old
 * or ahead of the counter t (or the counter is not usable). Returns a reading, not below the
 * thread's last. */
uint64_t sx__now_fast_anchor(uint64_t t)
{
	sx__tclock *c = &sx__tclock_mine;
	uint64_t ns, tsc, mult = 0;

	(void)pthread_once(&probe_once, probe);
	if (ck_pr_load_int(&tsc_state) != TSC_USABLE) {
		c->tsc = SLOW(t);
		c->lag = lag_ok ? t : SLOW(t); /* t was read before the kernel is (sx__now_lag_ns) */
		ns = sx__now_ns();
	} else {
		ns = anchor_read(&tsc);
		if (tsc > base_tsc && tsc - base_tsc >= MIN_BASELINE && ns > base_ns) {
			mult = (uint64_t)((((unsigned __int128)(ns - base_ns)) << 32) /
			    (tsc - base_tsc));
			ck_pr_store_64(&base_mult, mult);
		} else {
			mult = ck_pr_load_64(&base_mult);
		}
		c->tsc = mult != 0 && mult < MULT_MAX ? tsc : SLOW(t);
		c->ns = ns;
		c->mult = mult;
	}
	if (ns < c->last)
		return c->last;
	c->last = ns;
	return ns;
}
