/*
 * io: the per-pool reactor, registrations and their waits (reactor.c), and the helpers built on
 * the waits (net.c). Includes cancel (and time, exec, base through it): waits take breakers, and
 * sx_io_connect's limit is a timer. Nothing here is public API.
 *
 * A registration holds one slot per direction; a slot holds at most one operation at a time (a
 * wait, or a helper's whole read, write, accept or connect), whose phase lives in the slot's
 * state word, changed only by CAS (or an atomic OR of a flag):
 *
 *     bits 31..5: generation, bumped by every change of phase (an old CAS cannot succeed)
 *     bit 4:      TRIP: the operation's breaker (or the connect timer) ended it while its owner
 *                 held the slot (SETUP, or FIRED between a helper's rounds); the code is in
 *                 trip_code, and the owner's next arming ends the operation with it instead
 *     bit 3:      DEREG: sx_io_deregister began; no operation starts (-ECANCELED)
 *     bit 2:      SHUT: the pool's shutdown began; no operation starts (-ESHUTDOWN)
 *     bits 1..0:  IDLE -> SETUP (its starter fills the fields) -> ARMED (waiting) -> FIRED
 *                 (claimed: the slot's task is queued or running) -> IDLE, or FIRED -> ARMED
 *                 again (a helper's next round)
 *
 * ARMED -> FIRED is the claim: readiness (the poller), the breaker's callback, the connect
 * timer, the shutdown and the deregistration all try it, and the one CAS that wins ends the
 * wait with its result and queues the slot's task (an sx_task inside the slot: nothing is
 * allocated). An event that finds the slot not yet armed is not lost: the poller records it in
 * the readiness word with an RMW and then reads the state, and the owner arms with a CAS and
 * then reads the readiness word (Dekker: whoever comes second sees the other). A trip that finds
 * it not armed leaves TRIP, which the arming CAS cannot miss; so once its slot is armed, nobody
 * reads the breaker again (its owner may release it as soon as the wait ended). SHUT and DEREG
 * turn an ARMED slot into FIRED in the same CAS that sets them, so an ARMED slot never carries a
 * flag; an owner that finds one ends its own operation.
 */
#ifndef STRIX_SRC_IO_H
#define STRIX_SRC_IO_H

#include <pthread.h>

#include <strix/io.h>

#include "cancel/cancel.h"

#define SX__IO_PHASE 3u
#define SX__IO_IDLE 0u
#define SX__IO_SETUP 1u
#define SX__IO_ARMED 2u
#define SX__IO_FIRED 3u
#define SX__IO_SHUT 4u
#define SX__IO_DEREG 8u
#define SX__IO_TRIP 16u
#define SX__IO_GEN_ONE 32u

/* Which helper an operation is (a timer callback recognizes the operation it was set for). */
enum { SX__IO_OP_WAIT = 0, SX__IO_OP_HELPER = 1, SX__IO_OP_CONNECT = 2 };

/* The readiness word: the SX_IO_* events in its low bits, a tick above, advanced by every event
 * the poller records (so sx_io_clear can tell that one arrived since a token was read). */
#define SX__IO_EVENTS 0xfull
#define SX__IO_TICK_ONE (1ull << 16)

struct sx__io_slot;
/* A helper's step, run as the slot's task: result is the claim's (a readiness mask, or why the
 * wait ended). Returns true when the operation has ended (the helper told its caller), false
 * when it armed the slot again (then it may be queued already: the step must not touch it). */
typedef bool (*sx__io_step_fn)(sx_io *io, struct sx__io_slot *s, int result);

struct sx__io_slot {
	sx_task task;               /* the slot's callback task (run: the end of the wait) */
	sx_io *io;
	unsigned dir;               /* SX_IO_READABLE or SX_IO_WRITABLE */
	uint32_t state;             /* see the top of this file */
	int result;                 /* written by the claim's winner before it queues the task */
	int trip_code;              /* atomic: the code TRIP stands for */
	/* The operation, written by its starter in SETUP; stop and op are reset (atomically) by
	 * the operation's end before the slot goes IDLE, so a late callback of an earlier
	 * operation never sees its own key on a later one that did not set it. */
	unsigned op;                /* SX__IO_OP_*: atomic, the connect timer reads it */
	sx__io_step_fn step;        /* NULL: a plain wait (fn, arg); else a helper */
	sx_io_fn fn;
	void *arg;
	sx_breaker *stop;           /* atomic: the breaker callback reads it (sx__io_stop_fired) */
	sx_breaker_cb *cb;          /* stop's callback, withdrawn when the operation ends */
	bool has_final;             /* the helper finished in its starter: final is its result */
	bool timer_on;              /* timer is armed for this operation (sx_io_connect) */
	int64_t final;
	sx_io_done_fn done;         /* a helper's caller */
	void *done_arg;
	char *buf;
	size_t len, min, got;
	sx_timer timer;
	struct sx__io_slot *stop_next; /* the shutdown's list of slots it claimed */
};

struct sx__reactor;

struct sx_io {
	uint64_t ready;             /* the readiness word (see above) */
	int fd;
	bool sock;                  /* a socket: writes use send(MSG_NOSIGNAL) */
	bool orphan;                /* deregistered, but left listed for destroy to free */
	struct sx__reactor *r;
	sx_pool *pool;
	/* A waiting word (base/base.h; bit 0 its waiter flag, sx_io_deregister's): 2 per operation
	 * under way on a slot (from its start until its callback returned) and per breaker or timer
	 * callback registered for one and not yet withdrawn or finished. */
	uint32_t live;
	struct sx_io *prev, *next;  /* in the reactor's list, under its lock */
	ck_epoch_entry_t retire;
	struct sx__io_slot slot[2];
};

#define SX__IO_LIVE_WAITERS 1u
#define SX__IO_LIVE_ONE 2u

static inline struct sx__io_slot *sx__io_slot_of(sx_io *io, unsigned dir)
{
	return &io->slot[dir == SX_IO_WRITABLE];
}

static inline void sx__io_live_inc(sx_io *io)
{
	ck_pr_add_32(&io->live, SX__IO_LIVE_ONE);
}

/* The last touch of io by whoever held that count, unless the waiter's wake follows: a wake on
 * memory freed meanwhile at worst wakes a futex that sleeps there now, which looks again. */
static inline void sx__io_live_dec(sx_io *io)
{
	if (ck_pr_faa_32(&io->live, (uint32_t)-SX__IO_LIVE_ONE) & SX__IO_LIVE_WAITERS)
		sx__futex_wake(&io->live);
}

/* Whether io is ready for dir: the mask a wait of dir ends with, or 0. A hang-up counts as
 * readable and an error as both (the I/O reports them). */
static inline int sx__io_ready_mask(uint64_t ready, unsigned dir)
{
	unsigned ev = (unsigned)(ready & SX__IO_EVENTS);
	unsigned want = dir == SX_IO_READABLE ? (SX_IO_READABLE | SX_IO_HUP | SX_IO_ERROR)
	                                      : (SX_IO_WRITABLE | SX_IO_ERROR);

	return (ev & want) ? (int)(dir | (ev & (SX_IO_HUP | SX_IO_ERROR))) : 0;
}

/*
 * Where a starter queues: a worker of the pool spawns locally; any other thread stays inside the
 * pool's submission section (exec/exec.h, sx__remote_enter) from before it looks at the slot
 * until after it queued, so a task it queues cannot be refused. Both hold a read section of the
 * pool's epoch meanwhile: once a wait is armed or queued it may end on another thread, whose
 * callback may deregister io, and the starter still reads io until it leaves. sx__io_enter: 0,
 * -ESHUTDOWN, -ENOMEM (that thread's first record).
 */
struct sx__io_entry {
	sx_pool *pool;
	sx__worker *w;
	sx__tcache *c;
};
int sx__io_enter(sx_pool *pool, struct sx__io_entry *e);
void sx__io_leave(struct sx__io_entry *e);

/*
 * The operation's life, for reactor.c's waits and net.c's helpers (the slot's starter or its
 * task's step calls them):
 *   begin:   IDLE -> SETUP and the operation's count; -EBUSY, -ESHUTDOWN, -ECANCELED.
 *   stop_on: register the breaker's callback (stop may be NULL): 0; 1 if stop has tripped
 *            (sx_breaker_err(stop) is the operation's end); -ENOMEM, -EAGAIN.
 *   fire:    SETUP -> FIRED with result, by the starter; then queue it with sx__io_queue.
 *   arm:     SETUP or FIRED -> ARMED, then look at readiness and the breaker once more (a claim
 *            queues the task through e, or sx__io_deliver when e is NULL: a step's next
 *            round). 0; -ESHUTDOWN or -ECANCELED when a flag forbids it (the phase stays).
 *   undo:    a starter gives up before anything could claim: the callback withdrawn, IDLE,
 *            the count dropped.
 *   end:     the operation's end, in its task before its caller is told: the breaker's
 *            callback withdrawn, the timer cancelled, IDLE (the next operation may start).
 */
int sx__io_op_begin(sx_io *io, struct sx__io_slot *s);
int sx__io_op_stop_on(sx_io *io, struct sx__io_slot *s, sx_breaker *stop);
void sx__io_op_fire(struct sx__io_slot *s, int result);
int sx__io_op_arm(sx_io *io, struct sx__io_slot *s, struct sx__io_entry *e);
void sx__io_op_undo(sx_io *io, struct sx__io_slot *s);
void sx__io_op_end(sx_io *io, struct sx__io_slot *s);
/* Queue s's task through e (the starter's entry). */
void sx__io_queue(struct sx__io_entry *e, struct sx__io_slot *s);
/* Queue the task of s, claimed by a thread that holds no entry (a breaker's or a timer's
 * callback, the deregistration, a step): locally on a worker of the pool, through the injector
 * elsewhere; when the pool no longer takes tasks, run its end on this thread with -ESHUTDOWN
 * (or with the claim's code if this thread's record cannot be had). */
void sx__io_deliver(sx_io *io, struct sx__io_slot *s);
/* Try the claim ARMED (the state word `armed`) -> FIRED with result: true if it won. */
bool sx__io_claim(struct sx__io_slot *s, uint32_t armed, int result);
/* A breaker's or the connect timer's end, code, for the operation on s if mine(s, key) says s
 * still holds it: claimed when armed (true: the caller queues it with sx__io_deliver), left as
 * TRIP for its owner otherwise. Lock-free. */
bool sx__io_trip(struct sx__io_slot *s, int code,
    bool (*mine)(struct sx__io_slot *s, const void *key), const void *key);

#endif /* STRIX_SRC_IO_H */
