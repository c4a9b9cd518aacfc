/**
 * @file
 * strix - umbrella header: includes every public module.
 *
 * @defgroup strix strix
 * strix - a lock-free task executor and resilience library for C11: the modules below, one
 * group (and one man page, strix_MODULE(3)) each. Include <strix.h> for all of them, or
 * <strix/MODULE.h> for one.
 */
#ifndef STRIX_H
#define STRIX_H

#include <strix/version.h>
#include <strix/error.h>
#include <strix/pool.h>
#include <strix/timer.h>
#include <strix/breaker.h>
#include <strix/retry.h>
#include <strix/io.h>
#include <strix/promise.h>
#include <strix/join.h>
#include <strix/strand.h>
#include <strix/fanout.h>
#include <strix/sem.h>
#include <strix/ratelimit.h>
#include <strix/circuit.h>
#include <strix/registry.h>
#include <strix/adaptive.h>
#include <strix/chaos.h>
#include <strix/hedge.h>
#include <strix/metrics.h>
#include <strix/events.h>
#include <strix/pipeline.h>
#include <strix/group.h>

#endif /* STRIX_H */
