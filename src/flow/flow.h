/*
 * flow: promises that another module settles (fan-out), and waiting for one to settle
 * (promise_*.c, fanout.c); fork-join (join.c) and strands (strand.c) use exec's submission
 * paths directly and declare nothing here. Includes io (and cancel, time, exec, base through
 * it).
 * Nothing here is public API. The promise's struct and its kinds' ops are in
 * flow/promise_impl.h, which only the promise_*.c files include.
 */
#ifndef STRIX_SRC_FLOW_H
#define STRIX_SRC_FLOW_H

#include <strix/promise.h>

#include "io/io.h"

/*
 * A root promise that no step settles: its owner calls sx__promise_settle exactly once. Its
 * chain's breaker exists from the start (a child of parent, or a manual one): the owner's work
 * stops on it, and sx_promise_cancel trips it. cleanup(arg) runs when the promise is freed,
 * after that breaker was released. *out holds the caller's reference and the pending one that
 * sx__promise_settle drops. Returns 0, -ENOMEM, or what creating the breaker returned.
 */
int sx__promise_deferred(sx_pool *pool, sx_breaker *parent, void (*cleanup)(void *), void *arg,
    sx_promise **out);
sx_breaker *sx__promise_breaker(sx_promise *p);
void sx__promise_ref(sx_promise *p);
/* Fulfil (err 0, value NULL) or reject a deferred promise; drops the pending reference. */
void sx__promise_settle(sx_promise *p, int err);
/* Wait until p settles, ignoring its breaker (it runs other tasks meanwhile on a worker of p's
 * pool); returns its outcome (0 or the error), or -ESHUTDOWN if the pool stopped first. */
int sx__promise_join(sx_promise *p);

#endif /* STRIX_SRC_FLOW_H */
