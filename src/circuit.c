/*
 * Circuit breaker. The whole state is one 64-bit word, changed only by CAS:
 *
 *     bits 63..32  until: OPEN: ms (since the circuit's origin) when it may half-open;
 *                  HALF_OPEN: the probe lease deadline once every probe is out; serial
 *                  arithmetic, so durations stay below 2^31 ms
 *     bits 31..17  generation, bumped by every transition (a permit carries it)
 *     bits 16..10  HALF_OPEN: successful probes
 *     bits  9..3   HALF_OPEN: probes handed out
 *     bits  2..0   state
 *
 * Every transition is one CAS from the word its maker saw to the next generation, so of two
 * racing transitions out of the same state exactly one happens, and results that were measured
 * against the old word (same generation check) cannot act on the new one. Effects that follow a
 * transition (resetting the consecutive-failure count, arming a timer, the callback) run after
 * the CAS, outside anything.
 *
 * Results of CLOSED (and METRICS_ONLY) calls go to stripes: NSTRIPES blocks of cache lines, a
 * thread always writing the same one (a per-thread slot number, taken once). A stripe's counts
 * are tagged with the low 13 bits of the generation they belong to; a stripe whose tag is older
 * than the permit being recorded is reset by whoever records first, and merging skips stripes
 * of other generations, so a new CLOSED spell starts with an empty window without anyone
 * sweeping the stripes at the transition.
 *
 *   COUNT window: a header word (position 12 bits, count 13, failures 13, slow 13, generation
 *   13) moved by CAS, and two bit rings (failed, slow) of window_size bits; recording reads the
 *   bits about to be overwritten, moves the header, then flips the bits that change.
 *   TIME window: window_buckets slots of {key, calls, failures, slow}; key = generation tag and
 *   bucket number; the first recorder of a new bucket claims the slot by CAS on its key and
 *   clears it, the others add with fetch-and-add.
 *
 * Two threads share a stripe only when more than NSTRIPES threads record; the CASes keep the
 * counts consistent then, except that a recorder preempted between its header CAS and its bit
 * flip for a whole lap of the ring can leave one bit stale (the counts never go negative; the
 * next reset clears it).
 */
#include <errno.h>
#include <math.h>

#include <ck_pr.h>

#include <strix/circuit.h>

#include "pool_impl.h"

#define NSTRIPES 16u

#define W_STATE(w) ((unsigned)((w) & 7u))
#define W_ISSUED(w) ((unsigned)(((w) >> 3) & 127u))
#define W_SUCC(w) ((unsigned)(((w) >> 10) & 127u))
#define W_GEN(w) ((uint32_t)(((w) >> 17) & 0x7fffu))
#define W_UNTIL(w) ((uint32_t)((w) >> 32))
#define W_ISSUED_ONE (UINT64_C(1) << 3)
#define W_SUCC_ONE (UINT64_C(1) << 10)

#define PERMIT_VALID (UINT64_C(1) << 63)
#define TAG(gen) ((uint32_t)(gen) & 0x1fffu)

/* COUNT stripe header fields. */
#define H_POS(h) ((uint32_t)((h) & 0xfffu))
#define H_CNT(h) ((uint32_t)(((h) >> 12) & 0x1fffu))
#define H_FAIL(h) ((uint32_t)(((h) >> 25) & 0x1fffu))
#define H_SLOW(h) ((uint32_t)(((h) >> 38) & 0x1fffu))
#define H_TAG(h) ((uint32_t)((h) >> 51))

/* TIME slot keys: generation tag above a 48-bit bucket number. */
#define K_TAG(k) ((uint32_t)((k) >> 48))
#define K_IDX(k) ((k) & ((UINT64_C(1) << 48) - 1))

typedef struct stripe {
	uint64_t hdr;       /* COUNT: the header; TIME: unused */
	uint64_t rejected;  /* calls refused on this stripe's threads */
	uint64_t data[];    /* COUNT: failed bits then slow bits; TIME: slots of 4 words */
} stripe;

struct sx_circuit {
	SX__ALIGNED uint64_t word;
	SX__ALIGNED uint64_t consec;   /* failures in a row (CLOSED) */
	uint32_t trips;                /* trips since the last close: the open duration grows */
	uint32_t refs;                 /* the creator's and one per pending timer */
	int destroyed;

	SX__ALIGNED char *stripes;
	size_t stripe_bytes;
	unsigned nwords;               /* COUNT: 64-bit words per bit ring */
	int window;
	uint32_t size;                 /* COUNT window or TIME buckets */
	uint64_t bucket_ns;
	uint32_t min_calls;
	uint32_t fail_ppm, slow_ppm;
	uint64_t slow_ns;
	uint32_t consec_max;
	uint64_t open_ns, open_max_ns, lease_ns;
	double backoff;
	uint32_t permits, needed;
	int (*classify)(int result, void *ctx);
	void *classify_ctx;
	sx_circuit_state_fn on_state;
	void *on_state_arg;
	sx_pool *pool;
	sx_clock clock;
	uint64_t origin;
};

static __thread uint32_t my_slot __attribute__((tls_model("initial-exec")));
static uint32_t next_slot;

static stripe *stripe_at(const sx_circuit *c, unsigned i)
{
	return (stripe *)(void *)(c->stripes + (size_t)i * c->stripe_bytes);
}

static stripe *my_stripe(const sx_circuit *c)
{
	uint32_t s = my_slot;

	if (SX__UNLIKELY(s == 0)) {
		s = ck_pr_faa_32(&next_slot, 1) + 1;
		if (s == 0)
			s = ck_pr_faa_32(&next_slot, 1) + 1;
		my_slot = s;
	}
	return stripe_at(c, (s - 1) & (NSTRIPES - 1));
}

static uint64_t now_of(const sx_circuit *c)
{
	return c->clock.now_ns(c->clock.ctx);
}

static uint32_t ms_of(const sx_circuit *c, uint64_t now)
{
	return (uint32_t)((now - c->origin) / 1000000u);
}

/* The until field for a deadline `ns` from now: rounded up, never early. */
static uint32_t until_of(const sx_circuit *c, uint64_t now, uint64_t ns)
{
	return (uint32_t)((now - c->origin + ns + 999999u) / 1000000u);
}

static bool passed(const sx_circuit *c, uint64_t now, uint32_t until)
{
	return (int32_t)(ms_of(c, now) - until) >= 0;
}

static uint64_t until_ns(const sx_circuit *c, uint64_t now, uint32_t until)
{
	int64_t ahead = (int32_t)(until - ms_of(c, now));

	return now - (now - c->origin) % 1000000u + (uint64_t)(ahead * 1000000);
}

static uint64_t w_make(unsigned state, uint32_t gen, uint32_t until)
{
	return (uint64_t)until << 32 | (uint64_t)(gen & 0x7fffu) << 17 | state;
}

/* ---- lifetime ------------------------------------------------------------------------------- */

static void c_free(sx_circuit *c)
{
	sx__dfree(c->stripes, (size_t)NSTRIPES * c->stripe_bytes, SX__CACHELINE);
	sx__dfree(c, sizeof(*c), SX__CACHELINE);
}

static void c_unref(sx_circuit *c)
{
	if (ck_pr_faa_32(&c->refs, (uint32_t)-1) == 1)
		c_free(c);
}

static int check_rate(double r)
{
	return r > 0.0 && r <= 1.0 ? 0 : -EINVAL; /* NaN fails both */
}

static int check_duration(uint64_t ns)
{
	return ns >= 1000000u && ns <= SX_CIRCUIT_MAX_DURATION_NS ? 0 : -EINVAL;
}

static int check_opts(const sx_circuit_opts *o)
{
	uint64_t max = o->open_max_ns != 0 ? o->open_max_ns : SX_CIRCUIT_MAX_DURATION_NS;

	if (o->window == SX_CIRCUIT_WINDOW_COUNT) {
		if (o->window_size == 0 || o->window_size > SX_CIRCUIT_MAX_WINDOW)
			return -EINVAL;
	} else if (o->window == SX_CIRCUIT_WINDOW_TIME) {
		if (o->window_buckets == 0 || o->window_buckets > SX_CIRCUIT_MAX_BUCKETS ||
		    o->window_ns < o->window_buckets)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (check_rate(o->failure_rate) != 0 || check_rate(o->slow_rate) != 0 ||
	    check_duration(o->open_ns) != 0 || check_duration(o->probe_lease_ns) != 0 ||
	    !(o->open_backoff >= 1.0) || max < o->open_ns || max > SX_CIRCUIT_MAX_DURATION_NS ||
	    o->half_open_permits == 0 || o->half_open_permits > SX_CIRCUIT_MAX_PERMITS ||
	    o->half_open_successes > o->half_open_permits ||
	    (o->clock != NULL && o->clock->now_ns == NULL))
		return -EINVAL;
	return 0;
}

int sx_circuit_create(const sx_circuit_opts *o, sx_circuit **out)
{
	sx_circuit *c;
	size_t bytes;
	int rc;

	if (o == NULL || out == NULL)
		return -EINVAL;
	rc = check_opts(o);
	if (rc != 0)
		return rc;
	c = sx__zalloc(sizeof(*c), SX__CACHELINE);
	if (c == NULL)
		return -ENOMEM;
	c->window = o->window;
	if (o->window == SX_CIRCUIT_WINDOW_COUNT) {
		c->size = o->window_size;
		c->nwords = (o->window_size + 63) / 64;
		bytes = sizeof(stripe) + 2 * c->nwords * sizeof(uint64_t);
	} else {
		c->size = o->window_buckets;
		c->bucket_ns = o->window_ns / o->window_buckets;
		bytes = sizeof(stripe) + (size_t)c->size * 4 * sizeof(uint64_t);
	}
	c->stripe_bytes = (bytes + SX__CACHELINE - 1) & ~(size_t)(SX__CACHELINE - 1);
	c->stripes = sx__zalloc((size_t)NSTRIPES * c->stripe_bytes, SX__CACHELINE);
	if (c->stripes == NULL) {
		sx__dfree(c, sizeof(*c), SX__CACHELINE);
		return -ENOMEM;
	}
	c->min_calls = o->min_calls != 0 ? o->min_calls : 1;
	c->fail_ppm = (uint32_t)llround(o->failure_rate * 1e6);
	c->slow_ppm = (uint32_t)llround(o->slow_rate * 1e6);
	c->slow_ns = o->slow_call_ns;
	c->consec_max = o->consecutive_failures;
	c->open_ns = o->open_ns;
	c->open_max_ns = o->open_max_ns != 0 ? o->open_max_ns : SX_CIRCUIT_MAX_DURATION_NS;
	c->lease_ns = o->probe_lease_ns;
	c->backoff = o->open_backoff;
	c->permits = o->half_open_permits;
	c->needed = o->half_open_successes != 0 ? o->half_open_successes : o->half_open_permits;
	c->classify = o->classify;
	c->classify_ctx = o->classify_ctx;
	c->on_state = o->on_state;
	c->on_state_arg = o->on_state_arg;
	c->pool = o->pool;
	c->clock = o->clock != NULL ? *o->clock : sx_clock_monotonic;
	c->origin = now_of(c);
	c->refs = 1;
	c->word = w_make(SX_CIRCUIT_CLOSED, 0, 0);
	*out = c;
	return 0;
}

void sx_circuit_destroy(sx_circuit *c)
{
	if (c == NULL)
		return;
	ck_pr_store_int(&c->destroyed, 1);
	c_unref(c);
}

/* ---- the window ----------------------------------------------------------------------------- */

static bool tag_newer(uint32_t a, uint32_t b) /* a is a later generation than b */
{
	return a != b && ((a - b) & 0x1fffu) < 0x1000u;
}

static void bit_set(uint64_t *words, uint32_t pos, bool on)
{
	uint64_t m = UINT64_C(1) << (pos & 63);

	if (on)
		ck_pr_or_64(&words[pos >> 6], m);
	else
		ck_pr_and_64(&words[pos >> 6], ~m);
}

static bool bit_get(const uint64_t *words, uint32_t pos)
{
	return (ck_pr_load_64(&words[pos >> 6]) >> (pos & 63)) & 1u;
}

static void record_count(const sx_circuit *c, stripe *s, uint32_t tag, bool fail, bool slow)
{
	uint64_t *fbits = s->data, *sbits = s->data + c->nwords;
	uint64_t h = ck_pr_load_64(&s->hdr), nh;
	uint32_t pos, cnt, nf, ns;
	bool full, fb = false, sb = false;

	for (;;) {
		if (H_TAG(h) != tag) {
			if (tag_newer(H_TAG(h), tag))
				return; /* a later generation owns the stripe: this result is stale */
			for (unsigned i = 0; i < 2 * c->nwords; i++)
				ck_pr_store_64(&s->data[i], 0);
			nh = (uint64_t)tag << 51;
			if (!ck_pr_cas_64_value(&s->hdr, h, nh, &h))
				continue;
			h = nh;
		}
		pos = H_POS(h);
		cnt = H_CNT(h);
		full = cnt == c->size;
		fb = full && bit_get(fbits, pos);
		sb = full && bit_get(sbits, pos);
		nf = H_FAIL(h) - (fb && H_FAIL(h) != 0) + fail;
		ns = H_SLOW(h) - (sb && H_SLOW(h) != 0) + slow;
		nh = (uint64_t)tag << 51 | (uint64_t)ns << 38 | (uint64_t)nf << 25 |
		    (uint64_t)(full ? cnt : cnt + 1) << 12 | (pos + 1 == c->size ? 0 : pos + 1);
		if (ck_pr_cas_64_value(&s->hdr, h, nh, &h))
			break;
	}
	if (fb != fail)
		bit_set(fbits, pos, fail);
	if (sb != slow)
		bit_set(sbits, pos, slow);
}

static void record_time(const sx_circuit *c, stripe *s, uint32_t tag, uint64_t now, bool fail,
    bool slow)
{
	uint64_t idx = (now - c->origin) / c->bucket_ns;
	uint64_t key = (uint64_t)tag << 48 | K_IDX(idx);
	uint64_t *slot = s->data + (idx % c->size) * 4;
	uint64_t k = ck_pr_load_64(&slot[0]);

	while (k != key) {
		if (tag_newer(K_TAG(k), tag) || (K_TAG(k) == tag && K_IDX(k) > K_IDX(key)))
			return; /* the slot moved on past this result */
		if (ck_pr_cas_64_value(&slot[0], k, key, &k)) {
			ck_pr_store_64(&slot[1], 0);
			ck_pr_store_64(&slot[2], 0);
			ck_pr_store_64(&slot[3], 0);
			break;
		}
	}
	ck_pr_inc_64(&slot[1]);
	if (fail)
		ck_pr_inc_64(&slot[2]);
	if (slow)
		ck_pr_inc_64(&slot[3]);
}

/* Merged counts of generation `gen`'s window, as seen at `now` (TIME windows only read it). */
static void merge(const sx_circuit *c, uint32_t gen, uint64_t now, sx_circuit_metrics *m)
{
	uint32_t tag = TAG(gen);
	uint64_t cur = c->window == SX_CIRCUIT_WINDOW_TIME ? (now - c->origin) / c->bucket_ns : 0;

	m->calls = m->failures = m->slow = m->rejected = 0;
	for (unsigned i = 0; i < NSTRIPES; i++) {
		stripe *s = stripe_at(c, i);

		m->rejected += ck_pr_load_64(&s->rejected);
		if (c->window == SX_CIRCUIT_WINDOW_COUNT) {
			uint64_t h = ck_pr_load_64(&s->hdr);

			if (H_TAG(h) != tag)
				continue;
			m->calls += H_CNT(h);
			m->failures += H_FAIL(h);
			m->slow += H_SLOW(h);
			continue;
		}
		for (unsigned b = 0; b < c->size; b++) {
			uint64_t *slot = s->data + (size_t)b * 4;
			uint64_t k = ck_pr_load_64(&slot[0]);

			if (K_TAG(k) != tag || K_IDX(k) > K_IDX(cur) ||
			    K_IDX(cur) - K_IDX(k) >= c->size)
				continue;
			m->calls += ck_pr_load_64(&slot[1]);
			m->failures += ck_pr_load_64(&slot[2]);
			m->slow += ck_pr_load_64(&slot[3]);
		}
	}
	m->failure_rate = m->calls != 0 ? (double)m->failures / (double)m->calls : 0.0;
	m->slow_rate = m->calls != 0 ? (double)m->slow / (double)m->calls : 0.0;
}

static void snapshot(const sx_circuit *c, uint64_t w, uint64_t now, sx_circuit_metrics *m)
{
	merge(c, W_GEN(w), now, m);
	m->state = (int)W_STATE(w);
	m->generation = W_GEN(w);
	m->consecutive_failures = ck_pr_load_64((uint64_t *)&c->consec);
	m->half_open_issued = W_ISSUED(w);
	m->half_open_successes = W_SUCC(w);
	m->until_ns = 0;
	if (W_STATE(w) == SX_CIRCUIT_OPEN ||
	    (W_STATE(w) == SX_CIRCUIT_HALF_OPEN && W_ISSUED(w) == c->permits))
		m->until_ns = until_ns(c, now, W_UNTIL(w));
}

static bool over(const sx_circuit *c, const sx_circuit_metrics *m)
{
	if (m->calls < c->min_calls)
		return false;
	if (m->failures * UINT64_C(1000000) >= (uint64_t)c->fail_ppm * m->calls)
		return true;
	return c->slow_ns != 0 && m->slow * UINT64_C(1000000) >= (uint64_t)c->slow_ppm * m->calls;
}

/* ---- transitions ---------------------------------------------------------------------------- */

static uint64_t open_duration(const sx_circuit *c)
{
	uint32_t trips = ck_pr_load_32((uint32_t *)&c->trips);
	double d = (double)c->open_ns;

	for (uint32_t i = 0; i < trips && d < (double)c->open_max_ns; i++)
		d *= c->backoff;
	return d >= (double)c->open_max_ns ? c->open_max_ns : (uint64_t)d;
}

static void refresh(sx_circuit *c, uint64_t now);

static void timer_fn(void *arg, int status)
{
	sx_circuit *c = arg;

	if (status == 0 && !ck_pr_load_int(&c->destroyed))
		refresh(c, now_of(c));
	c_unref(c);
}

/* Have the pool's timer service look at c `ns` from now (nothing without a pool: callers will). */
static void arm(sx_circuit *c, uint64_t ns)
{
	if (c->pool == NULL)
		return;
	ck_pr_inc_32(&c->refs);
	if (sx_timer_add(c->pool, ns, 0, timer_fn, c, NULL) != 0)
		c_unref(c); /* shut down or out of memory: the next caller will look instead */
}

/*
 * Move c from the word *w (as its maker saw it) to state `to` in the next generation. Returns
 * true if this call made the transition; false with the current word in *w if c had moved on.
 */
static bool move(sx_circuit *c, uint64_t *w, unsigned to, uint64_t now)
{
	uint64_t from_w = *w, nw, dur = 0;
	uint32_t until = 0;
	sx_circuit_metrics m;

	if (to == SX_CIRCUIT_OPEN) {
		dur = open_duration(c);
		until = until_of(c, now, dur);
	}
	nw = w_make(to, W_GEN(from_w) + 1, until);
	if (!ck_pr_cas_64_value(&c->word, from_w, nw, w))
		return false;
	*w = nw;
	if (to == SX_CIRCUIT_OPEN) {
		ck_pr_inc_32(&c->trips);
		arm(c, until_ns(c, now, until) - now);
	} else if (to == SX_CIRCUIT_CLOSED) {
		ck_pr_store_32(&c->trips, 0);
	}
	if (to != SX_CIRCUIT_HALF_OPEN)
		ck_pr_store_64(&c->consec, 0);
	if (c->on_state != NULL) {
		snapshot(c, from_w, now, &m);
		c->on_state(c, (int)W_STATE(from_w), (int)to, &m, c->on_state_arg);
	}
	return true;
}

/* Time-driven transitions: OPEN whose duration is over -> HALF_OPEN; HALF_OPEN with every probe
 * out and the lease expired -> OPEN. */
static void refresh(sx_circuit *c, uint64_t now)
{
	uint64_t w = ck_pr_load_64(&c->word);

	for (;;) {
		unsigned st = W_STATE(w);

		if (st == SX_CIRCUIT_OPEN && passed(c, now, W_UNTIL(w))) {
			if (move(c, &w, SX_CIRCUIT_HALF_OPEN, now))
				return;
		} else if (st == SX_CIRCUIT_HALF_OPEN && W_ISSUED(w) == c->permits &&
		    passed(c, now, W_UNTIL(w))) {
			if (move(c, &w, SX_CIRCUIT_OPEN, now))
				return;
		} else {
			return;
		}
	}
}

static int reject(sx_circuit *c, sx_circuit_permit *permit)
{
	ck_pr_inc_64(&my_stripe(c)->rejected);
	*permit = 0;
	return SX_ECIRCUIT_OPEN;
}

int sx_circuit_acquire(sx_circuit *c, sx_circuit_permit *permit)
{
	uint64_t w, nw, now;
	bool last;

	if (SX__UNLIKELY(c == NULL || permit == NULL))
		return -EINVAL;
	w = ck_pr_load_64(&c->word);
	for (;;) {
		switch (W_STATE(w)) {
		case SX_CIRCUIT_CLOSED:
		case SX_CIRCUIT_DISABLED:
		case SX_CIRCUIT_METRICS_ONLY:
			*permit = PERMIT_VALID | W_GEN(w);
			return 0;
		case SX_CIRCUIT_OPEN:
			now = now_of(c);
			if (!passed(c, now, W_UNTIL(w)))
				return reject(c, permit);
			move(c, &w, SX_CIRCUIT_HALF_OPEN, now);
			w = ck_pr_load_64(&c->word);
			continue;
		case SX_CIRCUIT_HALF_OPEN:
			if (W_ISSUED(w) == c->permits) {
				now = now_of(c);
				if (passed(c, now, W_UNTIL(w)))
					move(c, &w, SX_CIRCUIT_OPEN, now);
				return reject(c, permit);
			}
			nw = w + W_ISSUED_ONE;
			last = W_ISSUED(nw) == c->permits;
			if (last) { /* the last probe: its lease starts now */
				now = now_of(c);
				nw = (nw & 0xffffffffu) | (uint64_t)until_of(c, now, c->lease_ns) << 32;
			}
			if (!ck_pr_cas_64_value(&c->word, w, nw, &w))
				continue;
			if (last)
				arm(c, c->lease_ns);
			*permit = PERMIT_VALID | W_GEN(w);
			return 0;
		default: /* FORCED_OPEN */
			return reject(c, permit);
		}
	}
}

static int classify(const sx_circuit *c, int result)
{
	if (c->classify != NULL)
		return c->classify(result, c->classify_ctx);
	if (result == 0)
		return SX_CIRCUIT_SUCCESS;
	return result == -ECANCELED ? SX_CIRCUIT_IGNORE : SX_CIRCUIT_FAILURE;
}

/* A CLOSED or METRICS_ONLY result. */
static void record_closed(sx_circuit *c, uint64_t w, bool fail, bool slow)
{
	bool timed = c->window == SX_CIRCUIT_WINDOW_TIME;
	uint64_t now = timed ? now_of(c) : 0, n = 0;
	sx_circuit_metrics m;

	if (timed)
		record_time(c, my_stripe(c), TAG(W_GEN(w)), now, fail, slow);
	else
		record_count(c, my_stripe(c), TAG(W_GEN(w)), fail, slow);
	if (fail)
		n = ck_pr_faa_64(&c->consec, 1) + 1;
	else if (ck_pr_load_64(&c->consec) != 0)
		ck_pr_store_64(&c->consec, 0);
	if (W_STATE(w) != SX_CIRCUIT_CLOSED || (!fail && !slow))
		return;
	if (!timed)
		now = now_of(c);
	if (c->consec_max != 0 && n >= c->consec_max) {
		move(c, &w, SX_CIRCUIT_OPEN, now);
		return;
	}
	merge(c, W_GEN(w), now, &m);
	if (over(c, &m))
		move(c, &w, SX_CIRCUIT_OPEN, now);
}

int sx_circuit_release(sx_circuit *c, sx_circuit_permit permit, int result, uint64_t latency_ns)
{
	uint64_t w, nw;
	uint32_t gen = (uint32_t)(permit & 0x7fffu);
	int outcome;
	bool slow;

	if (SX__UNLIKELY(c == NULL || (permit & PERMIT_VALID) == 0))
		return -EINVAL;
	w = ck_pr_load_64(&c->word);
	if (W_GEN(w) != gen)
		return -ESTALE;
	if (W_STATE(w) == SX_CIRCUIT_DISABLED)
		return 0;
	outcome = classify(c, result);
	slow = c->slow_ns != 0 && latency_ns >= c->slow_ns;
	if (W_STATE(w) != SX_CIRCUIT_HALF_OPEN) {
		if (outcome != SX_CIRCUIT_IGNORE)
			record_closed(c, w, outcome == SX_CIRCUIT_FAILURE, slow);
		return 0;
	}
	for (;;) { /* a probe's verdict */
		if (outcome == SX_CIRCUIT_IGNORE) {
			nw = W_ISSUED(w) != 0 ? w - W_ISSUED_ONE : w; /* the permit goes back */
		} else if (outcome == SX_CIRCUIT_FAILURE || slow) {
			if (move(c, &w, SX_CIRCUIT_OPEN, now_of(c)))
				return 0;
			goto moved;
		} else if (W_SUCC(w) + 1 >= c->needed) {
			if (move(c, &w, SX_CIRCUIT_CLOSED, now_of(c)))
				return 0;
			goto moved;
		} else {
			nw = w + W_SUCC_ONE;
		}
		if (ck_pr_cas_64_value(&c->word, w, nw, &w))
			return 0;
moved:
		if (W_GEN(w) != gen)
			return -ESTALE;
	}
}

int sx_circuit_state(sx_circuit *c)
{
	uint64_t w;

	if (c == NULL)
		return -EINVAL;
	w = ck_pr_load_64(&c->word);
	if (W_STATE(w) == SX_CIRCUIT_OPEN ||
	    (W_STATE(w) == SX_CIRCUIT_HALF_OPEN && W_ISSUED(w) == c->permits)) {
		refresh(c, now_of(c));
		w = ck_pr_load_64(&c->word);
	}
	return (int)W_STATE(w);
}

int sx_circuit_force(sx_circuit *c, int state)
{
	uint64_t w, now;

	if (c == NULL || state < SX_CIRCUIT_CLOSED || state > SX_CIRCUIT_METRICS_ONLY)
		return -EINVAL;
	now = now_of(c);
	w = ck_pr_load_64(&c->word);
	while (!move(c, &w, (unsigned)state, now))
		;
	return 0;
}

int sx_circuit_snapshot(sx_circuit *c, sx_circuit_metrics *m)
{
	if (c == NULL || m == NULL)
		return -EINVAL;
	snapshot(c, ck_pr_load_64(&c->word), now_of(c), m);
	return 0;
}

const char *sx_circuit_state_name(int state)
{
	static const char *const names[] = { "closed", "open", "half-open", "forced-open",
		"disabled", "metrics-only" };

	return state >= 0 && state <= SX_CIRCUIT_METRICS_ONLY ? names[state] : "unknown";
}

uint64_t sx__circuit_slow_ns(const sx_circuit *c)
{
	return c->slow_ns;
}
