/* strix - umbrella header: includes every public module. */
#ifndef STRIX_H
#define STRIX_H

#include <strix/version.h>
#include <strix/error.h>
#include <strix/pool.h>
#include <strix/timer.h>
#include <strix/breaker.h>
#include <strix/retry.h>
#include <strix/promise.h>
#include <strix/fanout.h>
#include <strix/sem.h>
#include <strix/ratelimit.h>
#include <strix/circuit.h>
#include <strix/pipeline.h>
#include <strix/group.h>

#endif /* STRIX_H */
