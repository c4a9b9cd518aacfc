/*
 * base: what every layer above may use. Compiler macros; the clock and the fast clock (clock.c);
 * waiting (wait.c): the futex operations, the waiting word every blocking call sleeps on, the
 * event word, ck_ec's mode; the closable lock-free stack and the list reversal; the sequenced
 * ring (a bounded lock-free queue); per-thread records (thread.c); the default allocator's
 * zeroing helpers (the allocator itself is alloc_jemalloc.c or alloc_libc.c, chosen by the
 * build); single-writer counters.
 * Includes no other internal header. Nothing here is public API.
 */
#ifndef STRIX_SRC_BASE_H
#define STRIX_SRC_BASE_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>

#include <time.h>

#include <ck_ec.h>
#include <ck_pr.h>
#include <ck_stack.h>

#include <strix/pool.h>

#define SX__CACHELINE 64
#define SX__ALIGNED __attribute__((aligned(SX__CACHELINE)))
#define SX__LIKELY(x) __builtin_expect(!!(x), 1)
#define SX__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Debug checks are compiled always and folded away unless SX_DEBUG is 1 (jemalloc's style): the
 * sanitizer, fault-injection, fuzz and white-box builds set it. SX__ASSERT states an invariant,
 * most often who may call (an owner-only function checks that its caller is the owner); a
 * failed one prints where and aborts. */
#ifndef SX_DEBUG
#define SX_DEBUG 0
#endif

#define SX__ASSERT(cond)                                                         \
	do {                                                                     \
		if (SX_DEBUG && SX__UNLIKELY(!(cond)))                           \
			sx__assert_fail(#cond, __FILE__, __LINE__);              \
	} while (0)

/* error.c */
_Noreturn void sx__assert_fail(const char *what, const char *file, int line);

/* Happens-before edges that ThreadSanitizer cannot see because the synchronization that makes
 * them runs in uninstrumented code (Concurrency Kit's epoch scan, in libck): release on addr in
 * the thread whose accesses must come first, acquire on addr in the one that must come after.
 * Nothing outside ThreadSanitizer builds. */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define SX__TSAN_ACQUIRE(addr) __tsan_acquire((void *)(addr))
#define SX__TSAN_RELEASE(addr) __tsan_release((void *)(addr))
#else
#define SX__TSAN_ACQUIRE(addr) ((void)(addr))
#define SX__TSAN_RELEASE(addr) ((void)(addr))
#endif

/* ---- the clock ----------------------------------------------------------------------------- */

/* CLOCK_MONOTONIC in ns: the one clock every deadline in strix is measured on. */
static inline uint64_t sx__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The fast clock (clock.c): CLOCK_MONOTONIC extrapolated from the CPU's time-stamp counter, for
 * the paths that read the time on every call. One thread's readings never go back; readings on
 * different threads agree with CLOCK_MONOTONIC, and so with each other, to within about a
 * microsecond (clock.c says why), so a deadline taken from it may be compared with sx__now_ns.
 * Where the counter is not what the kernel keeps CLOCK_MONOTONIC on, it is sx__now_ns. Not
 * async-signal-safe (a thread's anchor is plain per-thread data). */
typedef struct sx__tclock {
	uint64_t tsc;   /* the anchor's counter reading: readings within SX__TSC_PERIOD of it use it */
	uint64_t ns;    /* its CLOCK_MONOTONIC reading */
	uint64_t mult;  /* ns per counter tick, 32.32 fixed point */
	uint64_t last;  /* the latest reading this thread was given */
	uint64_t lag;   /* sx__now_lag_ns: the counter just before `last` was read from the kernel */
} sx__tclock;

/* Ticks an anchor serves (about a millisecond at 2 GHz): see clock.c. */
#define SX__TSC_PERIOD (UINT64_C(1) << 21)
/* Ticks a kernel reading serves sx__now_lag_ns (about a microsecond at 2 GHz): see clock.c. */
#define SX__LAG_TICKS (UINT64_C(1) << 11)

extern __thread sx__tclock sx__tclock_mine __attribute__((tls_model("initial-exec")));
uint64_t sx__now_fast_anchor(uint64_t tsc);

/* The extrapolation from c's anchor, d ticks past it (d < SX__TSC_PERIOD). */
static inline uint64_t sx__now_fast_from(sx__tclock *c, uint64_t d)
{
	uint64_t ns = c->ns + ((d * c->mult) >> 32); /* no overflow: d < 2^21, mult < 2^40 */

	if (SX__UNLIKELY(ns < c->last))
		return c->last; /* a new anchor came out below an extrapolation from the old one */
	c->last = ns;
	return ns;
}

static inline uint64_t sx__now_fast_ns(void)
{
#if defined(__x86_64__)
	sx__tclock *c = &sx__tclock_mine;
	uint64_t t = __builtin_ia32_rdtsc(), d = t - c->tsc;

	if (SX__UNLIKELY(d >= SX__TSC_PERIOD))
		return sx__now_fast_anchor(t);
	return sx__now_fast_from(c, d);
#else
	return sx__now_ns();
#endif
}

/* sx__now_fast_ns for a reading that may lag: where the fast clock extrapolates from the
 * counter, the same reading; where it reads the kernel instead and the counter runs at a constant
 * rate through idle states (clock.c), the thread's latest reading while the counter has moved
 * less than SX__LAG_TICKS since just before the kernel was read for it, so a reading is at most
 * that old (a counter read, not a kernel call, for most readings). For the time a call starts
 * (a deadline, a rate limit's admission), never for a latency's end. One thread's readings never
 * go back. */
static inline uint64_t sx__now_lag_ns(void)
{
#if defined(__x86_64__)
	sx__tclock *c = &sx__tclock_mine;
	uint64_t t = __builtin_ia32_rdtsc(), d = t - c->tsc;

	if (SX__LIKELY(d < SX__TSC_PERIOD))
		return sx__now_fast_from(c, d);
	if (t - c->lag < SX__LAG_TICKS)
		return c->last;
	return sx__now_fast_anchor(t);
#else
	return sx__now_ns();
#endif
}

/* Whether the reserved words of a public options struct are all zero; where they are not, the
 * caller set a field this release lacks and the call is -EINVAL (strix/error.h, "Growing
 * structs"). */
#define SX__RESERVED_CLEAR(o) sx__reserved_clear((o)->reserved, \
	sizeof((o)->reserved) / sizeof((o)->reserved[0]))
static inline bool sx__reserved_clear(const uint64_t *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i] != 0)
			return false;
	return true;
}

/* The absolute deadline of a wait of timeout_ns from now: UINT64_MAX for a negative timeout (no
 * limit), now for 0 (look once), saturating below UINT64_MAX / 2 so sums stay safe. */
static inline uint64_t sx__deadline_in(int64_t timeout_ns)
{
	uint64_t now;

	if (timeout_ns < 0)
		return UINT64_MAX;
	now = sx__now_ns();
	return (uint64_t)timeout_ns > UINT64_MAX / 2 - now ? UINT64_MAX / 2
	                                                  : now + (uint64_t)timeout_ns;
}

/* ---- waiting (wait.c) ------------------------------------------------------------------------ */

extern const struct ck_ec_mode sx__ec_mode;
/* Sleep while *addr == expected, until woken or until_ns, an absolute CLOCK_MONOTONIC time
 * (UINT64_MAX: none). May return early (signals, spurious wake-ups): callers look again. */
void sx__futex_wait_ns(const uint32_t *addr, uint32_t expected, uint64_t until_ns);
/* Wake every sleeper on addr. Async-signal-safe (one system call). */
void sx__futex_wake(const uint32_t *addr);

/*
 * The waiting word. A 32-bit state word, one bit of which (the owner's `flag`) says that
 * somebody may sleep on it. A waiter that loaded `seen` and found its condition false calls
 * sx__doze: it sets flag with a CAS (if the word moved on meanwhile it returns at once, to look
 * again) and sleeps while the word still reads seen | flag. Whoever changes the word in a way a
 * waiter cares about does so with one atomic read-modify-write and, when the old word had flag,
 * calls sx__futex_wake. No wake-up is lost: a change after the waiter's check makes the word
 * differ from the value its sleep expects, so the sleep does not start or ends. A changer never
 * clears flag without waking.
 * Returns early like sx__futex_wait_ns; until_ns as there.
 */
static inline void sx__doze(uint32_t *word, uint32_t seen, uint32_t flag, uint64_t until_ns)
{
	if (!(seen & flag) && !ck_pr_cas_32(word, seen, seen | flag))
		return;
	sx__futex_wait_ns(word, seen | flag, until_ns);
}

/*
 * The event word: a waiting word for a condition kept elsewhere. Bit 0 is the flag, the rest a
 * count that every sx__event_bump advances. A waiter loads the word (sx__event_read), checks its
 * condition, and if false sleeps with sx__event_wait on what it loaded; the condition's changer
 * changes it first, then bumps. A bump makes a system call only when somebody sleeps.
 * Async-signal-safe.
 */
#define SX__EVENT_WAITERS 1u
#define SX__EVENT_STEP 2u

static inline uint32_t sx__event_read(const uint32_t *ev)
{
	return ck_pr_load_32(ev);
}

static inline void sx__event_wait(uint32_t *ev, uint32_t seen, uint64_t until_ns)
{
	sx__doze(ev, seen, SX__EVENT_WAITERS, until_ns);
}

static inline void sx__event_bump(uint32_t *ev)
{
	/* Clear the flag before the wake: a sleeper that set it expects the flag in the word. */
	if (ck_pr_faa_32(ev, SX__EVENT_STEP) & SX__EVENT_WAITERS) {
		ck_pr_and_32(ev, ~SX__EVENT_WAITERS);
		sx__futex_wake(ev);
	}
}

/* ---- the closable lock-free stack ----------------------------------------------------------- */

/*
 * A Treiber stack of intrusive links (ck_stack_entry_t, so ck_stack's batches are lists too)
 * that can be closed: its head becomes SX__CLOSED, after which every push fails and its pusher
 * handles the node itself. Producers push (one CAS loop); one consumer takes everything at once
 * with an exchange, so there is no ABA. Lists come out newest first: sx__list_reverse.
 */
typedef ck_stack_entry_t sx__link;

#define SX__CLOSED ((sx__link *)1)

/* Push the list first..last (linked through next); false, and nothing pushed, if closed. A
 * refused list stays the caller's, ended by NULL at last: an attempt that lost its CAS to the
 * close had linked last to the old head, whose nodes the closer now owns, so a caller walking
 * the refused list (to run it) would reach them too. */
static inline bool sx__stack_push(sx__link **head, sx__link *first, sx__link *last)
{
	sx__link *h = ck_pr_load_ptr(head);

	do {
		if (h == SX__CLOSED) {
			last->next = NULL;
			return false;
		}
		last->next = h;
	} while (!ck_pr_cas_ptr_value(head, h, first, &h));
	return true;
}

/* Take every node (NULL: none), leaving the stack open and empty. One exchange: only for the
 * consumer that alone may close the stack (an exchange would reopen a closed one). */
static inline sx__link *sx__stack_take(sx__link **head)
{
	return ck_pr_fas_ptr(head, NULL);
}

/* As sx__stack_take, for any thread while another may close the stack: NULL if it is empty or
 * closed (and it stays closed). */
static inline sx__link *sx__stack_grab(sx__link **head)
{
	sx__link *h = ck_pr_load_ptr(head);

	do {
		if (h == NULL || h == SX__CLOSED)
			return NULL;
	} while (!ck_pr_cas_ptr_value(head, h, NULL, &h));
	return h;
}

/* Close the stack and take what it held (NULL: nothing). A stack is closed once, by the one
 * thread whose event closes it (the trip, the settle, the shutdown). */
static inline sx__link *sx__stack_close(sx__link **head)
{
	sx__link *l = ck_pr_fas_ptr(head, SX__CLOSED);

	SX__ASSERT(l != SX__CLOSED);
	return l;
}

/* Close the stack if it is empty: true then. False when a push got in first (the stack keeps
 * it, open). For the one consumer, as sx__stack_take. */
static inline bool sx__stack_close_empty(sx__link **head)
{
	return ck_pr_cas_ptr(head, NULL, SX__CLOSED);
}

/* Reopen a closed stack, empty: true then, and the caller's event (the one that turns "closed"
 * into "owned again", a strand's wake-up) is its own, with whatever it meant to push. False
 * when the stack was not closed (then push as usual). Any thread. */
static inline bool sx__stack_reopen(sx__link **head)
{
	return ck_pr_cas_ptr(head, SX__CLOSED, NULL);
}

static inline bool sx__stack_closed(sx__link *const *head)
{
	return ck_pr_load_ptr(head) == SX__CLOSED;
}

/* Reverse a NULL-terminated list in place: the oldest push first. */
static inline sx__link *sx__list_reverse(sx__link *l)
{
	sx__link *out = NULL;

	while (l != NULL) {
		sx__link *next = l->next;

		l->next = out;
		out = l;
		l = next;
	}
	return out;
}

/* ---- the sequenced ring ---------------------------------------------------------------------- */

/*
 * A bounded ring of slots that each begin with a sequence word (Vyukov's bounded queue), for many
 * producers and one or many consumers. The slot of position p (index p & mask) is free for p's
 * producer when its seq is p and holds p's item when its seq is p + 1; p's consumer hands it to
 * the next lap by storing p + mask + 1. Producers claim positions with a CAS on the tail and
 * consumers with a CAS on the head (a lone consumer's always succeeds), so nobody waits for
 * anybody: a member preempted between its claim and its publish or release holds up only the
 * one slot it claimed. The caller lays out its slots (the uint64_t seq first, then the item) and
 * passes their size; the top bit of the tail, SX__RING_CLOSED, closes the ring to producers.
 */
#define SX__RING_CLOSED (UINT64_C(1) << 63)

static inline uint64_t *sx__ring_seq(void *slots, size_t size, uint64_t mask, uint64_t pos)
{
	return (uint64_t *)((char *)slots + (size_t)(pos & mask) * size);
}

/* Number the n slots for the first lap. Before the ring is shared. */
static inline void sx__ring_init(void *slots, size_t size, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		*sx__ring_seq(slots, size, n - 1, i) = i;
}

/* Claim the next position to fill: 0 and *pos (write the item, then sx__ring_publish);
 * -EAGAIN when the ring is full (the slot still holds its item of the lap before); -ESHUTDOWN
 * when the ring is closed. Lock-free. */
static inline int sx__ring_claim(uint64_t *tail, void *slots, size_t size, uint64_t mask,
    uint64_t *pos)
{
	uint64_t p = ck_pr_load_64(tail);

	for (;;) {
		uint64_t *seq;
		int64_t diff;

		if (p & SX__RING_CLOSED)
			return -ESHUTDOWN;
		seq = sx__ring_seq(slots, size, mask, p);
		diff = (int64_t)(ck_pr_load_64(seq) - p);
		ck_pr_fence_load();
		if (diff == 0) {
			if (ck_pr_cas_64_value(tail, p, p + 1, &p)) {
				SX__TSAN_ACQUIRE(seq); /* the last lap's consumer is done with it */
				*pos = p;
				return 0;
			}
		} else if (diff < 0) {
			return -EAGAIN;
		} else {
			p = ck_pr_load_64(tail); /* another producer took p */
		}
	}
}

/* The item of pos is written: hand it to consumers (a release store of its seq). */
static inline void sx__ring_publish(void *slots, size_t size, uint64_t mask, uint64_t pos)
{
	uint64_t *seq = sx__ring_seq(slots, size, mask, pos);

	ck_pr_fence_store();
	SX__TSAN_RELEASE(seq); /* the sanitizer does not see fences */
	ck_pr_store_64(seq, pos + 1);
}

/* Claim the oldest published position: true and *pos (read the item, then sx__ring_release);
 * false when the ring is empty or that position's producer has not published it yet.
 * Lock-free. */
static inline bool sx__ring_take(uint64_t *head, void *slots, size_t size, uint64_t mask,
    uint64_t *pos)
{
	uint64_t p = ck_pr_load_64(head);

	for (;;) {
		uint64_t *seq = sx__ring_seq(slots, size, mask, p);
		int64_t diff = (int64_t)(ck_pr_load_64(seq) - (p + 1));

		ck_pr_fence_load();
		if (diff == 0) {
			if (ck_pr_cas_64_value(head, p, p + 1, &p)) {
				SX__TSAN_ACQUIRE(seq); /* the producer's writes of the item */
				*pos = p;
				return true;
			}
		} else if (diff < 0) {
			return false;
		} else {
			p = ck_pr_load_64(head); /* another consumer took p */
		}
	}
}

/* The item of pos has been read: give its slot to the next lap's producer. */
static inline void sx__ring_release(void *slots, size_t size, uint64_t mask, uint64_t pos)
{
	uint64_t *seq = sx__ring_seq(slots, size, mask, pos);

	ck_pr_fence_load_store(); /* the read of the item before the slot is handed back */
	SX__TSAN_RELEASE(seq);
	ck_pr_store_64(seq, pos + mask + 1);
}

/* Positions claimed by producers and not yet taken by consumers (published or about to be). */
static inline uint64_t sx__ring_count(const uint64_t *head, const uint64_t *tail)
{
	uint64_t h = ck_pr_load_64(head);
	uint64_t t = ck_pr_load_64(tail) & ~SX__RING_CLOSED;

	return t > h ? t - h : 0;
}

/* ---- per-thread records (thread.c) -------------------------------------------------------- */

/*
 * A record that belongs to one live thread at a time, kept in a registry for the registry's life.
 * When its thread exits (from a pthread key destructor) the owner calls sx__rec_leave, and a
 * later thread's sx__rec_claim revives it instead of allocating: a process whose threads come
 * and go keeps as many records as it ever had threads at once.
 */
typedef struct sx__rec {
	ck_stack_entry_t link;   /* in the registry, forever */
	unsigned dead;           /* its thread exited: another may claim it */
} sx__rec;

/* A dead record of reg, now the caller's; NULL when none is free (then add a new one). Lock-free. */
sx__rec *sx__rec_claim(ck_stack_t *reg);
/* List a new record, already the caller's. */
void sx__rec_add(ck_stack_t *reg, sx__rec *r);
/* Its thread is done with r: the next claim may take it. */
void sx__rec_leave(sx__rec *r);
/* Bind r to the calling thread under key: 0, or -ENOMEM (r is left for another claim). */
int sx__rec_bind(pthread_key_t key, sx__rec *r);

/* Create *key with dtor once per process, *state (zero-initialised) tracking it: 0, or
 * pthread_key_create's error negated (nothing created; a later call tries again). Threads that
 * find another creating it yield until it is done (once per process). */
int sx__key_once(int *state, pthread_key_t *key, void (*dtor)(void *));

/* ---- thread indexes (thread.c) ------------------------------------------------------------ */

/*
 * A small number for the calling thread, unique among the live threads: 0, 1, 2, ... in the
 * order threads first ask, an exited thread's number going to the next thread that asks (a
 * per-thread record of the index registry), so the numbers stay below the most threads the
 * process ever had asking at once. Its owner may update state indexed by it with plain
 * (relaxed) loads and stores; the hand-over to the next owner is ordered by the record's claim.
 * SX__THREAD_NONE when the thread could not get one (no key, or out of memory for a number at
 * or above SX__STRIPES): it is not remembered, so a later call tries again; callers treat it as
 * "shared": atomic updates. Wait-free once the thread has its number (one TLS load); the first
 * call claims a record, static for the numbers below SX__STRIPES and allocated above.
 */
#define SX__THREAD_NONE UINT32_MAX

extern __thread uint32_t sx__thread_idx1 __attribute__((tls_model("initial-exec")));

uint32_t sx__thread_index_slow(void);

static inline uint32_t sx__thread_index(void)
{
	uint32_t i = sx__thread_idx1;

	return SX__LIKELY(i != 0) ? i - 1 : sx__thread_index_slow();
}

/*
 * Striped event counters: SX__STRIPES cache lines, each updated only by the thread whose index
 * it is (a relaxed load and store: no locked instruction), and one shared line updated
 * atomically by every other thread (index SX__STRIPES and up, or SX__THREAD_NONE). Up to
 * SX__STRIPE_N counters per set. Readers sum relaxed loads: a sum is exact once the updates it
 * should count have happened before the read, and never goes down.
 */
#define SX__STRIPES 32u
#define SX__STRIPE_N 8u

typedef struct sx__stripe {
	SX__ALIGNED uint64_t v[SX__STRIPE_N];
} sx__stripe;

typedef struct sx__counters {
	sx__stripe own[SX__STRIPES];
	sx__stripe shared;
} sx__counters;

/* Count one event of counter `what` (< SX__STRIPE_N). Wait-free; any thread. */
static inline void sx__count(sx__counters *c, unsigned what)
{
	uint32_t i = sx__thread_index();

	if (SX__LIKELY(i < SX__STRIPES)) {
		uint64_t *w = &c->own[i].v[what];

		ck_pr_store_64(w, ck_pr_load_64(w) + 1);
	} else {
		ck_pr_inc_64(&c->shared.v[what]);
	}
}

/* The total of counter `what`. Wait-free; any thread. */
static inline uint64_t sx__count_sum(const sx__counters *c, unsigned what)
{
	uint64_t sum = ck_pr_load_64(&c->shared.v[what]);

	for (unsigned i = 0; i < SX__STRIPES; i++)
		sum += ck_pr_load_64(&c->own[i].v[what]);
	return sum;
}

/* The alignment of strix's small allocations: every jemalloc size class has it already, so asking
 * for it keeps jemalloc on its thread-cache path (a larger one goes down its aligned path). */
#define SX__SMALL_ALIGN 16u

/*
 * Zeroed memory from the default allocator, for what no pool's allocator owns (breakers,
 * promises, fan-outs, semaphores, limiters, wheels). Ask for SX__SMALL_ALIGN, or SX__CACHELINE
 * only for structs with cache-line aligned members.
 */
static inline void *sx__zalloc(size_t size, size_t align)
{
	void *p = sx_allocator_default.alloc(sx_allocator_default.ctx, size, align);

	if (p != NULL)
		memset(p, 0, size);
	return p;
}

static inline void sx__dfree(void *p, size_t size, size_t align)
{
	sx_allocator_default.free(sx_allocator_default.ctx, p, size, align);
}

static inline void sx__stat_add(uint64_t *ctr, uint64_t n)
{
	/* Single writer: a plain read of our own counter, an atomic store so readers never tear. */
	ck_pr_store_64(ctr, *ctr + n);
}

#endif /* STRIX_SRC_BASE_H */
