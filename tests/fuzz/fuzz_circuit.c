/*
 * libFuzzer target: a circuit breaker against a small reference model of its documented
 * behaviour (include/strix/circuit.h), on one virtual clock, one thread.
 *
 * The input's first bytes pick the options (window kind and size, min_calls, rates, slow-call
 * threshold, consecutive failures, open duration, backoff and cap, probes, lease); the rest is a
 * sequence of operations: advance the clock (ns to days, or to the clock's end), acquire, release
 * an outstanding permit (success, failure or ignored; fast or slow), force a state, read the
 * state. After every operation the circuit's snapshot, the transitions its callback reported and
 * every return code must be what the model says; any difference traps.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <strix/circuit.h>

#include "fuzz.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define MAXP 16
#define MAXREC 4096

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

static uint64_t vnow;

static uint64_t vclock_now(void *ctx)
{
	(void)ctx;
	return vnow;
}

static const sx_clock vclock = { vclock_now, NULL, NULL };

/* ---- the model ------------------------------------------------------------------------------ */

struct rec { uint64_t bucket; bool fail, slow; };

struct model {
	sx_circuit_opts o;
	uint32_t min_calls, needed;
	uint64_t fail_ppm, slow_ppm, open_max, bucket_ns;
	int state;
	uint64_t gen, until, prev_dur, consec, rejected;
	unsigned issued, succ;
	struct rec recs[MAXREC];     /* this generation's results, oldest first */
	unsigned nrec;
};

struct event { int from, to; uint64_t gen, consec; };

static struct event seen[8], want[8];
static unsigned nseen, nwant;

static void on_state(sx_circuit *c, int from, int to, const sx_circuit_metrics *m, void *arg)
{
	(void)c, (void)arg;
	CHECK(nseen < 8);
	seen[nseen++] = (struct event){ from, to, m->generation, m->consecutive_failures };
}

static uint64_t ppm(double rate)
{
	long long p = llround(rate * 1e6);

	return p < 1 ? 1 : (uint64_t)p;
}

/* The window's counts at now. */
static void m_counts(const struct model *m, uint64_t *calls, uint64_t *fails, uint64_t *slow)
{
	uint64_t cur = m->o.window == SX_CIRCUIT_WINDOW_TIME ? vnow / m->bucket_ns : 0;
	unsigned from = 0;

	*calls = *fails = *slow = 0;
	if (m->o.window == SX_CIRCUIT_WINDOW_COUNT && m->nrec > m->o.window_size)
		from = m->nrec - m->o.window_size;
	for (unsigned i = from; i < m->nrec; i++) {
		const struct rec *r = &m->recs[i];

		if (m->o.window == SX_CIRCUIT_WINDOW_TIME &&
		    (r->bucket > cur || cur - r->bucket >= m->o.window_buckets))
			continue;
		(*calls)++;
		*fails += r->fail;
		*slow += r->slow;
	}
}

static void m_move(struct model *m, int to)
{
	CHECK(nwant < 8);
	want[nwant++] = (struct event){ m->state, to, m->gen, m->consec };
	m->gen++;
	m->nrec = 0;
	m->issued = m->succ = 0;
	if (to != SX_CIRCUIT_HALF_OPEN)
		m->consec = 0;
	if (to == SX_CIRCUIT_OPEN) {
		uint64_t d;

		if (m->prev_dur == 0) {
			d = m->o.open_ns;
		} else if (m->prev_dur >= m->open_max) {
			d = m->open_max;
		} else {
			double x = (double)m->prev_dur * m->o.open_backoff;

			d = x >= (double)m->open_max ? m->open_max : (uint64_t)x;
		}
		m->prev_dur = d;
		m->until = sat_add(vnow, d);
	} else if (to == SX_CIRCUIT_CLOSED) {
		m->prev_dur = 0;
	}
	m->state = to;
}

static void m_refresh(struct model *m)
{
	if (m->state == SX_CIRCUIT_OPEN && vnow >= m->until)
		m_move(m, SX_CIRCUIT_HALF_OPEN);
	else if (m->state == SX_CIRCUIT_HALF_OPEN && m->issued == m->o.half_open_permits &&
	    vnow >= m->until)
		m_move(m, SX_CIRCUIT_OPEN);
}

/* Returns whether admitted; *gen the permit's generation. */
static bool m_acquire(struct model *m, uint64_t *gen)
{
	switch (m->state) {
	case SX_CIRCUIT_CLOSED:
	case SX_CIRCUIT_DISABLED:
	case SX_CIRCUIT_METRICS_ONLY:
		*gen = m->gen;
		return true;
	case SX_CIRCUIT_OPEN:
		if (vnow < m->until)
			break;
		m_move(m, SX_CIRCUIT_HALF_OPEN);
		/* fall through */
	case SX_CIRCUIT_HALF_OPEN:
		if (m->issued == m->o.half_open_permits) {
			if (vnow >= m->until)
				m_move(m, SX_CIRCUIT_OPEN);
			break;
		}
		if (++m->issued == m->o.half_open_permits)
			m->until = sat_add(vnow, m->o.probe_lease_ns);
		*gen = m->gen;
		return true;
	default:
		break;
	}
	m->rejected++;
	return false;
}

/* outcome: 0 success, 1 failure, 2 ignored (-ECANCELED). Returns the expected return code. */
static int m_release(struct model *m, uint64_t gen, int outcome, bool slow_lat)
{
	bool slow = m->o.slow_call_ns != 0 && slow_lat;
	uint64_t calls, fails, nslow;

	if (gen != m->gen)
		return -ESTALE;
	if (m->state == SX_CIRCUIT_DISABLED)
		return 0;
	if (m->state == SX_CIRCUIT_HALF_OPEN) {
		if (outcome == 2) {
			if (m->issued != 0)
				m->issued--;
		} else if (outcome == 1 || slow) {
			m_move(m, SX_CIRCUIT_OPEN);
		} else if (m->succ + 1 >= m->needed) {
			m_move(m, SX_CIRCUIT_CLOSED);
		} else {
			m->succ++;
		}
		return 0;
	}
	if (outcome == 2)
		return 0;
	CHECK(m->nrec < MAXREC);
	m->recs[m->nrec++] = (struct rec){
		m->o.window == SX_CIRCUIT_WINDOW_TIME ? vnow / m->bucket_ns : 0, outcome == 1, slow };
	if (outcome == 1)
		m->consec++;
	else
		m->consec = 0;
	if (m->state != SX_CIRCUIT_CLOSED || (outcome != 1 && !slow))
		return 0;
	if (m->o.consecutive_failures != 0 && m->consec >= m->o.consecutive_failures) {
		m_move(m, SX_CIRCUIT_OPEN);
		return 0;
	}
	m_counts(m, &calls, &fails, &nslow);
	if (calls >= m->min_calls && (fails * 1000000 >= m->fail_ppm * calls ||
	    (m->o.slow_call_ns != 0 && nslow * 1000000 >= m->slow_ppm * calls)))
		m_move(m, SX_CIRCUIT_OPEN);
	return 0;
}

/* ---- the comparison ------------------------------------------------------------------------- */

static void compare(sx_circuit *c, const struct model *m)
{
	sx_circuit_metrics s;
	uint64_t calls, fails, slow;

	CHECK(nseen == nwant);
	for (unsigned i = 0; i < nwant; i++)
		CHECK(seen[i].from == want[i].from && seen[i].to == want[i].to &&
		    seen[i].gen == want[i].gen && seen[i].consec == want[i].consec);
	nseen = nwant = 0;
	CHECK(sx_circuit_snapshot(c, &s) == 0);
	m_counts(m, &calls, &fails, &slow);
	CHECK(s.state == m->state);
	CHECK(s.generation == m->gen);
	CHECK(s.calls == calls && s.failures == fails && s.slow == slow);
	CHECK(s.consecutive_failures == m->consec);
	CHECK(s.rejected == m->rejected);
	CHECK(s.half_open_issued == m->issued && s.half_open_successes == m->succ);
	if (m->state == SX_CIRCUIT_OPEN ||
	    (m->state == SX_CIRCUIT_HALF_OPEN && m->issued == m->o.half_open_permits))
		CHECK(s.until_ns == m->until);
	else
		CHECK(s.until_ns == 0);
}

/* ---- decoding ------------------------------------------------------------------------------- */

static unsigned take(struct fz_in *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

static unsigned take16(struct fz_in *in)
{
	unsigned a = take(in);

	return a | take(in) << 8;
}

static const double rates[8] = { 1e-9, 0.1, 0.25, 0.5, 0.6, 0.75, 0.999, 1.0 };
static const double backoffs[4] = { 1.0, 1.5, 2.0, 3.7 };

static uint64_t duration(unsigned x)
{
	static const uint64_t unit[4] = { 1, 1000, MS, SEC };
	uint64_t d = MS + (uint64_t)(x & 0x3fff) * unit[x >> 14];

	return d > SX_CIRCUIT_MAX_DURATION_NS ? SX_CIRCUIT_MAX_DURATION_NS : d;
}

static void decode_opts(struct fz_in *in, struct model *m)
{
	sx_circuit_opts o = SX_CIRCUIT_OPTS_INIT;
	unsigned b = take(in);

	o.window = b & 1 ? SX_CIRCUIT_WINDOW_TIME : SX_CIRCUIT_WINDOW_COUNT;
	o.window_size = 1 + take(in) % 20;
	o.window_buckets = 1 + (b >> 1) % 8;
	o.window_ns = o.window_buckets * (1 + (uint64_t)take16(in) * 100000);
	o.min_calls = take(in) % 10;
	b = take(in);
	o.failure_rate = rates[b & 7];
	o.slow_rate = rates[(b >> 3) & 7];
	o.slow_call_ns = b & 0x40 ? 100 * MS : 0;
	b = take(in);
	o.consecutive_failures = b % 7;
	o.open_backoff = backoffs[(b >> 3) & 3];
	o.open_ns = duration(take16(in));
	o.open_max_ns = b & 0x20 ? 0 : o.open_ns + (uint64_t)take16(in) * 997 * MS;
	if (o.open_max_ns > SX_CIRCUIT_MAX_DURATION_NS)
		o.open_max_ns = SX_CIRCUIT_MAX_DURATION_NS;
	b = take(in);
	o.half_open_permits = 1 + b % 4;
	o.half_open_successes = (b >> 2) % (o.half_open_permits + 1);
	o.probe_lease_ns = duration(take16(in));
	o.on_state = on_state;
	o.clock = &vclock;
	memset(m, 0, sizeof(*m));
	m->o = o;
	m->min_calls = o.min_calls != 0 ? o.min_calls : 1;
	m->needed = o.half_open_successes != 0 ? o.half_open_successes : o.half_open_permits;
	m->fail_ppm = ppm(o.failure_rate);
	m->slow_ppm = ppm(o.slow_rate);
	m->open_max = o.open_max_ns != 0 ? o.open_max_ns : SX_CIRCUIT_MAX_DURATION_NS;
	m->bucket_ns = o.window_ns / o.window_buckets;
	m->state = SX_CIRCUIT_CLOSED;
}

static void advance(unsigned x)
{
	static const uint64_t unit[8] = { 1, 100000, MS, 100 * MS, SEC, 3600 * SEC, 86400 * SEC, 0 };

	if (x >> 5 == 7) {
		uint64_t end = UINT64_MAX - (uint64_t)(x & 31) * SEC;

		vnow = vnow > end ? vnow : end;
		return;
	}
	vnow = sat_add(vnow, (uint64_t)(x & 31) * unit[x >> 5]);
}

static struct model model;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct { sx_circuit_permit p; uint64_t gen; } out[MAXP];
	unsigned nout = 0, ops = 0;
	sx_circuit *c;
	struct model *m = &model;

	vnow = (uint64_t)take16(&in) * 7919 * MS + take(&in);
	decode_opts(&in, m);
	nseen = nwant = 0;
	CHECK(sx_circuit_create(&m->o, &c) == 0);
	compare(c, m);
	while (in.n != 0 && ops++ < 2000) {
		unsigned op = take(&in), arg = take(&in);
		sx_circuit_permit p = 0;
		uint64_t gen = 0;
		int rc, want_rc;

		switch (op % 8) {
		case 0:
			advance(arg);
			break;
		case 1:
		case 2:
			rc = sx_circuit_acquire(c, &p);
			if (m_acquire(m, &gen)) {
				CHECK(rc == 0 && p != 0);
				if (nout < MAXP)
					out[nout++].p = p, out[nout - 1].gen = gen;
				else
					CHECK(sx_circuit_release(c, p, -ECANCELED, 0) ==
					    m_release(m, gen, 2, false));
			} else {
				CHECK(rc == SX_ECIRCUIT_OPEN && p == 0);
			}
			break;
		case 3:
		case 4: {
			unsigned i, outcome = (arg >> 4) % 3;
			bool slow = arg & 8;
			static const int results[3] = { 0, -EIO, -ECANCELED };

			if (nout == 0)
				break;
			i = arg % nout;
			rc = sx_circuit_release(c, out[i].p, results[outcome], slow ? 100 * MS : 99 * MS);
			want_rc = m_release(m, out[i].gen, (int)outcome, slow);
			CHECK(rc == want_rc);
			out[i] = out[--nout];
			break;
		}
		case 5:
			CHECK(sx_circuit_force(c, (int)(arg % 6)) == 0);
			m_move(m, (int)(arg % 6));
			break;
		case 6:
			rc = sx_circuit_state(c);
			m_refresh(m);
			CHECK(rc == m->state);
			break;
		default:
			CHECK(sx_circuit_force(c, 6 + (int)arg) == -EINVAL);
			CHECK(sx_circuit_release(c, (sx_circuit_permit)arg << 50 | 1, 0, 0) == -EINVAL);
			break;
		}
		compare(c, m);
	}
	sx_circuit_destroy(c);
	return 0;
}
