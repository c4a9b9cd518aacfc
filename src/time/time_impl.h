/*
 * time: the single-owner timer wheel (wheel.c) and the per-pool timer service on top of it
 * (timer.c), which keeps its nodes in the exec layer's tcache and pool. Includes exec (and base
 * through it). Nothing here is public API.
 */
#ifndef STRIX_SRC_TIME_IMPL_H
#define STRIX_SRC_TIME_IMPL_H

#include <strix/timer.h>

#include "exec/exec.h"

#endif /* STRIX_SRC_TIME_IMPL_H */
