/*
 * exec: the internal layout of the pool, shared by pool.c (lifecycle, submission, shutdown),
 * worker.c (the worker loop: local queue, stealing, injector, parking) and node.c (fn-form task
 * nodes), and used by the layers above (sx__palloc, sx__help_one, the tcache, the epoch domain).
 * The services of higher layers that live per pool (the timer service, the I/O reactor) register
 * struct sx__pool_hooks, so exec never names them.
 * Includes base only. Nothing here is public API.
 */
#ifndef STRIX_SRC_EXEC_H
#define STRIX_SRC_EXEC_H

#include <pthread.h>

#include <ck_epoch.h>
#include <ck_ring.h>
#include <ck_stack.h>

#include "base/base.h"

enum sx__state {
	SX__RUNNING = 0,
	SX__DRAINING = 1,   /* SX_DRAIN: outside submissions refused, queued work still runs */
	SX__CANCELLING = 2, /* SX_CANCEL: workers stop after their current task */
	SX__STOPPED = 3,    /* workers exit */
};

/*
 * A task node for the fn + arg form: exactly one cache line, so two nodes run by different
 * workers never share a line. Free nodes are kept in magazines (below), never linked through
 * themselves: handing one out reads no node memory. Only when no magazine can be had (the
 * allocator failed) does a released node wait on pool->loose, linked through its task.sx_next.
 */
typedef struct sx__node {
	sx_task task;
	void (*fn)(void *);
	void *arg;
} SX__ALIGNED sx__node;

#define SX__NODE_BATCH 256u  /* nodes per magazine: moved between threads at a time */
#define SX__NODE_PREFETCH 4u /* hand-outs ahead that sx__node_get fetches a node's line */
#define SX__SLAB_NODES 255u  /* nodes per slab, after one header line: 16 KiB */
#define SX__SLAB_BYTES ((size_t)(SX__SLAB_NODES + 1) * SX__CACHELINE)

/*
 * A magazine: an array of free nodes. A thread takes nodes from the end of its `cur` magazine
 * and puts released ones at the end of its `out` magazine, so the next node is always one load
 * of a pointer away, wherever the nodes themselves lie (after millions of tasks they are
 * scattered across slabs and caches; a list threaded through them would miss the cache on
 * every hand-out). Full magazines travel between threads on pool->full_mags, empty ones on
 * pool->empty_mags (push one / pop all: no ABA; a thread keeps what it pops, as it keeps full
 * ones); every magazine is listed in pool->mags until destroy.
 */
typedef struct sx__mag {
	ck_stack_entry_t link;       /* in full_mags, empty_mags, or a thread's private list */
	ck_stack_entry_t reg;        /* in pool->mags */
	uint32_t n;                  /* nodes[0, n) are free */
	sx__node *nodes[SX__NODE_BATCH];
} SX__ALIGNED sx__mag;

_Static_assert(sizeof(sx__node) == SX__CACHELINE, "a task node is one cache line");
_Static_assert(sizeof(sx_task) <= 32, "sx_task stays small enough to embed");

/*
 * A task's queue link. <strix/pool.h> does not include <ck_stack.h>: its sx_task starts with one
 * pointer, sx_next, which exec uses as the task's ck_stack entry (and which is only ever accessed
 * as that entry). The entry is the task's first member, so an entry's address is its task's, and
 * the pointer ck_stack stores in it is the next task. These are casts: no extra instruction.
 */
_Static_assert(offsetof(sx_task, sx_next) == 0 && offsetof(ck_stack_entry_t, next) == 0 &&
    sizeof(((sx_task *)0)->sx_next) == sizeof(ck_stack_entry_t) &&
    _Alignof(ck_stack_entry_t) <= _Alignof(sx_task), "sx_task.sx_next is a ck_stack entry");

static inline ck_stack_entry_t *sx__task_link(sx_task *t)
{
	return (ck_stack_entry_t *)(void *)&t->sx_next;
}

static inline sx_task *sx__link_task(ck_stack_entry_t *e)
{
	return SX_CONTAINER_OF(e, sx_task, sx_next);
}

/*
 * A batch: half of an overflowing ring moved to the injector as one array of task pointers, so the
 * worker that takes it copies pointers instead of walking a list through task memory that another
 * core wrote (one cache miss after another, once nodes are scattered). On the injector a batch is
 * an entry like a task, marked by task.run == sx__batch_run. Empty batches stay with the worker
 * that emptied them (up to SX__BATCH_KEEP) or go to pool->spare_batches; all are listed in
 * pool->batches until destroy.
 */
typedef struct sx__batch {
	sx_task task;             /* the injector entry */
	ck_stack_entry_t reg;     /* in pool->batches */
	struct sx__batch *next;   /* in a worker's empty list */
	uint32_t start, n;        /* items[start, n) are still queued */
	sx_task *items[];
} SX__ALIGNED sx__batch;

#define SX__BATCH_BYTES 1024u
#define SX__BATCH_CAP ((unsigned)((SX__BATCH_BYTES - sizeof(sx__batch)) / sizeof(void *)))
#define SX__BATCH_KEEP 4u

/* Tasks a waiting worker may nest on its stack while it helps (sx__help_one). */
#define SX__HELP_MAX_DEPTH 256u
/* sx__wait: rounds that found nothing to do before the waiter sleeps, and the longest sleep of
 * a helping worker (new tasks do not wake it). */
#define SX__WAIT_SPINS 128u
#define SX__HELP_SLICE_NS 200000u

/*
 * Per-thread submission record: magazines of free nodes, the count of tasks this thread
 * submitted, and the thread's record in the pool's epoch domain. Every worker embeds one; each
 * outside thread that submits to a pool gets one (allocated once, found through the pool's
 * pthread key, a per-thread record of pool->caches, revived for a new thread when its thread
 * exits, epoch record and all). Only its owner thread writes it, except rec.dead (base/base.h).
 */
typedef struct sx__tcache {
	sx__rec rec;                /* in pool->caches, for the life of the pool */
	sx_pool *pool;
	sx__mag *cur;               /* nodes to hand out (NULL: none yet) */
	sx__mag *out;               /* nodes released here, exported to full_mags when full */
	ck_stack_entry_t *full;     /* full magazines taken from the pool, not used yet */
	ck_stack_entry_t *empty;    /* empty magazines this thread emptied, at most a few */
	unsigned nempty;
	ck_stack_entry_t *spare;    /* empty magazines taken from the pool, not used yet */
	uint64_t submitted;         /* monotone; atomic stores by the owner, loads by anyone */
	void *svc_free;             /* the timer service's per-thread free list (sx__tcache_svc) */
	unsigned busy;              /* 1 while the owner is inside a submit (shutdown handshake) */
	bool epoch_on;              /* erec is registered with pool->epoch (on first use) */
	ck_epoch_record_t erec;     /* this thread's record in the pool's epoch domain */
} SX__ALIGNED sx__tcache;

/*
 * A worker slot. The pool has max_workers of them (pool->slots); a slot's struct is allocated
 * when the slot is first used and kept until destroy, whatever the pool's size does meanwhile:
 * a retired worker's slot is reused by a later one, which takes over its index, its counters
 * (so sums of them stay monotone, as sx__quiescent needs), its ring positions (which only move
 * forward: a thief's stale snapshot of the ring can never match a later incarnation's) and its
 * tcache with its epoch record (ck_epoch records are never freed). So any thread may read any
 * slot's fields at any time; waking a parked worker and the poller role touch only those.
 *
 * What is reclaimed is the ring's buffer: a worker that retires empties its ring and LIFO slot
 * into the injector (nobody else ever adds to them), then retires the buffer through the pool's
 * epoch domain. A thief reads the slots of a victim's buffer only after a snapshot of the ring
 * showed tasks in it, inside a read section (steal_any, worker.c), so a buffer is freed only
 * once every thief that can have seen it non-empty is gone; a later incarnation gets a fresh
 * one (published before its thread starts).
 */
enum sx__life {
	SX__SLOT_NONE = 0,   /* no thread: never started, or joined */
	SX__SLOT_LIVE,       /* its thread runs the worker loop */
	SX__SLOT_RETIRING,   /* asked to retire; the thread may still run (not joined yet) */
	SX__SLOT_JOINING,    /* a resizer or shutdown joins it now, without the resize lock */
};

typedef struct sx__worker {
	/* Shared with thieves: the ring (its fields are padded to separate lines by ck) and the
	 * LIFO slot on a line of its own. buf changes only while the slot has no thread (atomic
	 * loads by thieves). */
	ck_ring_t ring;
	ck_ring_buffer_t *buf;
	SX__ALIGNED sx_task *lifo;
	/* Event count this worker parks on. */
	SX__ALIGNED struct ck_ec32 ec;

	/* Owner-private from here on (stats are read by others with atomic loads). */
	SX__ALIGNED sx_pool *pool;
	unsigned index;
	unsigned lifo_streak;       /* consecutive tasks run from the LIFO slot */
	unsigned untake_c;          /* sx__untake: c_head when it last looked, and the highest */
	unsigned untake_p;          /* p_tail published since c_head had that value */
	unsigned inject_in;         /* tasks until the periodic injector check */
	uint64_t spin_budget;       /* ns this worker spins before parking now, <= pool->spin_ns */
	bool searching;             /* counted in pool->idle's searching field */
	bool went_idle;             /* already told wait_idle waiters since the last task */
	unsigned help_depth;        /* tasks nested in sx__help_one on this worker's stack */
	unsigned nempty;
	struct sx__batch *empty;    /* empty batches at hand */
	uint64_t rng;               /* xorshift state for victim selection */
	pthread_t thread;
	sx_worker_counters stats;
	sx__tcache cache;

	/* Life cycle (pool.c): written under pool->resize_lock, but `retire`, which its thread
	 * reads with atomic loads between tasks and while it searches or parks. */
	int retire;                 /* 1: asked to retire; 2: committed to it (sx__worker_main) */
	enum sx__life life;
	bool buf_owned;             /* buf is this slot's (not retired) */
	unsigned blocked;           /* depth of sx_pool_block_in_place on this worker */
	bool uncounted;             /* blocked and taken out of pool->nworkers */
	struct sx__worker *comp;    /* the worker started to stand in while this one blocks */
} SX__ALIGNED sx__worker;

/* The header line in front of a ring buffer: its entry in the epoch domain once retired. */
struct sx__ringbuf {
	ck_epoch_entry_t entry;
	sx_pool *pool;
} SX__ALIGNED;

/* The kinds of per-pool service, one slot each in the pool (sx__pool_service). */
enum sx__svc_kind {
	SX__SVC_TIMER = 0,          /* the timer service (time/timer.c) */
	SX__SVC_IO = 1,             /* the I/O reactor (io/reactor.c), the pool's poller */
	SX__SVC_BLOCKING = 2,       /* the side threads for blocking work (blocking.c) */
	SX__SVC_KINDS
};

/* pool->idle packs two counters so one CAS moves a worker between states: the workers parked
 * (or about to park) and the workers searching. Counting the parked ones rather than the others
 * keeps the word independent of the worker count, which resizing changes. */
#define SX__IDLE_PARKED_ONE 1u
#define SX__IDLE_SEARCHING_ONE (1u << 16)
#define SX__IDLE_PARKED(v) ((v) & 0xffffu)
#define SX__IDLE_SEARCHING(v) ((v) >> 16)
/* A parked worker starts searching / a searching one parks: one add each (unsigned wrap). */
#define SX__IDLE_UNPARK (SX__IDLE_SEARCHING_ONE - SX__IDLE_PARKED_ONE)
#define SX__IDLE_PARK (SX__IDLE_PARKED_ONE - SX__IDLE_SEARCHING_ONE)

struct sx_pool {
	/* Read-mostly configuration. The worker slots: slots[0, nalloc) are allocated (struct
	 * sx__worker says what of them may be read when); no slot at or above nslots has a thread.
	 * Both bounds and nworkers change under resize_lock and are read with atomic loads. */
	unsigned nworkers;          /* live workers that take tasks (not blocked in place) */
	unsigned nslots;            /* 1 + the highest slot with a thread */
	unsigned nalloc;            /* slots allocated (only grows) */
	unsigned max_workers;       /* slots */
	unsigned target;            /* the worker count asked for (create, sx_pool_resize) */
	unsigned ring_size;
	unsigned lifo_cap;
	unsigned flags;
	long long spin_ns;
	unsigned nbitmap;           /* 64-bit words in `parked` */
	pthread_key_t key;          /* per outside thread: its sx__tcache */
	sx_allocator alloc;
	void (*on_cancel)(void (*fn)(void *), void *arg, int err);
	sx__worker **slots;         /* [max_workers] */
	uint64_t *parked;           /* bit i set: worker i is parked (or about to) */
	/* The hooks of the service that polls (the reactor), NULL until it started: workers read it
	 * on parking and every SX__INJECT_EVERY tasks, never per task (worker.c). */
	const struct sx__pool_hooks *poll_hooks;

	SX__ALIGNED int state;      /* enum sx__state */
	int cancelled;              /* the shutdown was SX_CANCEL (atomic: read by wait_idle) */

	SX__ALIGNED uint32_t idle;  /* searching << 16 | unparked */

	/* The poller role: 0, or 1 + the index of the worker that holds it (claimed by CAS, only
	 * while poll_hooks is set). Its holder is the only thread in the poll hook (worker.c). */
	SX__ALIGNED uint32_t poller;
	uint64_t polled_at;         /* sx__now_ns when a poll last returned (worker.c) */

	/* The pool's epoch domain (ck_epoch): see sx__epoch_begin. Records live in the tcaches. */
	SX__ALIGNED ck_epoch_t epoch;

	SX__ALIGNED ck_stack_t inj;   /* injector: sx__task_link(task), batch-popped whole */
	SX__ALIGNED ck_stack_t full_mags;  /* magazines of free nodes between threads */
	SX__ALIGNED ck_stack_t empty_mags; /* empty magazines between threads */
	ck_stack_t mags;                   /* every magazine, freed at destroy */
	SX__ALIGNED ck_stack_t loose;      /* nodes released when no magazine could be had */
	SX__ALIGNED ck_stack_t spare_batches; /* empty batches between workers */
	SX__ALIGNED ck_stack_t slabs; /* every node slab, freed at destroy */
	ck_stack_t batches;           /* every batch, freed at destroy */
	ck_stack_t caches;            /* every outside thread's sx__tcache */

	SX__ALIGNED struct ck_ec32 idle_ec; /* bumped when a worker goes idle and someone waits */
	unsigned idle_waiters;
	uint64_t cancelled_tasks;

	/* The pool's services, one per kind (the timer service, time/timer.c; the reactor,
	 * io/reactor.c), each started on first use: its state is svc[kind], its own to read and
	 * write; exec reaches it only through hooks[kind]. svc_lock is a cold-path lock: it only
	 * orders those starts against shutdown. */
	void *svc[SX__SVC_KINDS];
	int64_t timer_tick_ns;      /* sx_pool_opts.timer_tick_ns, for the service (0: default) */
	pthread_mutex_t svc_lock;
	bool svc_closed;            /* shutdown began: no service may start */
	const struct sx__pool_hooks *hooks[SX__SVC_KINDS]; /* NULL until that service started */
	/* sx_pool_opts' blocking_max_threads and blocking_idle_ns, defaults applied (blocking.c). */
	unsigned blocking_max;
	int64_t blocking_idle_ns;

	/* Resizing (pool.c): a cold-path lock over the slots' life cycle, never held while a
	 * thread is joined; joined signals the end of a join made without it. */
	pthread_mutex_t resize_lock;
	pthread_cond_t joined;
	bool resize_closed;         /* shutdown collected the threads: none may start */
	uint64_t retired;           /* workers retired (stats) */
};

/* Slot i's worker (NULL if never allocated). Any thread; the struct stays until destroy. */
static inline sx__worker *sx__slot(const sx_pool *p, unsigned i)
{
	return ck_pr_load_ptr(&p->slots[i]);
}

/* node.c */
sx__mag *sx__node_refill(sx__tcache *c);
void sx__node_put_slow(sx__tcache *c, sx__node *n);
void sx__free_mags(sx_pool *p);
void sx__tcache_release(sx__tcache *c);
void sx__node_task_run(sx_task *t);

/* worker.c */
void sx__batch_run(sx_task *t);
void sx__free_batches(sx_pool *p);
extern __thread sx__worker *sx__self __attribute__((tls_model("initial-exec")));
void *sx__worker_main(void *arg);
void sx__ring_overflow(sx__worker *w);
void sx__inj_push_chain(sx_pool *p, sx_task *head, sx_task *tail);
void sx__notify(sx_pool *p);
void sx__wake_all(sx_pool *p);
/* After setting v's retire flag (and a full fence): wake v if it is parked, so that it sees the
 * flag; otherwise it sees it at its next look (between tasks or while searching). Lock-free. */
void sx__wake_worker(sx_pool *p, sx__worker *v);
/* Owner only: move everything queued on w (its LIFO slot and ring) to the injector, oldest
 * first, and wake a worker for it. Nothing is left for thieves or for w itself. Lock-free. */
void sx__hand_off(sx__worker *w);
bool sx__quiescent(sx_pool *p);
int sx__help_one(sx__worker *w);
bool sx__untake(sx__worker *w, sx_task *t);
/* Owner only: if t is still where w queued it last, take it back and run it now, nested on this
 * stack and counted as executed, exactly as if popped; true then. False: it has left w's queues
 * (it runs, or will run, elsewhere). */
bool sx__run_if_queued(sx__worker *w, sx_task *t);
/* Owner only: as sx__run_if_queued, but the caller runs what t stands for itself (without
 * calling t->run): true when t came back, counted as executed. */
bool sx__take_back(sx__worker *w, sx_task *t);

/*
 * The one way a blocking call of the layers above waits: for a condition on a waiting word
 * (base/base.h) whose waiter flag is `flag`. done(arg, seen) is asked with each fresh load of
 * *word; a nonzero answer ends the wait and is returned. Between questions: with w (the caller's
 * worker, sx__worker_of) it runs other tasks (sx__help_one); after SX__WAIT_SPINS rounds that
 * found nothing to do it dozes on the word, for at most SX__HELP_SLICE_NS at a time with w
 * (new tasks do not wake a sleeping helper), until the deadline without. Returns done's answer,
 * -ETIMEDOUT once the absolute CLOCK_MONOTONIC deadline (UINT64_MAX: none) has passed, or
 * -ESHUTDOWN when w's pool stops under SX_CANCEL (the caller may wait on without w). Blocks;
 * lock-free while it helps. Called on w's thread, or on any thread with w NULL.
 */
typedef int (*sx__wait_fn)(void *arg, uint32_t seen);
int sx__wait(sx__worker *w, uint32_t *word, uint32_t flag, sx__wait_fn done, void *arg,
    uint64_t deadline);
/* As sx__wait, helping on whichever pool the calling thread works for, if any; when that pool
 * stops, the wait goes on without helping. For waits that other threads end (a trip, a permit),
 * never a task of the caller's pool: those never return -ESHUTDOWN. */
int sx__wait_here(uint32_t *word, uint32_t flag, sx__wait_fn done, void *arg, uint64_t deadline);
/*
 * As sx__wait with w (required), no deadline, for a fork of the task w is running (sx_join,
 * scopes): the fork is part of that task, which SX_CANCEL lets finish, so the wait keeps helping
 * while the pool stops - wherever the fork is queued (another worker's ring or LIFO slot, the
 * injector) this worker finds and runs it, since stopped workers no longer will. Tasks it runs
 * meanwhile run instead of being cancelled, still exactly once. Returns done's answer. Blocks;
 * lock-free while it helps. w's thread only.
 */
int sx__wait_fork(sx__worker *w, uint32_t *word, uint32_t flag, sx__wait_fn done, void *arg);

static inline bool sx__is_batch(const sx_task *t)
{
	return t->run == sx__batch_run;
}

/*
 * What exec calls in a service of the pool, a higher layer's (the timer service, the reactor):
 * the service registers them when it starts, and exec calls them through pool->hooks[kind] when
 * that is set, on cold paths only (never submission, stealing, running), services in the order
 * of their kinds:
 *   kind:              the service's slot (enum sx__svc_kind).
 *   stop(p):           sx_pool_shutdown, once, before it waits for submitters and workers
 *                      (svc_closed is set already): the service stops and joins its threads.
 *   free(p):           destroy, after shutdown: the service frees its memory (the pool
 *                      forgets it afterwards).
 *   pending(p):        sx_pool_stats' timers_pending (the timer service; NULL for others). Any
 *                      thread, concurrently with the service.
 *   tcache_release(c): c's thread exits: the service takes back what it keeps in c (may be
 *                      NULL).
 * A service that polls (the reactor; NULL for the others) also gives the two hooks workers
 * call through pool->poll_hooks, the only ones called outside cold paths (worker.c):
 *   poll(p, w, block): on w, the holder of the poller role: collect what is ready, queue the
 *                      tasks it ends on w's ring with sx__push_polled, and return how many it
 *                      queued. block: sleep until something is ready or wake(p) is called
 *                      (then it may return 0); otherwise do not sleep.
 *   wake(p):           any thread: make a poll sleeping now, or the next one to sleep, return
 *                      soon (a spurious call costs one wasted return).
 */
struct sx__pool_hooks {
	enum sx__svc_kind kind;
	void (*stop)(sx_pool *p);
	void (*free)(sx_pool *p);
	uint64_t (*pending)(sx_pool *p);
	void (*tcache_release)(sx__tcache *c);
	unsigned (*poll)(sx_pool *p, struct sx__worker *w, bool block);
	void (*wake)(sx_pool *p);
};

/*
 * The pool's service of kind h->kind: *out is the one already started, or the one
 * start(p, &svc) makes now, which the pool then publishes with its hooks h (hooks first, so
 * whoever sees the service sees them; for a polling service then poll_hooks, and a parked worker
 * is woken so that one takes the poller role). start runs under the pool's service lock, only
 * while the pool runs and no shutdown has begun; it returns 0 or a negative errno and leaves
 * nothing behind on error. Returns 0; start's error; -ESHUTDOWN once the pool stops. Cold, any
 * thread; blocks on the service lock.
 */
int sx__pool_service(sx_pool *p, const struct sx__pool_hooks *h,
    int (*start)(sx_pool *p, void **svc), void **out);

/* The pool's service of that kind (NULL until it started). Any thread; its hooks may read it
 * plainly. */
static inline void *sx__pool_svc(const sx_pool *p, enum sx__svc_kind kind)
{
	return ck_pr_load_ptr(&p->svc[kind]);
}

/* Whether p still takes tasks (no shutdown has begun). One load, any thread. */
static inline bool sx__pool_running(const sx_pool *p)
{
	return ck_pr_load_int(&p->state) == SX__RUNNING;
}

/* The submission record of worker w (its magazines of free nodes). */
static inline sx__tcache *sx__worker_cache(sx__worker *w)
{
	return &w->cache;
}

/* The per-thread slot of c that belongs to the pool's timer service (its free list). Owner
 * only. */
static inline void **sx__tcache_svc(sx__tcache *c)
{
	return &c->svc_free;
}

/* The tick the pool's options ask of its timer service (0: the service's default). */
static inline int64_t sx__pool_timer_tick(const sx_pool *p)
{
	return p->timer_tick_ns;
}

static inline sx_pool *sx__tcache_pool(const sx__tcache *c)
{
	return c->pool;
}

/*
 * The pool's epoch domain: safe memory reclamation (ck_epoch) for structures that threads read
 * without a lock while another thread unlinks and frees them (the reactor's registrations, which
 * a poller may still hold in a batch of events after they were deregistered). One domain per
 * pool, for every such structure of every layer: a reader brackets each look with
 * sx__epoch_begin / sx__epoch_end (sections nest; keep them short: a section open anywhere
 * holds back every reclamation in the pool); a writer unlinks an object so that no new section
 * can find it, then hands it to sx__epoch_retire, whose fn frees it once every section that was
 * open at the unlink has ended. Each thread's record is its sx__tcache's, registered on first
 * use (a worker's own, or an outside thread's from sx__tcache_get); deferred frees wait on the
 * record of the thread that retired them and run on that thread (at its next retire or poll),
 * or at destroy, which runs everything still pending after the services were freed. All of
 * these: c's thread only.
 */
void sx__epoch_register(sx__tcache *c);

/* Open a read section on c's record. Wait-free but for the first call (registration). */
static inline void sx__epoch_begin(sx__tcache *c)
{
	if (SX__UNLIKELY(!c->epoch_on))
		sx__epoch_register(c);
	ck_epoch_begin(&c->erec, NULL);
}

/* End the section sx__epoch_begin opened. Wait-free. */
static inline void sx__epoch_end(sx__tcache *c)
{
	SX__TSAN_RELEASE(&c->pool->epoch);
	ck_epoch_end(&c->erec, NULL);
}

/* Run fn(e) once no section open now can still see the object e is embedded in (the caller has
 * unlinked it), then run whatever of c's earlier retirements is due. Never blocks; lock-free. */
void sx__epoch_retire(sx__tcache *c, ck_epoch_entry_t *e, ck_epoch_cb_t *fn);
/* Run whatever of c's retirements is due; true if the epoch moved on or something ran. Never
 * blocks; lock-free. Not inside a section of c's. */
bool sx__epoch_poll(sx__tcache *c);
/* Wait until every section open now has ended, then run all of c's retirements. Blocks
 * (spinning) for as long as the longest such section lasts; not inside a section of c's. */
void sx__epoch_barrier(sx__tcache *c);
/* How many of c's retirements have not run yet. */
static inline unsigned sx__epoch_pending(const sx__tcache *c)
{
	return c->epoch_on ? ck_pr_load_uint(&c->erec.n_pending) : 0;
}
/* destroy: run every retirement still pending on every record (no thread uses the pool). */
void sx__epoch_fini(sx_pool *p);

/* The timer service's tick range: sx_pool_create checks opts.timer_tick_ns against it (the wheel's
 * own bounds, which time/ asserts are the same). */
#define SX__TIMER_TICK_MIN_NS INT64_C(10000)
#define SX__TIMER_TICK_MAX_NS INT64_C(1000000000)

/*
 * blocking.c: the pool's side threads for blocking work (sx_pool_spawn_blocking), a service of
 * kind SX__SVC_BLOCKING started on the first spawn. pool.c calls only these:
 *   sx__blocking_check(o):   create: 0, or -EINVAL for blocking options out of range.
 *   sx__blocking_init(p, o): create: keep o's blocking options in p, defaults applied.
 *   sx__blocking_mine(p):    the caller is one of p's side threads (shutdown refuses it, as
 *                            a worker). One TLS load; any thread.
 *   sx__blocking_admits(p):  the caller is one of p's side threads while p drains: its
 *                            submissions are still taken (what drained blocking work spawns
 *                            runs too). One TLS load and one state load; any thread.
 *   sx__blocking_stats(p, o): fill o's blocking fields. Any thread.
 */
int sx__blocking_check(const sx_pool_opts *o);
void sx__blocking_init(sx_pool *p, const sx_pool_opts *o);
bool sx__blocking_mine(const sx_pool *p);
bool sx__blocking_admits(const sx_pool *p);
void sx__blocking_stats(sx_pool *p, sx_pool_counters *out);
/*
 * Queue t on p's side threads (starting the service, and a thread, as needed): a side thread
 * calls t->run(t) once; if SX_CANCEL stops p before one took t, the shutdown thread calls
 * t->cancel(t, -ECANCELED) instead (counted in the pool's cancelled). Returns 0; -ESHUTDOWN
 * once a shutdown of p has begun; -EAGAIN when SX_POOL_BLOCKING_QUEUE tasks wait already;
 * -ENOMEM or -EAGAIN if the service could not start. Lock-free but for the first call and the
 * start of a thread (a cold-path lock). Any thread.
 */
int sx__blocking_submit(sx_pool *p, sx_task *t);

/* pool.c */
sx__tcache *sx__tcache_get(sx_pool *p);
/* A retiring worker, on its own thread after its loop ended (not stopping): gives back what
 * its tcache holds and retires its ring buffer; the queues are empty already. */
void sx__worker_retired(sx__worker *w);
/* c's owner is going away: its nodes and service state go back to the pool. */
void sx__tcache_give_back(sx__tcache *c);
/*
 * The submission section of a thread outside p: sx__remote_enter sets the thread's busy flag
 * (shutdown waits for it to clear) and checks that p still runs. Inside the section the caller
 * may queue tasks with sx__inject, which then cannot be refused. Returns the thread's record, or
 * NULL with *rc = -ENOMEM (its first record cannot be allocated) or -ESHUTDOWN (then the section
 * is already left). Lock-free. Outside threads only; sx__remote_leave(c) ends the section.
 */
sx__tcache *sx__remote_enter(sx_pool *p, int *rc);
void sx__remote_leave(sx__tcache *c);
/* Queue t on p's injector, counted as submitted by c, and wake a worker if none searches.
 * Inside c's submission section. Lock-free. */
void sx__inject(sx_pool *p, sx__tcache *c, sx_task *t);
/* For a service's stop hook only (on the thread in sx_pool_shutdown, before it waits for
 * submitters): queue t on the injector although the pool takes no more tasks, counted as
 * submitted, so that SX_DRAIN runs it and SX_CANCEL hands it to its cancel callback. 0, or
 * -ENOMEM when the calling thread's record cannot be allocated (t is not queued). Lock-free. */
int sx__inject_stopping(sx_pool *p, sx_task *t);
/* Owner only: queue t where w's own spawns go (its LIFO slot if that is empty, else the tail of
 * its ring), counted as submitted. Wait-free but for an overflowing ring and the wake-up hint. */
void sx__spawn_local(sx__worker *w, sx_task *t);
/* Owner only: queue t at the producer end of w's ring, counted as submitted: the place a fork
 * goes, where the owner takes it back (sx__run_if_queued) with one fence and thieves take the
 * oldest first. Wait-free but for an overflowing ring and the wake-up hint. */
void sx__push_local(sx__worker *w, sx_task *t);
/* Owner only, from a poll hook: as sx__push_local without the wake-up hint (w may be parked;
 * the worker loop wakes another worker once per poll, if it queued anything). */
void sx__push_polled(sx__worker *w, sx_task *t);
/* A task that never ran because SX_CANCEL stopped p: its cancel callback (or p's on_cancel for
 * the fn form) with -ECANCELED, counted in the pool's cancelled. The shutdown thread only. */
void sx__cancel_task(sx_pool *p, sx_task *t);
/* A fn-form node for fn(arg) from c's magazines, ready to queue; NULL when the allocator fails.
 * c's thread only. */
sx_task *sx__node_task(sx__tcache *c, void (*fn)(void *), void *arg);
void *sx__palloc(sx_pool *p, size_t size);
void sx__pfree(sx_pool *p, void *ptr, size_t size);

static inline sx__worker *sx__worker_of(const sx_pool *p)
{
	sx__worker *w = sx__self;

	return (w != NULL && w->pool == p) ? w : NULL;
}

/*
 * The per-task fast paths, inline: their slow halves live in node.c and worker.c.
 */

/* A free node for the calling thread, which owns c. NULL only when every source is empty and
 * the allocator failed. Lock-free: no atomic at all unless c's magazines are empty. */
static inline sx__node *sx__node_get(sx__tcache *c)
{
	sx__mag *m = c->cur;

	if (SX__UNLIKELY(m == NULL || m->n == 0) && (m = sx__node_refill(c)) == NULL)
		return NULL;
	/* A reused magazine's nodes lie anywhere: fetch the line of a node a few hand-outs ahead,
	 * so the task that gets it does not wait for memory (the array makes it known early). */
	if (SX__LIKELY(m->n > SX__NODE_PREFETCH))
		__builtin_prefetch(m->nodes[m->n - 1 - SX__NODE_PREFETCH], 1);
	return m->nodes[--m->n];
}

/* Release a node on the calling thread, which owns c. Wait-free but for the one CAS per
 * SX__NODE_BATCH nodes that exports a full magazine. */
static inline void sx__node_put(sx__tcache *c, sx__node *n)
{
	sx__mag *m = c->out;

	if (SX__UNLIKELY(m == NULL || m->n == SX__NODE_BATCH)) {
		sx__node_put_slow(c, n);
		return;
	}
	m->nodes[m->n++] = n;
}

/* Owner only: queue t on w's ring, moving half the ring to the injector first if it is full. */
static inline void sx__ring_push(sx__worker *w, sx_task *t)
{
	SX__ASSERT(w == sx__self);
	while (SX__UNLIKELY(!ck_ring_enqueue_spmc(&w->ring, w->buf, t)))
		sx__ring_overflow(w);
}

#endif /* STRIX_SRC_EXEC_H */
