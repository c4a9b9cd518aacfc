/*
 * GCRA rate limiter. The state is one word, tat: the theoretical arrival time of the next event
 * on the limiter's clock. With I = period_ns / rate (the emission interval) and tolerance =
 * burst * I, an event of weight n at time now is admitted iff
 *
 *     max(tat, now) + n * I - now <= tolerance
 *
 * and admitting it stores max(tat, now) + n * I with one CAS. tat <= now means "full": an idle
 * limiter needs no refill. A wait reserves the same way without the check, then sleeps until
 * tat - tolerance, when its event is due; a cancelled wait takes its n * I back off tat (never
 * below now: time already passed is not handed out twice).
 *
 * Stale time never refuses: a thread may read the clock, be delayed, and then meet a tat that
 * others advanced meanwhile with later readings. Judged against its old reading the event looks
 * early. So a refusal is only final when `now` was read after the tat it is judged against was
 * loaded; otherwise the clock is read again first. Admitting against an older reading is fine:
 * it is the event arriving at that (real, past) instant.
 *
 * A limiter of its own counts its refusals and delayed waits (sx_ratelimit_snapshot) in striped
 * counters right after it (base/base.h): refusals come in floods, and a shared counter would
 * make every refusal write the cache line every admission's CAS needs. A keyed limiter's
 * per-key limiters have none (their keyed limiter counts for them, in its template's).
 */
#include <errno.h>

#include <ck_pr.h>

#include <strix/ratelimit.h>
#include <strix/registry.h>

#include "guard/guard.h"

struct sx_ratelimit {
	SX__ALIGNED uint64_t tat;
	uint64_t interval;
	uint64_t tolerance;
	uint32_t burst;
	sx_clock clock;
	sx__counters *stats;  /* right after the struct; NULL: a keyed limiter's per-key one */
};

/* The counters (sx__counters slots). */
enum { C_REFUSED, C_DELAYED, C_N };
_Static_assert(C_N <= SX__STRIPE_N, "one cache line of counters per thread");

static size_t rl_bytes(const sx_ratelimit *rl)
{
	return sizeof(*rl) + (rl->stats != NULL ? sizeof(sx__counters) : 0);
}

/* sx_ratelimit_create, with counters or not. */
static int rl_create(const sx_ratelimit_opts *o, bool counted, sx_ratelimit **out)
{
	sx_ratelimit *rl;
	uint64_t interval, period;
	uint32_t burst;

	if (o == NULL || out == NULL || o->period_ns < 0 || !SX__RESERVED_CLEAR(o) ||
	    (o->clock != NULL && o->clock->now_ns == NULL))
		return -EINVAL;
	period = o->period_ns != 0 ? (uint64_t)o->period_ns : UINT64_C(1000000000);
	if (o->rate > period)
		return -EINVAL;
	burst = o->burst != 0 ? o->burst : (o->rate == 0 || o->rate > SX_RATELIMIT_MAX_BURST ?
	    SX_RATELIMIT_MAX_BURST : (uint32_t)o->rate);
	if (burst > SX_RATELIMIT_MAX_BURST)
		return -EINVAL;
	/* floor: `rate` intervals never exceed the period; rate 0 (no limit): interval 0, so every
	 * event is due at once */
	interval = o->rate != 0 ? period / o->rate : 0;
	/* Keep the sums far below 2^64: the tolerance, and reservations on top of it. */
	if (interval > (UINT64_C(1) << 61) / burst)
		return -EINVAL;
	rl = sx__zalloc(sizeof(*rl) + (counted ? sizeof(sx__counters) : 0), SX__CACHELINE);
	if (rl == NULL)
		return -ENOMEM;
	if (counted)
		rl->stats = (sx__counters *)(void *)(rl + 1);
	rl->interval = interval;
	rl->burst = burst;
	rl->tolerance = (uint64_t)burst * interval;
	rl->clock = o->clock != NULL ? *o->clock : sx_clock_monotonic;
	*out = rl;
	return 0;
}

int sx_ratelimit_create(const sx_ratelimit_opts *o, sx_ratelimit **out)
{
	return rl_create(o, true, out);
}

int sx__ratelimit_create_keyed(const sx_ratelimit_opts *o, sx_ratelimit **out)
{
	return rl_create(o, false, out);
}

void sx_ratelimit_destroy(sx_ratelimit *rl)
{
	if (rl != NULL)
		sx__dfree(rl, rl_bytes(rl), SX__CACHELINE);
}

size_t sx__ratelimit_bytes(void)
{
	return sizeof(struct sx_ratelimit);
}

static uint64_t now_of(const sx_ratelimit *rl)
{
	return rl->clock.now_ns(rl->clock.ctx);
}

/* Where tat goes if an event of weight n is admitted at `now`, with the tat it started from;
 * UINT64_MAX if that is past 2^64 - 1 (a clock near 2^64): such an event is never due, so the
 * limiter stays shut rather than wrap open. (UINT64_MAX is also the SEALED mark of a keyed
 * limiter's evicted key: no admission stores it.) */
static uint64_t next_tat(const sx_ratelimit *rl, uint64_t tat, uint64_t now, uint32_t n)
{
	uint64_t from = tat > now ? tat : now, next;

	if (__builtin_add_overflow(from, (uint64_t)n * rl->interval, &next))
		return UINT64_MAX;
	return next;
}

static uint64_t delay_of(const sx_ratelimit *rl, uint64_t next, uint64_t now)
{
	if (next == UINT64_MAX)
		return UINT64_MAX;
	if (next <= now)
		return 0;
	return next - now > rl->tolerance ? next - now - rl->tolerance : 0;
}

static bool bad(const sx_ratelimit *rl, uint32_t n)
{
	return rl == NULL || n == 0 || n > rl->burst;
}

/* What gcra answers besides 0 and SX_ERATE_LIMITED: the keyed limiter's key was evicted (its
 * limiter is sealed); look the key up again. */
#define LOST 1
/* The state word of a limiter the keyed limiter's registry evicted (sx__ratelimit_seal). */
#define SEALED UINT64_MAX

/*
 * Admit n against the TAT word *word, with rl's interval and tolerance. now: a reading of rl's
 * clock taken before the call (possibly before *word's current value was stored); a refusal is
 * confirmed with a reading taken after the TAT it is judged against was loaded (see the top).
 * sealable (a keyed limiter's key, admitted without a reference): a SEALED word answers LOST
 * and is not touched.
 */
static int gcra(const sx_ratelimit *rl, uint64_t *word, bool sealable, uint32_t n, uint64_t now)
{
	uint64_t tat, next, later;
	bool fresh = false;

	if (rl->interval == 0)
		return 0; /* rate 0: no limit (and no shared write) */
	tat = ck_pr_load_64(word);
	for (;;) {
		if (sealable && tat == SEALED)
			return LOST;
		next = next_tat(rl, tat, now, n);
		if (delay_of(rl, next, now) != 0) {
			if (fresh)
				return SX_ERATE_LIMITED;
			later = now_of(rl);
			now = later > now ? later : now;
			fresh = true;
			continue;
		}
		if (ck_pr_cas_64_value(word, tat, next, &tat))
			return 0;
		fresh = false; /* a newer tat: the reading may predate it */
	}
}

/* gcra's first round inline, for the common case that admits at once: the same decision (next
 * is admitted when it neither overflows nor reaches UINT64_MAX, next_tat's "never", nor runs
 * more than the tolerance ahead of now) and the same CAS; anything else (a refusal to confirm,
 * a lost CAS, rate 0) is gcra's. */
static inline int try_at(sx_ratelimit *rl, uint32_t n, uint64_t now, bool sealable)
{
	uint64_t tat = ck_pr_load_64(&rl->tat), next;

	/* A SEALED tat overflows: never admitted here. */
	if (SX__LIKELY(rl->interval != 0) &&
	    !__builtin_add_overflow(tat > now ? tat : now, (uint64_t)n * rl->interval, &next) &&
	    next != UINT64_MAX && next - now <= rl->tolerance && ck_pr_cas_64(&rl->tat, tat, next))
		return 0;
	return gcra(rl, &rl->tat, sealable, n, now);
}

/* rc, a refusal counted in st (NULL: not counted). */
static inline int counted(sx__counters *st, int rc)
{
	if (SX__UNLIKELY(rc == SX_ERATE_LIMITED) && st != NULL)
		sx__count(st, C_REFUSED);
	return rc;
}

int sx_ratelimit_try(sx_ratelimit *rl, uint32_t n)
{
	if (bad(rl, n))
		return -EINVAL;
	return counted(rl->stats, try_at(rl, n, now_of(rl), false));
}

int sx__ratelimit_try_mono(sx_ratelimit *rl, uint32_t n, uint64_t mono_now)
{
	if (bad(rl, n))
		return -EINVAL;
	return counted(rl->stats, try_at(rl, n, rl->clock.now_ns == sx_clock_monotonic.now_ns ?
	    mono_now : now_of(rl), false));
}

uint64_t sx_ratelimit_delay_ns(const sx_ratelimit *rl, uint32_t n)
{
	uint64_t now, tat;

	if (bad(rl, n))
		return UINT64_MAX;
	tat = ck_pr_load_64(&rl->tat);
	now = now_of(rl); /* after the load: a stale reading would overstate the delay */
	return delay_of(rl, next_tat(rl, tat, now, n), now);
}

int sx_ratelimit_wait(sx_ratelimit *rl, uint32_t n, sx_breaker *stop)
{
	uint64_t now, tat, next, back, delay;
	int rc;

	if (bad(rl, n))
		return -EINVAL;
	if (stop != NULL && sx_breaker_done(stop))
		return sx_breaker_err(stop);
	/* The clock is read after the tat it is applied to (see the top), again after a lost CAS. */
	tat = ck_pr_load_64(&rl->tat);
	for (;;) {
		now = now_of(rl);
		next = next_tat(rl, tat, now, n);
		if (ck_pr_cas_64_value(&rl->tat, tat, next, &tat))
			break;
	}
	delay = delay_of(rl, next, now);
	if (delay == 0)
		return 0;
	if (rl->stats != NULL)
		sx__count(rl->stats, C_DELAYED);
	rc = sx__pause(&rl->clock, delay, stop);
	if (rc == 0)
		return 0;
	/* Cancelled: give the reservation back, but not the time that has passed meanwhile. */
	tat = ck_pr_load_64(&rl->tat);
	do {
		now = now_of(rl);
		if (tat <= now)
			break;
		back = tat - now > (uint64_t)n * rl->interval ? tat - (uint64_t)n * rl->interval : now;
	} while (!ck_pr_cas_64_value(&rl->tat, tat, back, &tat));
	return rc;
}

/* ---- keyed limiters ------------------------------------------------------------------------- */

/*
 * A keyed limiter is a registry of limiters (registry.c) on the library's shared pool, bounded
 * at max_keys and ageing keys out once their bucket could have refilled. An admission finds its
 * key's limiter inside an epoch section, without a reference, and admits with the limiter's own
 * CAS; a key with no limiter yet takes the registry's slow path (a reference, made if need be).
 *
 * The registry evicts a limiter only when its bucket is full, and seals it first: its tat is
 * CASed from that full value to SEALED, which no admission stores and every keyed admission
 * answers LOST to (then it looks the key up again, and finds it gone or remade). An admission
 * that read the old tat either CASes before the seal (the seal's CAS fails and the key stays)
 * or fails its CAS and meets SEALED. So the key's events are charged to exactly one bucket at a
 * time: however keys come and go, a key never admits more than burst at once, and a remade key
 * starts from a full bucket only when its old one was full.
 */
struct sx_ratelimit_keyed {
	sx_registry *reg;
	sx_ratelimit *tmpl;   /* burst and clock, for the checks and the first reading */
};

bool sx__ratelimit_seal(sx_ratelimit *rl)
{
	uint64_t tat = ck_pr_load_64(&rl->tat);

	if (tat == SEALED)
		return true;
	/* The clock read after the tat: a full bucket at a later instant is full. */
	if (tat > now_of(rl))
		return false;
	return ck_pr_cas_64(&rl->tat, tat, SEALED);
}

int sx_ratelimit_keyed_create(const sx_ratelimit_opts *opts, uint32_t max_keys,
    sx_ratelimit_keyed **out)
{
	sx_registry_opts ro = SX_REGISTRY_OPTS_INIT;
	sx_ratelimit_keyed *kl;
	int rc;

	if (out == NULL || max_keys == 0 || max_keys > SX_RATELIMIT_MAX_KEYS)
		return -EINVAL;
	kl = sx__zalloc(sizeof(*kl), SX__SMALL_ALIGN);
	if (kl == NULL)
		return -ENOMEM;
	if ((rc = sx_ratelimit_create(opts, &kl->tmpl)) != 0)
		goto fail;
	ro.kind = SX_REGISTRY_RATELIMIT;
	ro.ratelimit = opts;
	ro.max_keys = max_keys;
	/* A key idle for its whole tolerance has a full bucket: it may go. */
	ro.idle_ns = kl->tmpl->tolerance > (uint64_t)INT64_MAX ? INT64_MAX :
	    (int64_t)kl->tmpl->tolerance;
	ro.clock = &kl->tmpl->clock;
	if ((rc = sx_registry_create(NULL, &ro, &kl->reg)) != 0) {
		sx_ratelimit_destroy(kl->tmpl);
		goto fail;
	}
	*out = kl;
	return 0;
fail:
	sx__dfree(kl, sizeof(*kl), SX__SMALL_ALIGN);
	return rc;
}

void sx_ratelimit_keyed_destroy(sx_ratelimit_keyed *kl)
{
	if (kl == NULL)
		return;
	sx_registry_destroy(kl->reg);
	sx_ratelimit_destroy(kl->tmpl);
	sx__dfree(kl, sizeof(*kl), SX__SMALL_ALIGN);
}

int sx_ratelimit_keyed_try(sx_ratelimit_keyed *kl, uint64_t key, uint32_t n)
{
	sx_registry_ref *ref;
	sx_ratelimit *rl;
	sx__tcache *c;
	uint64_t now;
	int rc;

	if (kl == NULL || key == UINT64_MAX || bad(kl->tmpl, n))
		return -EINVAL;
	if (kl->tmpl->interval == 0)
		return 0; /* no limit: no state either */
	if ((c = sx__registry_cache(kl->reg)) == NULL)
		return -ENOMEM;
	now = now_of(kl->tmpl);
	for (;;) {
		sx__epoch_begin(c);
		rl = sx__registry_peek(kl->reg, key);
		rc = rl != NULL ? try_at(rl, n, now, true) : LOST;
		sx__epoch_end(c);
		if (rc != LOST)
			return counted(kl->tmpl->stats, rc);
		/* No limiter, or a sealed one: the slow path, with a reference (never sealed). */
		if ((rc = sx_registry_get(kl->reg, key, &ref)) != 0)
			return rc;
		rc = try_at(sx_registry_guard(ref), n, now, true);
		sx_registry_put(ref);
		if (rc != LOST)
			return counted(kl->tmpl->stats, rc);
	}
}

/* ---- snapshots ------------------------------------------------------------------------------ */

int sx_ratelimit_snapshot(const sx_ratelimit *rl, sx_ratelimit_metrics *out)
{
	uint64_t tat, now, debt;

	if (rl == NULL || out == NULL)
		return -EINVAL;
	*out = (sx_ratelimit_metrics){ .burst = rl->burst, .available = rl->burst };
	if (rl->stats != NULL) {
		out->refused = sx__count_sum(rl->stats, C_REFUSED);
		out->delayed = sx__count_sum(rl->stats, C_DELAYED);
	}
	if (rl->interval != 0) {
		tat = ck_pr_load_64(&rl->tat);
		now = now_of(rl); /* after the load, as sx_ratelimit_delay_ns */
		debt = tat > now ? tat - now : 0;
		out->available = debt >= rl->tolerance ? 0 : (rl->tolerance - debt) / rl->interval;
	}
	return 0;
}

int sx_ratelimit_keyed_snapshot(const sx_ratelimit_keyed *kl, sx_ratelimit_metrics *out)
{
	sx_registry_counters rc;

	if (kl == NULL || out == NULL)
		return -EINVAL;
	(void)sx_registry_stats(kl->reg, &rc);
	*out = (sx_ratelimit_metrics){ .burst = kl->tmpl->burst, .keys = rc.keys,
	    .refused = sx__count_sum(kl->tmpl->stats, C_REFUSED) };
	return 0;
}
