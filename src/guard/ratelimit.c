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
 */
#include <errno.h>

#include <ck_pr.h>

#include <strix/ratelimit.h>

#include "guard/guard.h"

struct sx_ratelimit {
	SX__ALIGNED uint64_t tat;
	uint64_t interval;
	uint64_t tolerance;
	uint32_t burst;
	sx_clock clock;
};

int sx_ratelimit_create(const sx_ratelimit_opts *o, sx_ratelimit **out)
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
	rl = sx__zalloc(sizeof(*rl), SX__CACHELINE);
	if (rl == NULL)
		return -ENOMEM;
	rl->interval = interval;
	rl->burst = burst;
	rl->tolerance = (uint64_t)burst * interval;
	rl->clock = o->clock != NULL ? *o->clock : sx_clock_monotonic;
	*out = rl;
	return 0;
}

void sx_ratelimit_destroy(sx_ratelimit *rl)
{
	if (rl != NULL)
		sx__dfree(rl, sizeof(*rl), SX__CACHELINE);
}

static uint64_t now_of(const sx_ratelimit *rl)
{
	return rl->clock.now_ns(rl->clock.ctx);
}

/* Where tat goes if an event of weight n is admitted at `now`, with the tat it started from;
 * UINT64_MAX if that is past 2^64 - 1 (a clock near 2^64): such an event is never due, so the
 * limiter stays shut rather than wrap open. (UINT64_MAX is also a keyed slot's TAKING mark: no
 * admission stores it there.) */
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

/* What gcra answers besides 0 and SX_ERATE_LIMITED: the keyed slot is no longer `want`'s. */
#define LOST 1

/*
 * Admit n against the TAT word *word, with rl's interval and tolerance. now: a reading of rl's
 * clock taken before the call (possibly before *word's current value was stored); a refusal is
 * confirmed with a reading taken after the TAT it is judged against was loaded (see the top).
 * key (keyed slots; NULL otherwise): the slot's key word, which must still be `want`, read after
 * the TAT: a slot that has been taken over, or is being, answers LOST and is not touched.
 */
static int gcra(const sx_ratelimit *rl, uint64_t *word, const uint64_t *key, uint64_t want,
    uint32_t n, uint64_t now)
{
	uint64_t tat, next, later;
	bool fresh = false;

	if (rl->interval == 0)
		return 0; /* rate 0: no limit (and no shared write) */
	tat = ck_pr_load_64(word);
	for (;;) {
		if (key != NULL) {
			ck_pr_fence_load();
			if (tat == UINT64_MAX || ck_pr_load_64(key) != want)
				return LOST;
		}
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
static inline int try_at(sx_ratelimit *rl, uint32_t n, uint64_t now)
{
	uint64_t tat = ck_pr_load_64(&rl->tat), next;

	if (SX__LIKELY(rl->interval != 0) &&
	    !__builtin_add_overflow(tat > now ? tat : now, (uint64_t)n * rl->interval, &next) &&
	    next != UINT64_MAX && next - now <= rl->tolerance && ck_pr_cas_64(&rl->tat, tat, next))
		return 0;
	return gcra(rl, &rl->tat, NULL, 0, n, now);
}

int sx_ratelimit_try(sx_ratelimit *rl, uint32_t n)
{
	if (bad(rl, n))
		return -EINVAL;
	return try_at(rl, n, now_of(rl));
}

int sx__ratelimit_try_mono(sx_ratelimit *rl, uint32_t n, uint64_t mono_now)
{
	if (bad(rl, n))
		return -EINVAL;
	return try_at(rl, n, rl->clock.now_ns == sx_clock_monotonic.now_ns ? mono_now : now_of(rl));
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
 * An open-addressing table of {key + 1, tat} slots (0: never used), twice max_keys rounded up to
 * a power of two, probed linearly from a hash of the key over at most PROBE slots. A key takes a
 * free slot with one CAS on its key word; a slot whose TAT is not ahead of now is exactly as
 * good as a fresh one (its bucket has refilled), so a key found nowhere may take it over.
 *
 * Taking over must not let an event of the old key slip in between: that event would be charged
 * to the new key while the old key, found nowhere afterwards, starts again from a full bucket
 * (burst + 1 events at once). So a takeover first claims the slot's tat word: CAS of the idle
 * tat it judged to TAKING (UINT64_MAX, never a tat), then stores the new key, then the new
 * key's first tat (its event, on a full bucket, always passes). Only a TAKING holder changes a
 * used slot's key, so the key word is stable while it holds it. An admission loads the tat,
 * then checks the key is still its own, then CASes the tat: a takeover that started after the
 * check changed the tat (to TAKING, then to a later value: tats of a slot only grow), so that
 * CAS fails and the next round sees TAKING or the new key and gives the slot up (LOST). A slot
 * marked TAKING is skipped, never waited for: its old key was idle, so a fresh slot is exact.
 * Two events of one new key racing to take over two different idle slots at the same instant
 * could give it two buckets for a moment; both pick the first idle slot of the same probe
 * sequence, so this needs the table to change between their scans.
 */
#define PROBE 16u

struct sx_ratelimit_keyed {
	sx_ratelimit *tmpl;   /* interval, tolerance, burst and clock; its own tat is unused */
	uint64_t mask;
	uint64_t (*slots)[2];
};

static uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= UINT64_C(0xff51afd7ed558ccd);
	k ^= k >> 33;
	k *= UINT64_C(0xc4ceb9fe1a85ec53);
	return k ^ (k >> 33);
}

int sx_ratelimit_keyed_create(const sx_ratelimit_opts *opts, uint32_t max_keys,
    sx_ratelimit_keyed **out)
{
	sx_ratelimit_keyed *kl;
	uint64_t n = 16;
	int rc;

	if (out == NULL || max_keys == 0 || max_keys > SX_RATELIMIT_MAX_KEYS)
		return -EINVAL;
	while (n < 2 * (uint64_t)max_keys)
		n <<= 1;
	kl = sx__zalloc(sizeof(*kl), SX__SMALL_ALIGN);
	if (kl == NULL)
		return -ENOMEM;
	if ((rc = sx_ratelimit_create(opts, &kl->tmpl)) != 0) {
		sx__dfree(kl, sizeof(*kl), SX__SMALL_ALIGN);
		return rc;
	}
	kl->slots = sx__zalloc(n * sizeof(*kl->slots), SX__CACHELINE);
	if (kl->slots == NULL) {
		sx_ratelimit_destroy(kl->tmpl);
		sx__dfree(kl, sizeof(*kl), SX__SMALL_ALIGN);
		return -ENOMEM;
	}
	kl->mask = n - 1;
	*out = kl;
	return 0;
}

void sx_ratelimit_keyed_destroy(sx_ratelimit_keyed *kl)
{
	if (kl == NULL)
		return;
	sx__dfree(kl->slots, (kl->mask + 1) * sizeof(*kl->slots), SX__CACHELINE);
	sx_ratelimit_destroy(kl->tmpl);
	sx__dfree(kl, sizeof(*kl), SX__SMALL_ALIGN);
}

int sx_ratelimit_keyed_try(sx_ratelimit_keyed *kl, uint64_t key, uint32_t n)
{
	uint64_t want = key + 1, now, h, *idle, idle_tat;
	int rc;

	if (kl == NULL || key == UINT64_MAX || bad(kl->tmpl, n))
		return -EINVAL;
	now = now_of(kl->tmpl);
	h = mix(key);
again:
	idle = NULL;
	idle_tat = 0;
	/* Slots are never emptied, only handed over, so a key is always found before the first
	 * empty slot of its probe sequence: look for it (or claim that empty slot) first, and take
	 * over the first idle slot only if the key is nowhere. */
	for (unsigned i = 0; i < PROBE; i++) {
		uint64_t *slot = kl->slots[(h + i) & kl->mask];
		uint64_t k = ck_pr_load_64(&slot[0]), t;

		if ((k == 0 && ck_pr_cas_64_value(&slot[0], 0, want, &k)) || k == want) {
			rc = gcra(kl->tmpl, &slot[1], &slot[0], want, n, now);
			if (rc != LOST)
				return rc;
			continue; /* taken over meanwhile (its bucket was full): not ours any more */
		}
		t = ck_pr_load_64(&slot[1]);
		if (idle == NULL && t <= now && t != UINT64_MAX)
			idle = slot, idle_tat = t;
	}
	if (idle == NULL)
		return -ENOSPC;
	if (next_tat(kl->tmpl, idle_tat, now, n) == UINT64_MAX)
		return SX_ERATE_LIMITED; /* a clock at the end of time: never due */
	if (!ck_pr_cas_64(&idle[1], idle_tat, UINT64_MAX))
		goto again; /* admitted to or taken over meanwhile: look again */
	ck_pr_store_64(&idle[0], want);
	ck_pr_fence_store();
	ck_pr_store_64(&idle[1], next_tat(kl->tmpl, idle_tat, now, n));
	return 0;
}
