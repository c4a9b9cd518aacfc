/*
 * Circuit breaker. The whole state is one 64-bit word, changed only by CAS:
 *
 *     bits 63..22  generation (42 bits), bumped by every transition (a permit carries it)
 *     bits 21..17  the deadline cell (0: none)
 *     bits 16..10  HALF_OPEN: successful probes
 *     bits  9..3   HALF_OPEN: probes handed out
 *     bits  2..0   state
 *
 * Every transition is one CAS from the word its maker saw to the next generation, so of two
 * racing transitions out of the same state exactly one happens, and results that were measured
 * against the old word (same generation check) cannot act on the new one. Generations are only
 * ever compared for equality: a result, a stripe or a permit belongs to the current generation or
 * it does not, and a value 2^42 transitions old is the only one that could be taken for the
 * current one. Effects that follow a transition (arming a timer, the callback) run after the CAS,
 * outside anything.
 *
 * Deadlines (OPEN: when it may half-open; HALF_OPEN with every probe out: the probe lease) are
 * whole ns on the circuit's clock and live in cells, not in the word: the word names the cell of
 * its deadline. A maker that needs a deadline first claims a free cell for itself alone (busy 0 ->
 * 1 by CAS, and not the one the word names), writes the deadline and the open duration into it,
 * then CASes the word to name it, and frees the claim whether its CAS won or not. A cell is thus
 * written only by its claimer, and only while the word does not name it, so a reader that finds a
 * cell through the word it loaded reads that word's deadline, or (if the word has moved on since)
 * a later one, which can only make it refuse a call the circuit had refused a moment before, or
 * attempt a transition whose CAS then fails. The open duration travels with the cells (each
 * trip's is the one before times open_backoff, capped), reset by every close, which names no
 * cell. Claiming scans NCELLS - 1 cells; it finds one free unless NCELLS - 2 threads are
 * suspended between their claim and their CAS at once.
 *
 * Results of CLOSED (and METRICS_ONLY) calls go to stripes: NSTRIPES blocks of cache lines, a
 * thread always writing the same one (a per-thread slot number, taken once). A stripe carries the
 * generation its counts belong to; the first recorder of a newer generation (one that finds its
 * permit's generation still current) moves the stripe to it by CAS and resets its window, and
 * merging skips stripes of other generations, so a new CLOSED spell starts with an empty window
 * without anyone sweeping the stripes at the transition.
 *
 *   COUNT window: a header word (ring position and fill 13 bits, failures 13, slow 13, and the
 *   low 25 bits of the generation, so that a recorder racing with a reset fails its CAS) moved by
 *   CAS, and two bit rings (failed, slow) of window_size bits; recording reads the bits about to
 *   be overwritten, moves the header, then writes the bits of its own position. A success that
 *   finds the window full of successes and no run of failures is not written at all: recording
 *   it would change nothing a reader can see (success_changes_nothing).
 *   TIME window: window_buckets slots of {bucket number + 1 (0: empty), calls, failures, slow}:
 *   the first recorder of a new bucket claims the slot by CAS on its key and clears it, the others
 *   add with fetch-and-add.
 *
 * Two threads share a stripe only when more than NSTRIPES threads record; the CASes keep the
 * counts consistent then, except that a recorder preempted between its header CAS and its bit
 * write for a whole lap of the ring can leave one bit stale, and results recorded while another
 * thread resets the stripe may be lost (the counts never go negative; the next reset clears it).
 */
#include <errno.h>
#include <math.h>

#include <ck_pr.h>

#include <strix/circuit.h>

#include "guard/guard.h"

#define NSTRIPES 16u
#define NCELLS 32u

/* The state word, low bits first: state (3 bits), probes issued (7), probe successes (7), the
 * deadline cell (5: NCELLS), the generation (42). */
#define W_STATE_MASK 7u
#define W_ISSUED_SHIFT 3
#define W_SUCC_SHIFT 10
#define W_COUNT_MASK 127u      /* issued, successes */
#define W_CELL_SHIFT 17
#define W_GEN_SHIFT 22
#define W_GEN_BITS 42
#define W_STATE(w) ((unsigned)((w) & W_STATE_MASK))
#define W_ISSUED(w) ((unsigned)(((w) >> W_ISSUED_SHIFT) & W_COUNT_MASK))
#define W_SUCC(w) ((unsigned)(((w) >> W_SUCC_SHIFT) & W_COUNT_MASK))
#define W_CELL(w) ((unsigned)(((w) >> W_CELL_SHIFT) & (NCELLS - 1)))
#define W_GEN(w) ((w) >> W_GEN_SHIFT)
#define W_ISSUED_ONE (UINT64_C(1) << W_ISSUED_SHIFT)
#define W_SUCC_ONE (UINT64_C(1) << W_SUCC_SHIFT)
#define W_CELL_MASK ((uint64_t)(NCELLS - 1) << W_CELL_SHIFT)
#define GEN_MASK ((UINT64_C(1) << W_GEN_BITS) - 1)
_Static_assert(W_GEN_SHIFT + W_GEN_BITS == 64 && (NCELLS << W_CELL_SHIFT) == (1u << W_GEN_SHIFT),
    "the state word's fields fill 64 bits exactly");

#define PERMIT_VALID (UINT64_C(1) << 63)

/* The states whose results go into the window (a bit each). */
#define RECORDING (1u << SX_CIRCUIT_CLOSED | 1u << SX_CIRCUIT_METRICS_ONLY)

/* COUNT stripe header, low bits first: v (13 bits), failures (13), slow calls (13), the low
 * 25 bits of the generation (the tag). v < size: size not reached, v calls, next position v;
 * v >= size: full, next position v - size. */
#define H_FIELD_MASK 0x1fffu
#define H_FAIL_SHIFT 13
#define H_SLOW_SHIFT 26
#define H_TAG_SHIFT 39
#define TAG(gen) ((uint64_t)(gen) & ((UINT64_C(1) << (64 - H_TAG_SHIFT)) - 1))
#define H_V(h) ((uint32_t)((h) & H_FIELD_MASK))
#define H_FAIL(h) ((uint32_t)(((h) >> H_FAIL_SHIFT) & H_FIELD_MASK))
#define H_SLOW(h) ((uint32_t)(((h) >> H_SLOW_SHIFT) & H_FIELD_MASK))
#define H_TAG(h) ((h) >> H_TAG_SHIFT)
_Static_assert(2 * SX_CIRCUIT_MAX_WINDOW <= (1u << H_FAIL_SHIFT),
    "v < 2 * window_size fits its field, and a count outweighs any v (success_changes_nothing)");

typedef struct stripe {
	uint64_t gen;       /* the generation whose results the stripe holds */
	uint64_t hdr;       /* COUNT: the header; TIME: unused */
	uint64_t rejected;  /* calls refused on this stripe's threads */
	uint64_t data[];    /* COUNT: failed bits then slow bits; TIME: slots of 4 words */
} stripe;

typedef struct cell {
	uint32_t busy;      /* claimed by a maker writing it */
	uint64_t at;        /* the deadline, ns on the circuit's clock */
	uint64_t dur;       /* the open duration of the latest trip; 0: none since the last close */
} cell;

struct sx_circuit {
	SX__ALIGNED uint64_t word;
	SX__ALIGNED uint64_t consec;   /* failures in a row (CLOSED) */
	uint32_t refs;                 /* the creator's and one per pending timer */
	int destroyed;

	SX__ALIGNED cell cells[NCELLS]; /* cells[0] is never claimed: "no deadline" */

	SX__ALIGNED char *stripes;
	size_t stripe_bytes;
	unsigned nwords;               /* COUNT: 64-bit words per bit ring */
	int window;
	uint32_t size;                 /* COUNT window or TIME buckets */
	uint64_t bucket_ns;
	uint32_t min_calls;
	uint32_t fail_ppm, slow_ppm;
	uint64_t slow_ns;
	uint64_t slow_from;            /* slow_ns, or 2^63 (above every latency >= 0) for none */
	uint32_t quiet_states;         /* RECORDING with a COUNT window and the default classify */
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
};

static __thread uint32_t my_slot __attribute__((tls_model("initial-exec")));
static uint32_t next_slot;

static stripe *stripe_at(const sx_circuit *c, unsigned i)
{
	return (stripe *)(void *)(c->stripes + (size_t)i * c->stripe_bytes);
}

static uint32_t slot_of_thread(void)
{
	uint32_t s = my_slot;

	if (SX__UNLIKELY(s == 0)) {
		s = ck_pr_faa_32(&next_slot, 1) + 1;
		if (s == 0)
			s = ck_pr_faa_32(&next_slot, 1) + 1;
		my_slot = s;
	}
	return s;
}

static stripe *my_stripe(const sx_circuit *c)
{
	return stripe_at(c, (slot_of_thread() - 1) & (NSTRIPES - 1));
}

static uint64_t now_of(const sx_circuit *c)
{
	return c->clock.now_ns(c->clock.ctx);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t w_make(unsigned state, uint64_t gen, unsigned cellno)
{
	return (gen & GEN_MASK) << W_GEN_SHIFT | (uint64_t)cellno << W_CELL_SHIFT | state;
}

/* The deadline of word w (as its cell holds it; a later one if w is no longer current). */
static uint64_t w_at(const sx_circuit *c, uint64_t w)
{
	ck_pr_fence_load();
	return ck_pr_load_64((uint64_t *)&c->cells[W_CELL(w)].at);
}

static uint64_t w_dur(const sx_circuit *c, uint64_t w)
{
	ck_pr_fence_load();
	return ck_pr_load_64((uint64_t *)&c->cells[W_CELL(w)].dur);
}

/* A cell for this thread alone, not named by the word: see the top of the file. */
static unsigned cell_claim(sx_circuit *c)
{
	unsigned start = slot_of_thread();

	for (;;) {
		for (unsigned k = 0; k < NCELLS - 1; k++) {
			unsigned j = 1 + (start + k) % (NCELLS - 1);

			if (ck_pr_load_32(&c->cells[j].busy) != 0 ||
			    W_CELL(ck_pr_load_64(&c->word)) == j ||
			    !ck_pr_cas_32(&c->cells[j].busy, 0, 1))
				continue;
			ck_pr_fence_memory();
			if (W_CELL(ck_pr_load_64(&c->word)) != j)
				return j;
			ck_pr_store_32(&c->cells[j].busy, 0);
		}
		ck_pr_stall();
	}
}

static void cell_fill(sx_circuit *c, unsigned j, uint64_t at, uint64_t dur)
{
	ck_pr_store_64(&c->cells[j].at, at);
	ck_pr_store_64(&c->cells[j].dur, dur);
	ck_pr_fence_store();
}

static void cell_free(sx_circuit *c, unsigned j)
{
	ck_pr_fence_release();
	ck_pr_store_32(&c->cells[j].busy, 0);
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

static int check_duration(int64_t ns)
{
	return ns >= 1000000 && ns <= SX_CIRCUIT_MAX_DURATION_NS ? 0 : -EINVAL;
}

/* Zero means the default (SX_CIRCUIT_OPTS_INIT's) in every field where 0 is no value of its own
 * (sx_circuit_opts in strix/circuit.h lists them); checked afterwards like given values. */
static void apply_defaults(sx_circuit_opts *o)
{
	const int64_t ten_s = INT64_C(10000000000);

	if (o->window_size == 0)
		o->window_size = 100;
	if (o->window_ns == 0)
		o->window_ns = ten_s;
	if (o->window_buckets == 0)
		o->window_buckets = 10;
	if (o->failure_rate == 0.0)
		o->failure_rate = 0.5;
	if (o->slow_rate == 0.0)
		o->slow_rate = 1.0;
	if (o->open_ns == 0)
		o->open_ns = o->open_max_ns > 0 && o->open_max_ns < ten_s ? o->open_max_ns : ten_s;
	if (o->open_backoff == 0.0)
		o->open_backoff = 1.0;
	if (o->half_open_permits == 0)
		o->half_open_permits = 1;
	if (o->probe_lease_ns == 0)
		o->probe_lease_ns = ten_s;
}

static int check_opts(const sx_circuit_opts *o)
{
	int64_t max = o->open_max_ns != 0 ? o->open_max_ns : SX_CIRCUIT_MAX_DURATION_NS;

	if (!SX__RESERVED_CLEAR(o))
		return -EINVAL;
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
	if (check_rate(o->failure_rate) != 0 || check_rate(o->slow_rate) != 0 || o->slow_call_ns < 0 ||
	    check_duration(o->open_ns) != 0 || check_duration(o->probe_lease_ns) != 0 ||
	    !(o->open_backoff >= 1.0) || max < o->open_ns || max > SX_CIRCUIT_MAX_DURATION_NS ||
	    o->half_open_permits == 0 || o->half_open_permits > SX_CIRCUIT_MAX_PERMITS ||
	    o->half_open_successes > o->half_open_permits ||
	    (o->clock != NULL && o->clock->now_ns == NULL))
		return -EINVAL;
	return 0;
}

/* A rate in millionths, at least one (a rate above 0 never trips with no failure at all). */
static uint32_t ppm_of(double rate)
{
	long long ppm = llround(rate * 1e6);

	return ppm < 1 ? 1 : (uint32_t)ppm;
}

int sx_circuit_create(const sx_circuit_opts *opts, sx_circuit **out)
{
	sx_circuit_opts resolved;
	const sx_circuit_opts *o = &resolved;
	sx_circuit *c;
	size_t bytes;
	int rc;

	if (opts == NULL || out == NULL)
		return -EINVAL;
	resolved = *opts;
	apply_defaults(&resolved);
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
	c->fail_ppm = ppm_of(o->failure_rate);
	c->slow_ppm = ppm_of(o->slow_rate);
	c->slow_ns = o->slow_call_ns;
	c->slow_from = c->slow_ns != 0 ? c->slow_ns : UINT64_C(1) << 63;
	c->quiet_states = o->window == SX_CIRCUIT_WINDOW_COUNT && o->classify == NULL ?
	    RECORDING : 0;
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

/* An empty window for generation gen (the stripe has just been moved to it). */
static void window_reset(const sx_circuit *c, stripe *s, uint64_t gen)
{
	if (c->window == SX_CIRCUIT_WINDOW_COUNT) {
		ck_pr_store_64(&s->hdr, TAG(gen) << H_TAG_SHIFT);
		return;
	}
	for (unsigned b = 0; b < c->size; b++)
		ck_pr_store_64(&s->data[(size_t)b * 4], 0);
}

/* Have s hold generation gen's results. False if gen is no longer current: the result is stale. */
static bool stripe_enter(const sx_circuit *c, stripe *s, uint64_t gen)
{
	uint64_t sg = ck_pr_load_64(&s->gen);

	while (sg != gen) {
		if (W_GEN(ck_pr_load_64((uint64_t *)&c->word)) != gen)
			return false;
		if (ck_pr_cas_64_value(&s->gen, sg, gen, &sg)) {
			window_reset(c, s, gen);
			return true;
		}
	}
	return true;
}

static void record_count(const sx_circuit *c, stripe *s, uint64_t gen, bool fail, bool slow)
{
	uint64_t *fbits = s->data, *sbits = s->data + c->nwords;
	uint64_t tag = TAG(gen), h = ck_pr_load_64(&s->hdr), nh;
	uint32_t v, pos, nf, ns;
	bool full, fb, sb;

	for (;;) {
		if (H_TAG(h) != tag || ck_pr_load_64(&s->gen) != gen)
			return; /* reset for another generation: this result is stale */
		v = H_V(h);
		full = v >= c->size;
		pos = full ? v - c->size : v;
		fb = full && bit_get(fbits, pos);
		sb = full && bit_get(sbits, pos);
		nf = H_FAIL(h) - (fb && H_FAIL(h) != 0) + fail;
		ns = H_SLOW(h) - (sb && H_SLOW(h) != 0) + slow;
		nh = tag << H_TAG_SHIFT | (uint64_t)ns << H_SLOW_SHIFT | (uint64_t)nf << H_FAIL_SHIFT |
		    (v + 1 == 2 * c->size ? c->size : v + 1);
		if (ck_pr_cas_64_value(&s->hdr, h, nh, &h))
			break;
	}
	/* The position is this result's now; its bits may still be a former generation's. */
	if (bit_get(fbits, pos) != fail)
		bit_set(fbits, pos, fail);
	if (bit_get(sbits, pos) != slow)
		bit_set(sbits, pos, slow);
}

static void record_time(const sx_circuit *c, stripe *s, uint64_t now, bool fail, bool slow)
{
	uint64_t idx = now / c->bucket_ns;
	uint64_t key = idx == UINT64_MAX ? idx : idx + 1;
	uint64_t *slot = s->data + (idx % c->size) * 4;
	uint64_t k = ck_pr_load_64(&slot[0]);

	while (k != key) {
		if (k > key)
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
static void merge(const sx_circuit *c, uint64_t gen, uint64_t now, sx_circuit_metrics *m)
{
	uint64_t cur = c->window == SX_CIRCUIT_WINDOW_TIME ? now / c->bucket_ns : 0;
	uint64_t ckey = cur == UINT64_MAX ? cur : cur + 1;

	m->calls = m->failures = m->slow = m->rejected = 0;
	for (unsigned i = 0; i < NSTRIPES; i++) {
		stripe *s = stripe_at(c, i);

		m->rejected += ck_pr_load_64(&s->rejected);
		if (ck_pr_load_64(&s->gen) != gen)
			continue;
		if (c->window == SX_CIRCUIT_WINDOW_COUNT) {
			uint64_t h = ck_pr_load_64(&s->hdr);

			if (H_TAG(h) != TAG(gen))
				continue;
			m->calls += H_V(h) < c->size ? H_V(h) : c->size;
			m->failures += H_FAIL(h);
			m->slow += H_SLOW(h);
			continue;
		}
		for (unsigned b = 0; b < c->size; b++) {
			uint64_t *slot = s->data + (size_t)b * 4;
			uint64_t k = ck_pr_load_64(&slot[0]);

			if (k == 0 || k > ckey || ckey - k >= c->size)
				continue;
			m->calls += ck_pr_load_64(&slot[1]);
			m->failures += ck_pr_load_64(&slot[2]);
			m->slow += ck_pr_load_64(&slot[3]);
		}
	}
	m->failure_rate = m->calls != 0 ? (double)m->failures / (double)m->calls : 0.0;
	m->slow_rate = m->calls != 0 ? (double)m->slow / (double)m->calls : 0.0;
}

/* Metrics of word w, whose deadline is at and consecutive-failure count consec. */
static void snapshot(const sx_circuit *c, uint64_t w, uint64_t at, uint64_t consec, uint64_t now,
    sx_circuit_metrics *m)
{
	merge(c, W_GEN(w), now, m);
	memset(m->reserved, 0, sizeof(m->reserved));
	m->state = (int)W_STATE(w);
	m->generation = W_GEN(w);
	m->consecutive_failures = consec;
	m->half_open_issued = W_ISSUED(w);
	m->half_open_successes = W_SUCC(w);
	m->until_ns = 0;
	if (W_STATE(w) == SX_CIRCUIT_OPEN ||
	    (W_STATE(w) == SX_CIRCUIT_HALF_OPEN && W_ISSUED(w) == c->permits))
		m->until_ns = at;
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

/* The open duration of a trip whose predecessor's was prev (0: none since the last close). */
static uint64_t grown(const sx_circuit *c, uint64_t prev)
{
	double d;

	if (prev == 0)
		return c->open_ns;
	if (prev >= c->open_max_ns)
		return c->open_max_ns;
	d = (double)prev * c->backoff;
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
	uint64_t from_w = *w, from_at = w_at(c, from_w), nw, dur = 0, consec;
	unsigned cellno = W_CELL(from_w);
	sx_circuit_metrics m;
	bool won;

	if (to == SX_CIRCUIT_OPEN) {
		dur = grown(c, w_dur(c, from_w));
		cellno = cell_claim(c);
		cell_fill(c, cellno, sat_add(now, dur), dur);
	} else if (to == SX_CIRCUIT_CLOSED) {
		cellno = 0; /* no deadline, and the open duration starts over */
	}
	nw = w_make(to, W_GEN(from_w) + 1, cellno);
	won = ck_pr_cas_64_value(&c->word, from_w, nw, w);
	if (to == SX_CIRCUIT_OPEN)
		cell_free(c, cellno);
	if (!won)
		return false;
	*w = nw;
	if (to != SX_CIRCUIT_HALF_OPEN)
		consec = ck_pr_fas_64(&c->consec, 0);
	else
		consec = ck_pr_load_64(&c->consec);
	if (to == SX_CIRCUIT_OPEN)
		arm(c, sat_add(now, dur) - now);
	if (c->on_state != NULL) {
		snapshot(c, from_w, from_at, consec, now, &m);
		c->on_state(c, (int)W_STATE(from_w), (int)to, &m, c->on_state_arg);
	}
	return true;
}

/* Whether word w has a deadline (OPEN; HALF_OPEN with every probe out) that is over at now. */
static bool expired(const sx_circuit *c, uint64_t w, uint64_t now)
{
	return (W_STATE(w) == SX_CIRCUIT_OPEN ||
	    (W_STATE(w) == SX_CIRCUIT_HALF_OPEN && W_ISSUED(w) == c->permits)) && now >= w_at(c, w);
}

/* Time-driven transitions: OPEN whose duration is over -> HALF_OPEN; HALF_OPEN with every probe
 * out and the lease expired -> OPEN. */
static void refresh(sx_circuit *c, uint64_t now)
{
	uint64_t w = ck_pr_load_64(&c->word);

	while (expired(c, w, now))
		if (move(c, &w, W_STATE(w) == SX_CIRCUIT_OPEN ? SX_CIRCUIT_HALF_OPEN : SX_CIRCUIT_OPEN,
		    now))
			return;
}

static int reject(sx_circuit *c, sx_circuit_permit *permit)
{
	ck_pr_inc_64(&my_stripe(c)->rejected);
	*permit = 0;
	return SX_ECIRCUIT_OPEN;
}

/* Hand out the last half-open probe of word w: its lease starts now, in a cell of its own. */
static bool last_probe(sx_circuit *c, uint64_t *w)
{
	uint64_t now = now_of(c), nw;
	unsigned j = cell_claim(c);
	bool won;

	cell_fill(c, j, sat_add(now, c->lease_ns), w_dur(c, *w));
	nw = ((*w + W_ISSUED_ONE) & ~W_CELL_MASK) | (uint64_t)j << W_CELL_SHIFT;
	won = ck_pr_cas_64_value(&c->word, *w, nw, w);
	cell_free(c, j);
	if (won)
		arm(c, c->lease_ns);
	return won;
}

/* The states whose calls pass without a probe: CLOSED, DISABLED, METRICS_ONLY (a bit each). */
#define PASSING \
	(1u << SX_CIRCUIT_CLOSED | 1u << SX_CIRCUIT_DISABLED | 1u << SX_CIRCUIT_METRICS_ONLY)

/* sx_circuit_acquire past its first load: the word w is OPEN, HALF_OPEN or FORCED_OPEN. Kept
 * out of line, so that the passing path needs no stack frame. */
static __attribute__((noinline)) int acquire_slow(sx_circuit *c, uint64_t w,
    sx_circuit_permit *permit)
{
	uint64_t now;

	for (;;) {
		switch (W_STATE(w)) {
		case SX_CIRCUIT_CLOSED:
		case SX_CIRCUIT_DISABLED:
		case SX_CIRCUIT_METRICS_ONLY:
			*permit = PERMIT_VALID | W_GEN(w);
			return 0;
		case SX_CIRCUIT_OPEN:
			now = now_of(c);
			if (now < w_at(c, w))
				return reject(c, permit);
			move(c, &w, SX_CIRCUIT_HALF_OPEN, now);
			continue;
		case SX_CIRCUIT_HALF_OPEN:
			if (W_ISSUED(w) == c->permits) {
				now = now_of(c);
				if (now >= w_at(c, w))
					move(c, &w, SX_CIRCUIT_OPEN, now);
				return reject(c, permit);
			}
			if (W_ISSUED(w) + 1 == c->permits) {
				if (!last_probe(c, &w))
					continue;
			} else if (!ck_pr_cas_64_value(&c->word, w, w + W_ISSUED_ONE, &w)) {
				continue;
			}
			*permit = PERMIT_VALID | W_GEN(w);
			return 0;
		default: /* FORCED_OPEN */
			return reject(c, permit);
		}
	}
}

int sx_circuit_acquire(sx_circuit *c, sx_circuit_permit *permit)
{
	uint64_t w;

	if (SX__UNLIKELY(c == NULL || permit == NULL))
		return -EINVAL;
	w = ck_pr_load_64(&c->word);
	if (SX__LIKELY((PASSING >> W_STATE(w)) & 1u)) {
		*permit = PERMIT_VALID | W_GEN(w);
		return 0;
	}
	return acquire_slow(c, w, permit);
}

static int classify(const sx_circuit *c, int result)
{
	if (c->classify != NULL)
		return c->classify(result, c->classify_ctx);
	if (result == 0)
		return SX_CIRCUIT_SUCCESS;
	return result == -ECANCELED ? SX_CIRCUIT_IGNORE : SX_CIRCUIT_FAILURE;
}

/*
 * Whether a success of word w's generation (CLOSED or METRICS_ONLY, not slow) would change
 * nothing, so that it need not be written: this thread's stripe holds w's generation with a full
 * COUNT window of successes only (no failure and no slow call counted), and no failure is counted
 * in a row. Recording it would push the oldest of window_size successes out of the ring for one
 * more: the counts (window_size calls, no failure, no slow call) and the bits (all clear, as the
 * header counts none set) stay as they are; only the ring position would turn, and a ring of
 * equal bits reads the same at every position. consec is 0 already, and a success is never
 * checked for a trip. So the common closed call writes nothing shared. A TIME window counts
 * every call in its bucket: there every success is written.
 *
 * The loads are record_count's before its CAS, in its order (the header with w's tag, then the
 * stripe's generation): a reset for a newer generation, or a failure recorded by a thread
 * sharing the stripe, that lands after them is ordered after this success, as it would be after
 * the CAS it skips. A bit another sharer has yet to clear after its CAS is no more stale than
 * with that CAS: the header already counts it out.
 */
static inline bool success_changes_nothing(const sx_circuit *c, uint64_t w)
{
	uint64_t gen = W_GEN(w), h;
	const stripe *s;

	SX__ASSERT(c->window == SX_CIRCUIT_WINDOW_COUNT);
	s = my_stripe(c);
	h = ck_pr_load_64((uint64_t *)&s->hdr);
	/* w's tag, no failure or slow call counted and size <= v (< 2 * size), in one comparison:
	 * the difference is v - size then; a count leaves at least 2^13 - size >= size in it, and
	 * another tag, or v < size with no count, wraps it round or leaves 2^39 - size. */
	return h - (TAG(gen) << H_TAG_SHIFT | c->size) < c->size &&
	    ck_pr_load_64((uint64_t *)&s->gen) == gen && ck_pr_load_64((uint64_t *)&c->consec) == 0;
}

/* A CLOSED or METRICS_ONLY result of the generation of w, the word the caller saw. Out of line,
 * as release_probe: sx_circuit_release's path that writes nothing needs no stack frame. */
static __attribute__((noinline)) void record_closed(sx_circuit *c, uint64_t w, bool fail,
    bool slow)
{
	bool timed = c->window == SX_CIRCUIT_WINDOW_TIME;
	uint64_t now = timed ? now_of(c) : 0, n = 0;
	stripe *s = my_stripe(c);
	sx_circuit_metrics m;

	if (!stripe_enter(c, s, W_GEN(w)))
		return;
	if (timed)
		record_time(c, s, now, fail, slow);
	else
		record_count(c, s, W_GEN(w), fail, slow);
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

/* A probe's verdict: w is a HALF_OPEN word of the permit's generation gen. */
static __attribute__((noinline)) int release_probe(sx_circuit *c, uint64_t w, uint64_t gen,
    int outcome, bool slow)
{
	uint64_t nw;

	for (;;) {
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

/* sx_circuit_release but for the success that changes nothing: every check, then the rest. */
static __attribute__((noinline)) int release_slow(sx_circuit *c, sx_circuit_permit permit,
    int result, int64_t latency_ns)
{
	uint64_t w;
	int outcome;
	bool slow;

	if (c == NULL || (permit & ~GEN_MASK) != PERMIT_VALID || latency_ns < 0)
		return -EINVAL;
	w = ck_pr_load_64(&c->word);
	if (W_GEN(w) != (permit & GEN_MASK))
		return -ESTALE;
	if (W_STATE(w) == SX_CIRCUIT_DISABLED)
		return 0;
	outcome = classify(c, result);
	slow = (uint64_t)latency_ns >= c->slow_from;
	if (W_STATE(w) == SX_CIRCUIT_HALF_OPEN)
		return release_probe(c, w, W_GEN(w), outcome, slow);
	/* CLOSED or METRICS_ONLY: a permit of an OPEN or FORCED_OPEN generation is never issued */
	if (outcome == SX_CIRCUIT_IGNORE || (outcome == SX_CIRCUIT_SUCCESS && !slow &&
	    c->window == SX_CIRCUIT_WINDOW_COUNT && success_changes_nothing(c, w)))
		return 0;
	record_closed(c, w, outcome == SX_CIRCUIT_FAILURE, slow);
	return 0;
}

/* The common case first, with fewer tests than release_slow's that admit only reports
 * release_slow would answer 0 without a write: a permit equal to the valid bit with the current
 * generation (so neither -EINVAL nor -ESTALE), a latency below slow_from (so >= 0 and not slow),
 * the default classify's success in a COUNT window (quiet_states), and a window that stays as it
 * is. */
int sx_circuit_release(sx_circuit *c, sx_circuit_permit permit, int result, int64_t latency_ns)
{
	uint64_t w;

	if (SX__LIKELY(c != NULL)) {
		w = ck_pr_load_64(&c->word);
		if (SX__LIKELY(permit == (PERMIT_VALID | W_GEN(w)) && result == 0 &&
		    ((c->quiet_states >> W_STATE(w)) & 1u) &&
		    (uint64_t)latency_ns < c->slow_from && success_changes_nothing(c, w)))
			return 0;
	}
	return release_slow(c, permit, result, latency_ns);
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
	uint64_t w;

	if (c == NULL || m == NULL)
		return -EINVAL;
	w = ck_pr_load_64(&c->word);
	snapshot(c, w, w_at(c, w), ck_pr_load_64(&c->consec), now_of(c), m);
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

size_t sx__circuit_bytes(const sx_circuit *c)
{
	return sizeof(*c) + (size_t)NSTRIPES * c->stripe_bytes;
}
