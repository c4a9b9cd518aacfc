/* Strands: one per account, so the updates of an account run one at a time and in order, with
 * no lock, while different accounts update in parallel on the pool. */
#include <stdio.h>
#include <strix.h>

#define ACCOUNTS 4
#define DEPOSITS 10000

struct account { sx_strand *strand; long balance; long updates; };

static struct account accounts[ACCOUNTS];

static void deposit(void *arg)                  /* runs on the account's strand only */
{
	struct account *acc = arg;

	acc->balance += 10;                     /* plain: the strand serializes its tasks */
	acc->updates++;
}

int main(void)
{
	long total = 0;
	sx_pool *pool;
	int rc;

	if ((rc = sx_pool_create(NULL, &pool)) != 0) {
		fprintf(stderr, "sx_pool_create: %s\n", sx_strerror(rc));
		return 1;
	}
	for (int i = 0; i < ACCOUNTS; i++)
		if ((rc = sx_strand_create(pool, &accounts[i].strand)) != 0) {
			fprintf(stderr, "sx_strand_create: %s\n", sx_strerror(rc));
			return 1;
		}
	for (int d = 0; d < DEPOSITS; d++)
		for (int i = 0; i < ACCOUNTS; i++)
			if ((rc = sx_strand_submit(accounts[i].strand, deposit, &accounts[i])) != 0)
				fprintf(stderr, "sx_strand_submit: %s\n", sx_strerror(rc));
	sx_pool_wait_idle(pool);                /* every strand has run what it was given */
	for (int i = 0; i < ACCOUNTS; i++) {
		printf("account %d: balance %ld after %ld updates\n", i, accounts[i].balance,
		    accounts[i].updates);
		total += accounts[i].balance;
		sx_strand_destroy(accounts[i].strand);
	}
	sx_pool_destroy(pool);
	return total == 10L * DEPOSITS * ACCOUNTS ? 0 : 1;
}
