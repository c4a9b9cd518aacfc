/* Fork-join: a parallel merge sort with sx_join (both halves may run at once; the records live
 * on the stack), and a scope that forks one child per chunk to sum the sorted array. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strix.h>

#define N 1000000
#define CHUNKS 8

static sx_pool *pool;
static int *tmp;

struct range { int *a; size_t lo, hi; };

static void merge(int *a, size_t lo, size_t mid, size_t hi)
{
	size_t i = lo, j = mid, k = lo;

	while (i < mid && j < hi)
		tmp[k++] = a[i] <= a[j] ? a[i++] : a[j++];
	while (i < mid)
		tmp[k++] = a[i++];
	while (j < hi)
		tmp[k++] = a[j++];
	memcpy(a + lo, tmp + lo, (hi - lo) * sizeof(int));
}

static void sort(void *arg)
{
	struct range *r = arg;
	size_t mid = r->lo + (r->hi - r->lo) / 2;

	if (r->hi - r->lo < 2048) {             /* small: sort in place, no fork */
		for (size_t i = r->lo + 1; i < r->hi; i++)
			for (size_t j = i; j > r->lo && r->a[j - 1] > r->a[j]; j--) {
				int t = r->a[j]; r->a[j] = r->a[j - 1]; r->a[j - 1] = t;
			}
		return;
	}
	struct range left = { r->a, r->lo, mid }, right = { r->a, mid, r->hi };
	sx_join(pool, sort, &left, sort, &right); /* right runs here, left may be stolen */
	merge(r->a, r->lo, mid, r->hi);
}

struct part { const int *a; size_t lo, hi; long long sum; };

static void sum_part(void *arg)
{
	struct part *p = arg;

	p->sum = 0;
	for (size_t i = p->lo; i < p->hi; i++)
		p->sum += p->a[i];
}

int main(void)
{
	int *a = malloc(N * sizeof(int));
	struct range all = { a, 0, N };
	struct part parts[CHUNKS];
	sx_job jobs[CHUNKS];                    /* one record per child, on this stack */
	long long want = 0, sum = 0;
	int sorted = 1, rc;
	sx_scope scope;

	tmp = malloc(N * sizeof(int));
	if ((rc = sx_pool_create(NULL, &pool)) != 0) {
		fprintf(stderr, "sx_pool_create: %s\n", sx_strerror(rc));
		return 1;
	}
	srand(7);
	for (size_t i = 0; i < N; i++) {
		a[i] = rand() % 1000;
		want += a[i];
	}
	sort(&all);                             /* from outside: the first fork goes to the pool */
	for (size_t i = 1; i < N; i++)
		sorted &= a[i - 1] <= a[i];
	sx_scope_init(&scope, pool);
	for (int c = 0; c < CHUNKS; c++) {
		parts[c] = (struct part){ a, (size_t)c * N / CHUNKS, (size_t)(c + 1) * N / CHUNKS, 0 };
		sx_scope_spawn(&scope, &jobs[c], sum_part, &parts[c]);
	}
	rc = sx_scope_wait(&scope);             /* every child has finished */
	for (int c = 0; c < CHUNKS; c++)
		sum += parts[c].sum;
	printf("sorted: %s, sum %lld (want %lld), scope: %s\n", sorted ? "yes" : "no", sum, want,
	    sx_strerror(rc));
	sx_pool_destroy(pool);
	free(a);
	free(tmp);
	return sorted && sum == want && rc == 0 ? 0 : 1;
}
