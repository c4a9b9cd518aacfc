/*
 * Fault injection: the default allocator with an injection point per allocation, wrapped
 * pthread_create / pthread_key_create, and a fork-per-run scenario runner. See faults.h.
 */
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <strix/pool.h>

#include "faults.h"

static int fi_mode_;      /* enum fi_mode */
static uint64_t fi_k_;
static uint64_t fi_seen_; /* points since arm */
static uint64_t fi_seen_kind_[FI_NKINDS];
static uint64_t fi_nfailed_;
static int64_t fi_live_;

void fi_arm(int mode, uint64_t k)
{
	__atomic_store_n(&fi_mode_, FI_OFF, __ATOMIC_SEQ_CST);
	__atomic_store_n(&fi_seen_, 0, __ATOMIC_SEQ_CST);
	for (int i = 0; i < FI_NKINDS; i++)
		__atomic_store_n(&fi_seen_kind_[i], 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&fi_nfailed_, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&fi_k_, k, __ATOMIC_SEQ_CST);
	__atomic_store_n(&fi_mode_, mode, __ATOMIC_SEQ_CST);
}

void fi_off(void)
{
	__atomic_store_n(&fi_mode_, FI_OFF, __ATOMIC_SEQ_CST);
}

uint64_t fi_points(void)
{
	return __atomic_load_n(&fi_seen_, __ATOMIC_SEQ_CST);
}

uint64_t fi_points_kind(int kind)
{
	return __atomic_load_n(&fi_seen_kind_[kind], __ATOMIC_SEQ_CST);
}

uint64_t fi_failed(void)
{
	return __atomic_load_n(&fi_nfailed_, __ATOMIC_SEQ_CST);
}

int64_t fi_live(void)
{
	return __atomic_load_n(&fi_live_, __ATOMIC_SEQ_CST);
}

void __sanitizer_print_stack_trace(void);

/* FI_BT=k in the environment prints the stack of the k-th point of every run (debugging). */
static uint64_t fi_bt_k(void)
{
	static uint64_t k = UINT64_MAX;

	if (k == UINT64_MAX) {
		const char *e = getenv("FI_BT");

		k = e != NULL ? strtoull(e, NULL, 10) : 0;
	}
	return k;
}


/* One injection point: true if it must fail. */
static bool fi_point(int kind)
{
	uint64_t n = __atomic_add_fetch(&fi_seen_, 1, __ATOMIC_SEQ_CST);
	int mode = __atomic_load_n(&fi_mode_, __ATOMIC_SEQ_CST);
	uint64_t k = __atomic_load_n(&fi_k_, __ATOMIC_SEQ_CST);
	bool fail = (mode == FI_ONE && n == k) || (mode == FI_FROM && n >= k);

	__atomic_add_fetch(&fi_seen_kind_[kind], 1, __ATOMIC_SEQ_CST);
	if (fi_bt_k() != 0 && n == fi_bt_k()) {
		fprintf(stderr, "faults.c: injection point %llu (kind %d, mode %d):\n",
		    (unsigned long long)n, kind, mode);
		__sanitizer_print_stack_trace();
	}
	if (fail)
		__atomic_add_fetch(&fi_nfailed_, 1, __ATOMIC_SEQ_CST);
	return fail;
}

/* ---- the allocator ------------------------------------------------------------------------ */

/* Each block carries a header (one alignment unit before the pointer returned) with its size and
 * alignment, so a free with the wrong size or alignment is caught. */
struct fi_hdr {
	struct fi_hdr *prev, *next; /* the list of live blocks (FI_TRACK only) */
	void *frames[12];           /* where it was allocated (FI_TRACK only) */
	int nframes;
	uint64_t magic;
	size_t size;
	size_t align;
};

/* FI_TRACK=1 in the environment keeps a list of live blocks with their allocation stacks, printed
 * when a run ends with blocks it should have freed (debugging). */
static pthread_mutex_t track_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fi_hdr track_head = { &track_head, &track_head, { 0 }, 0, 0, 0, 0 };

static bool fi_track(void)
{
	static int t = -1;

	if (t < 0)
		t = getenv("FI_TRACK") != NULL;
	return t;
}

static void fi_dump_live(void)
{
	pthread_mutex_lock(&track_lock);
	for (struct fi_hdr *h = track_head.next; h != &track_head; h = h->next) {
		fprintf(stderr, "faults.c: live block of %zu bytes, allocated at:\n", h->size);
		backtrace_symbols_fd(h->frames, h->nframes, 2);
	}
	pthread_mutex_unlock(&track_lock);
}

#define FI_MAGIC 0x5354524958464931ull
#define FI_FREED 0x5354524958464644ull

static __thread uint64_t nallocs __attribute__((tls_model("initial-exec")));

uint64_t sx_allocations(void)
{
	return nallocs;
}

static size_t hdr_room(size_t align)
{
	if (align < 16)
		align = 16;
	return (sizeof(struct fi_hdr) + align - 1) / align * align;
}

static void *fi_alloc(void *ctx, size_t size, size_t align)
{
	size_t room = hdr_room(align), total;
	char *base;
	struct fi_hdr *h;

	(void)ctx;
	nallocs++;
	if (fi_point(FI_ALLOC))
		return NULL;
	if (size > SIZE_MAX / 2)
		return NULL;
	total = (room + size + room - 1) / room * room;
	base = aligned_alloc(align < 16 ? 16 : align, total);
	if (base == NULL)
		return NULL;
	h = (struct fi_hdr *)(void *)(base + room - sizeof(*h));
	h->magic = FI_MAGIC;
	h->size = size;
	h->align = align;
	if (fi_track()) {
		h->nframes = backtrace(h->frames, 12);
		pthread_mutex_lock(&track_lock);
		h->next = track_head.next;
		h->prev = &track_head;
		h->next->prev = h;
		track_head.next = h;
		pthread_mutex_unlock(&track_lock);
	}
	__atomic_add_fetch(&fi_live_, 1, __ATOMIC_SEQ_CST);
	return base + room;
}

static void fi_free(void *ctx, void *ptr, size_t size, size_t align)
{
	size_t room = hdr_room(align);
	char *base;
	struct fi_hdr *h;

	(void)ctx;
	if (ptr == NULL)
		return;
	base = (char *)ptr - room;
	h = (struct fi_hdr *)(void *)((char *)ptr - sizeof(*h));
	if (h->magic != FI_MAGIC || h->size != size || h->align != align) {
		fprintf(stderr, "faults.c: bad free of %p: size %zu align %zu, allocated %zu align "
		    "%zu (magic %#llx)\n", ptr, size, align, h->size, h->align,
		    (unsigned long long)h->magic);
		abort();
	}
	h->magic = FI_FREED;
	if (fi_track()) {
		pthread_mutex_lock(&track_lock);
		h->prev->next = h->next;
		h->next->prev = h->prev;
		pthread_mutex_unlock(&track_lock);
	}
	__atomic_sub_fetch(&fi_live_, 1, __ATOMIC_SEQ_CST);
	free(base);
}

const sx_allocator sx_allocator_default = { fi_alloc, fi_free, NULL };

/* ---- threads and keys --------------------------------------------------------------------- */

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
	if (fi_point(FI_THREAD))
		return EAGAIN;
	return __real_pthread_create(t, a, fn, arg);
}

int __wrap_pthread_key_create(pthread_key_t *key, void (*dtor)(void *))
{
	if (fi_point(FI_KEY))
		return EAGAIN;
	return __real_pthread_key_create(key, dtor);
}

/* ---- the runner --------------------------------------------------------------------------- */

struct fi_shared {
	uint64_t points, kinds[FI_NKINDS], failed;
	int64_t live_end;
	int done;
	char msg[1024];
};

static struct fi_shared *shm;

uint64_t fi_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool fi_allowed(int rc, const int *allowed, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (rc == allowed[i])
			return true;
	return false;
}

void fi_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	fi_off();
	n = snprintf(shm->msg, sizeof(shm->msg), "%s:%d: ", file, line);
	va_start(ap, fmt);
	vsnprintf(shm->msg + n, sizeof(shm->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	fflush(NULL);
	_exit(3);
}

/* Run the scenario in a child; returns 0 if it passed, else fills why. */
static int run_child(fi_scenario scenario, int mode, uint64_t k, int64_t live_max, char *why,
    size_t whylen)
{
	pid_t pid;
	int st;

	memset(shm, 0, sizeof(*shm));
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		alarm(120); /* a hang ends the child with SIGALRM */
		fi_arm(mode, k);
		scenario();
		fi_off();
		shm->points = fi_points();
		for (int i = 0; i < FI_NKINDS; i++)
			shm->kinds[i] = fi_points_kind(i);
		shm->failed = fi_failed();
		shm->live_end = fi_live();
		/* strix's notifier thread frees tripped breakers and their callback nodes after
		 * the release that let them go: give it time before counting a block as kept. */
		for (uint64_t t0 = fi_now_ns(); shm->live_end > (live_max >= 0 ? live_max : 0) &&
		    fi_now_ns() - t0 < (live_max >= 0 ? 5000000000ull : 1000000000ull);
		    shm->live_end = fi_live())
			usleep(1000);
		if (live_max >= 0 && shm->live_end > live_max) {
			snprintf(shm->msg, sizeof(shm->msg), "%lld blocks still allocated after "
			    "the scenario's cleanup (the clean run leaves %lld)",
			    (long long)shm->live_end, (long long)live_max);
			if (fi_track())
				fi_dump_live();
			_exit(4);
		}
		shm->done = 1;
		exit(0); /* LeakSanitizer checks here */
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && shm->done)
		return 0;
	if (WIFSIGNALED(st))
		snprintf(why, whylen, "killed by signal %d (%s)%s %s", WTERMSIG(st),
		    strsignal(WTERMSIG(st)), WTERMSIG(st) == SIGALRM ? " - hang" :
		    shm->done ? " after the scenario ended: leak report (LSan)" : "", shm->msg);
	else
		snprintf(why, whylen, "exit status %d: %s", WEXITSTATUS(st),
		    shm->msg[0] ? shm->msg : (shm->done ? "leak report at exit (LSan)" : "?"));
	return -1;
}

unsigned fi_run(const char *name, fi_scenario scenario, int mode, uint64_t *npoints)
{
	char why[1400];
	uint64_t n, kinds[FI_NKINDS];
	int64_t residual;
	unsigned failed = 0;

	if (shm == NULL) {
		shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		    -1, 0);
		if (shm == MAP_FAILED) {
			perror("mmap");
			abort();
		}
	}
	if (run_child(scenario, FI_OFF, 0, -1, why, sizeof(why)) != 0) {
		printf("inject %s: the clean run failed: %s\n", name, why);
		return 1;
	}
	n = shm->points;
	memcpy(kinds, shm->kinds, sizeof(kinds));
	residual = shm->live_end;
	if (npoints != NULL)
		*npoints = n;
	for (uint64_t k = 1; k <= n; k++) {
		const char *only = getenv("FI_ONLY"); /* debugging: run this k only */

		if (only != NULL && strtoull(only, NULL, 10) != k)
			continue;
		if (run_child(scenario, mode, k, residual, why, sizeof(why)) != 0) {
			printf("inject %s %s k=%llu: FAILED: %s\n", name,
			    mode == FI_ONE ? "one" : "from", (unsigned long long)k, why);
			failed++;
		}
	}
	printf("inject %s (%s): %llu injection points (%llu allocations, %llu thread creations, "
	    "%llu key creations), %llu runs, %u failed; clean run leaves %lld blocks\n",
	    name, mode == FI_ONE ? "fail the k-th" : "fail from the k-th on",
	    (unsigned long long)n, (unsigned long long)kinds[FI_ALLOC],
	    (unsigned long long)kinds[FI_THREAD], (unsigned long long)kinds[FI_KEY],
	    (unsigned long long)n, failed, (long long)residual);
	fflush(stdout);
	return failed;
}
