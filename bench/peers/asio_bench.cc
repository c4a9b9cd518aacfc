// Boost.Asio's thread_pool and strands, used as Asio's documentation shows: handlers given to
// boost::asio::post on the pool (its executor) or on a strand made by boost::asio::make_strand.
// A post from a pool thread and one from outside are the same call; Asio itself tells them apart.
#include <atomic>
#include <cstdio>
#include <exception>
#include <new>
#include <thread>
#include <vector>

#include <semaphore.h>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include "asio.h"

namespace asio = boost::asio;
using pool_strand = asio::strand<asio::thread_pool::executor_type>;

namespace {

// ---- The pool behind bench_pool_api ------------------------------------------------------------
//
// asio::thread_pool can only wait for its work by joining its threads (wait/join end them), so
// wait_idle counts tasks itself. Each thread that submits to or runs on a pool owns one slot of
// that pool with two counters only it writes: tasks it posted and tasks it finished. Submission
// is counted before the post, completion after the task returned. wait_idle sums every finished
// counter (acquire), then every submitted counter: each finished task's post, and every post a
// finished task made, happened before its finish was counted, so the second sum covers the
// first; equal sums mean no task is left, as long as nobody posts from outside meanwhile (the
// harness calls wait_idle after its own submissions). No counter is shared between threads, so
// the count adds no contended cache line to the paths being measured.

struct alignas(64) slot {
	std::atomic<uint64_t> submitted{0};
	std::atomic<uint64_t> finished{0};
	const void *owner; // identity of the owning thread
	slot *next;
};

struct pool {
	explicit pool(unsigned workers) : tp(workers), gen(next_gen.fetch_add(1) + 1) {}
	asio::thread_pool tp;
	const uint64_t gen;                   // distinguishes pools that reuse an address
	std::atomic<slot *> slots{nullptr};   // push-only until destroy
	static std::atomic<uint64_t> next_gen;
};
std::atomic<uint64_t> pool::next_gen{0};

// The calling thread's slot in the pool it last used (trivial thread_locals: no TLS wrapper).
thread_local uint64_t tl_gen;
thread_local slot *tl_slot;

slot *own_slot(pool *p)
{
	if (tl_gen == p->gen)
		return tl_slot;
	const void *me = &tl_gen;
	slot *s = p->slots.load(std::memory_order_acquire);
	while (s != nullptr && s->owner != me)
		s = s->next;
	if (s == nullptr) {
		s = new slot;
		s->owner = me;
		s->next = p->slots.load(std::memory_order_relaxed);
		while (!p->slots.compare_exchange_weak(s->next, s, std::memory_order_release,
		    std::memory_order_relaxed)) {
		}
	}
	tl_gen = p->gen;
	tl_slot = s;
	return s;
}

// Single writer: a plain load and a release store, no read-modify-write.
inline void bump(std::atomic<uint64_t> &c)
{
	c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

void *pool_create(unsigned workers)
{
	try {
		return new pool(workers);
	} catch (...) {
		return nullptr;
	}
}

int pool_submit(void *pp, void (*fn)(void *), void *arg)
{
	pool *p = static_cast<pool *>(pp);
	slot *s;

	try {
		s = own_slot(p);
	} catch (...) {
		return -1;
	}
	bump(s->submitted);
	try {
		asio::post(p->tp, [p, fn, arg] {
			fn(arg);
			bump(own_slot(p)->finished);
		});
	} catch (...) {
		bump(s->finished); // never posted: it must not hold wait_idle up
		return -1;
	}
	return 0;
}

bool pool_idle(pool *p)
{
	uint64_t fin = 0, sub = 0;

	for (slot *s = p->slots.load(std::memory_order_acquire); s != nullptr; s = s->next)
		fin += s->finished.load(std::memory_order_acquire);
	for (slot *s = p->slots.load(std::memory_order_acquire); s != nullptr; s = s->next)
		sub += s->submitted.load(std::memory_order_acquire);
	return fin == sub;
}

void pool_wait_idle(void *pp)
{
	pool *p = static_cast<pool *>(pp);

	for (unsigned i = 0; !pool_idle(p); i++) {
		if (i < 64)
			std::this_thread::yield();
		else
			bench_sleep_ns(i < 1000 ? 20000 : 1000000);
	}
}

void pool_destroy(void *pp)
{
	pool *p = static_cast<pool *>(pp);

	p->tp.join(); // runs what is left, then the threads end
	for (slot *s = p->slots.load(), *next; s != nullptr; s = next) {
		next = s->next;
		delete s;
	}
	delete p;
}

int fail(bench_out *o, const char *what)
{
	std::snprintf(o->err, sizeof(o->err), "asio: %s", what);
	return -1;
}

int fail(bench_out *o, const std::exception &e)
{
	std::snprintf(o->err, sizeof(o->err), "asio: %s", e.what());
	return -1;
}

// ---- chain -------------------------------------------------------------------------------------

// One hop after another: the state is only touched by the running hop, and each hop is posted by
// the one before it, so Asio's queue orders the accesses.
struct chain_state {
	asio::thread_pool *tp;
	uint64_t left, ran;
	sem_t done;
};

struct hop {
	chain_state *c;
	void operator()() const
	{
		c->ran++;
		if (--c->left == 0)
			sem_post(&c->done);
		else
			asio::post(*c->tp, hop{c});
	}
};

// ---- yield -------------------------------------------------------------------------------------

// Each handler owns its count; the last one to finish posts the semaphore.
struct yield_state {
	asio::thread_pool *tp;
	std::atomic<uint64_t> live{0};
	sem_t done;
};

struct alignas(64) yield_task {
	yield_state *y;
	uint64_t left;
};

struct yield_handler {
	yield_task *t;
	void operator()() const
	{
		if (t->left != 0) {
			t->left--;
			asio::post(*t->y->tp, yield_handler{t});
		} else if (t->y->live.fetch_sub(1, std::memory_order_acq_rel) == 1) {
			sem_post(&t->y->done);
		}
	}
};

// ---- strand_spawn ------------------------------------------------------------------------------

struct alignas(64) strand_check {
	std::atomic<int> running{0};   // 1 while one of this strand's handlers runs
	std::atomic<uint64_t> seq{0};  // handlers of this strand run so far
	uint64_t posted = 0;           // handlers posted to it (the spawner only)
};

struct spawn_state {
	std::atomic<uint64_t> countdown{0}, overlaps{0}, out_of_order{0};
	sem_t done;
};

struct strand_task {
	strand_check *s;
	uint64_t k; // this handler's place in its strand's posting order
	spawn_state *g;
	void operator()() const
	{
		if (s->running.exchange(1, std::memory_order_acquire) != 0)
			g->overlaps.fetch_add(1, std::memory_order_relaxed);
		if (s->seq.load(std::memory_order_relaxed) != k)
			g->out_of_order.fetch_add(1, std::memory_order_relaxed);
		s->seq.store(s->seq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
		s->running.store(0, std::memory_order_release);
		if (g->countdown.fetch_sub(1, std::memory_order_acq_rel) == 1)
			sem_post(&g->done);
	}
};

// ---- strand_pingpong ---------------------------------------------------------------------------

// Two actors, each a strand; the token is the one handler in flight, so the state is touched by
// one handler at a time, in the order of the posts.
struct pp_state {
	pp_state(asio::thread_pool &tp, bench_hist *hist, uint64_t n, uint64_t warm)
	    : side{asio::make_strand(tp), asio::make_strand(tp)}, h(hist), total(n), warmup(warm)
	{
	}
	pool_strand side[2];
	bench_hist *h;
	uint64_t total, warmup; // hand-offs to run, the first `warmup` of them not recorded
	uint64_t handoffs = 0, recorded = 0, wrong_side = 0;
	uint64_t t_send = 0;
	std::atomic<int> running[2] = {{0}, {0}};
	uint64_t overlaps = 0;
	sem_t done;
};

struct receive {
	pp_state *p;
	int me; // 0: actor A, 1: actor B
	void operator()() const
	{
		uint64_t t = bench_now_ns();

		if (p->running[me].exchange(1, std::memory_order_acquire) != 0)
			p->overlaps++;
		if (p->handoffs++ >= p->warmup) {
			hist_record(p->h, t - p->t_send);
			p->recorded++;
		}
		// Hand-off 1 goes A -> B, so odd ones arrive at B.
		if ((int)(p->handoffs & 1) != me)
			p->wrong_side++;
		p->running[me].store(0, std::memory_order_release);
		if (p->handoffs == p->total) {
			sem_post(&p->done);
			return;
		}
		p->t_send = bench_now_ns();
		asio::post(p->side[!me], receive{p, !me});
	}
};

// The first send, from actor A.
struct start_pp {
	pp_state *p;
	void operator()() const
	{
		p->t_send = bench_now_ns();
		asio::post(p->side[1], receive{p, 1});
	}
};

} // namespace

extern "C" const bench_pool_api bench_asio_api = {
	"asio", pool_create, pool_submit, pool_wait_idle, pool_destroy,
};

extern "C" int asio_chain(unsigned workers, uint64_t n, bench_out *o)
{
	try {
		asio::thread_pool tp(workers);
		chain_state c{&tp, n, 0, {}};
		uint64_t t0;

		if (n == 0)
			return fail(o, "chain of 0 hops");
		sem_init(&c.done, 0, 0);
		t0 = bench_now_ns();
		asio::post(tp, hop{&c});
		sem_wait(&c.done);
		o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
		tp.join();
		sem_destroy(&c.done);
		o->tasks = c.ran;
		if (c.ran != n) {
			std::snprintf(o->err, sizeof(o->err), "asio: %llu of %llu hops ran",
			    (unsigned long long)c.ran, (unsigned long long)n);
			return -1;
		}
		return 0;
	} catch (const std::exception &e) {
		return fail(o, e);
	}
}

extern "C" int asio_yield(unsigned workers, uint64_t n, bench_out *o)
{
	try {
		asio::thread_pool tp(workers);
		yield_state y;
		std::vector<yield_task> tasks(BENCH_YIELD_TASKS);
		uint64_t each = n / BENCH_YIELD_TASKS, t0, left = 0;

		if (each == 0)
			return fail(o, "yield: fewer yields than tasks");
		y.tp = &tp;
		y.live.store(BENCH_YIELD_TASKS);
		sem_init(&y.done, 0, 0);
		for (auto &t : tasks)
			t = yield_task{&y, each};
		t0 = bench_now_ns();
		for (auto &t : tasks)
			asio::post(tp, yield_handler{&t});
		sem_wait(&y.done);
		o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
		tp.join();
		sem_destroy(&y.done);
		for (auto &t : tasks)
			left += t.left;
		o->tasks = each * BENCH_YIELD_TASKS - left;
		if (left != 0)
			return fail(o, "yield: handlers left unfinished");
		return 0;
	} catch (const std::exception &e) {
		return fail(o, e);
	}
}

extern "C" int asio_strand_spawn(unsigned workers, uint64_t n, unsigned strands, bench_out *o)
{
	try {
		asio::thread_pool tp(workers);
		std::vector<pool_strand> st;
		std::vector<strand_check> chk(strands);
		spawn_state g;
		uint64_t t0;

		if (strands == 0 || n == 0)
			return fail(o, "strand_spawn needs n > 0 and strands > 0");
		st.reserve(strands);
		for (unsigned i = 0; i < strands; i++)
			st.push_back(asio::make_strand(tp));
		g.countdown.store(n);
		sem_init(&g.done, 0, 0);
		t0 = bench_now_ns();
		asio::post(tp, [&] {
			unsigned s = 0;
			for (uint64_t i = 0; i < n; i++) {
				asio::post(st[s], strand_task{&chk[s], chk[s].posted++, &g});
				if (++s == strands)
					s = 0;
			}
		});
		sem_wait(&g.done);
		o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
		tp.join();
		sem_destroy(&g.done);
		o->tasks = n - g.countdown.load();
		uint64_t seqs = 0;
		for (const strand_check &c : chk)
			seqs += c.seq.load();
		if (o->tasks != n || seqs != n) {
			std::snprintf(o->err, sizeof(o->err), "asio: %llu of %llu handlers ran",
			    (unsigned long long)o->tasks, (unsigned long long)n);
			return -1;
		}
		if (g.overlaps.load() != 0 || g.out_of_order.load() != 0) {
			std::snprintf(o->err, sizeof(o->err),
			    "asio: strand handlers overlapped %llu times, ran out of order %llu times",
			    (unsigned long long)g.overlaps.load(),
			    (unsigned long long)g.out_of_order.load());
			return -1;
		}
		return 0;
	} catch (const std::exception &e) {
		return fail(o, e);
	}
}

extern "C" int asio_strand_pingpong(unsigned workers, uint64_t rounds, bench_hist *h,
    bench_out *o)
{
	try {
		asio::thread_pool tp(workers);
		uint64_t warm_rounds = rounds / 100, t0;
		pp_state p(tp, h, 2 * (rounds + warm_rounds), 2 * warm_rounds);

		if (rounds == 0)
			return fail(o, "strand_pingpong of 0 rounds");
		sem_init(&p.done, 0, 0);
		t0 = bench_now_ns();
		asio::post(p.side[0], start_pp{&p});
		sem_wait(&p.done);
		o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
		tp.join();
		sem_destroy(&p.done);
		o->tasks = p.recorded;
		if (p.recorded != 2 * rounds || p.handoffs != p.total) {
			std::snprintf(o->err, sizeof(o->err), "asio: %llu of %llu hand-offs recorded",
			    (unsigned long long)p.recorded, (unsigned long long)(2 * rounds));
			return -1;
		}
		if (p.overlaps != 0 || p.wrong_side != 0) {
			std::snprintf(o->err, sizeof(o->err),
			    "asio: an actor ran twice at once %llu times, out of turn %llu times",
			    (unsigned long long)p.overlaps, (unsigned long long)p.wrong_side);
			return -1;
		}
		return 0;
	} catch (const std::exception &e) {
		return fail(o, e);
	}
}
