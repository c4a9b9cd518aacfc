/* I/O readiness: an echo server and its client on 127.0.0.1, both on one pool - the accept, the
 * connect (with a time limit), each read and write a wait that ends in a task, and every
 * registration deregistered before its fd is closed. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <strix.h>

static const char hello[] = "hello, strix";
static sx_pool *pool;
static char sbuf[64], cbuf[sizeof(hello)];     /* the server's and the client's buffers */
static atomic_int server_done, client_done, echoed;

static void drop(sx_io *io)                    /* deregister first, then close the fd */
{
	int fd = sx_io_fd(io);

	sx_io_deregister(io);
	close(fd);
}

static void server_read(sx_io *io, int64_t n, void *arg);

static void server_wrote(sx_io *io, int64_t n, void *arg)
{
	if (n < 0 || sx_io_read(io, sbuf, sizeof(sbuf), 1, NULL, server_read, arg) != 0) {
		drop(io);
		atomic_store(&server_done, 1);
	}
}

static void server_read(sx_io *io, int64_t n, void *arg)  /* n bytes, 0 at end of file */
{
	if (n <= 0 || sx_io_write(io, sbuf, (size_t)n, NULL, server_wrote, arg) != 0) {
		drop(io);                          /* from inside its own callback: allowed */
		atomic_store(&server_done, 1);
	}
}

static void accepted(sx_io *listener, int64_t fd, void *arg)
{
	sx_io *io;

	(void)listener;
	if (fd < 0 || sx_io_register(pool, (int)fd, &io) != 0 ||
	    sx_io_read(io, sbuf, sizeof(sbuf), 1, NULL, server_read, arg) != 0)
		atomic_store(&server_done, 1);
}

static void client_read(sx_io *io, int64_t n, void *arg)  /* the whole echo, or an error */
{
	(void)arg;
	printf("client: %lld bytes back: \"%.*s\"\n", (long long)n, n > 0 ? (int)n : 0, cbuf);
	atomic_store(&echoed, n == (int64_t)sizeof(hello) && memcmp(cbuf, hello, sizeof(hello)) == 0);
	drop(io);                                  /* the server reads end of file */
	atomic_store(&client_done, 1);
}

static void client_wrote(sx_io *io, int64_t n, void *arg)
{
	if (n < 0 || sx_io_read(io, cbuf, sizeof(cbuf), sizeof(cbuf), NULL, client_read, arg) != 0) {
		drop(io);
		atomic_store(&client_done, 1);
	}
}

static void connected(sx_io *io, int64_t rc, void *arg)   /* io is NULL when rc < 0 */
{
	if (rc < 0 || sx_io_write(io, hello, sizeof(hello), NULL, client_wrote, arg) != 0) {
		fprintf(stderr, "connect: %s\n", sx_strerror((int)rc));
		if (io != NULL)
			drop(io);
		atomic_store(&client_done, 1);
	}
}

int main(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	sx_io *listener;
	int lfd, rc;

	if ((rc = sx_pool_create(NULL, &pool)) != 0)
		return 1;
	lfd = socket(AF_INET, SOCK_STREAM, 0);  /* port 0: the system picks a free one */
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 8) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) != 0 ||
	    fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) != 0)
		return 1;
	if ((rc = sx_io_register(pool, lfd, &listener)) != 0 ||
	    (rc = sx_io_accept(listener, NULL, accepted, NULL)) != 0 ||
	    (rc = sx_io_connect(pool, (struct sockaddr *)&sa, sizeof(sa), 1000000000, NULL,
	    connected, NULL)) != 0) {                /* -ETIMEDOUT after 1 s */
		fprintf(stderr, "starting: %s\n", sx_strerror(rc));
		return 1;
	}
	for (int i = 0; i < 2000 && !(atomic_load(&server_done) && atomic_load(&client_done)); i++)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);   /* at most about 2 s */
	drop(listener);
	sx_pool_shutdown(pool, SX_DRAIN);
	sx_pool_destroy(pool);
	return atomic_load(&echoed) && atomic_load(&server_done) ? 0 : 1;
}
