/* The WELCOME server list in the agent's spool folder. */
#include "peers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Bytes a servers file may hold: every address at its longest, a newline each. */
#define PEERS_FILE_MAX (RENDEZVOUS_MAX * (PROTO_ADDR_MAX + 1))

/* Parse a servers file's text. */
int peers_parse(const char *buf, size_t len, struct peers *out, const char **why)
{
	size_t off = 0;
	out->n = 0;
	while (off < len) {
		const char *nl = memchr(buf + off, '\n', len - off);
		if (!nl) {
			*why = "last line has no newline";
			return -1;
		}
		size_t n = (size_t)(nl - (buf + off));
		if (out->n == RENDEZVOUS_MAX) {
			*why = "more than 16 servers";
			return -1;
		}
		if (n == 0 || n > PROTO_ADDR_MAX || memchr(buf + off, '\0', n)) {
			*why = "a line is not a server address";
			return -1;
		}
		char *a = out->addr[out->n];
		memcpy(a, buf + off, n);
		a[n] = '\0';
		if (!proto_addr_valid(a)) {
			*why = "a line is not a server address";
			return -1;
		}
		out->n++;
		off += n + 1;
	}
	if (out->n == 0) {
		*why = "no server";
		return -1;
	}
	return 0;
}

/* Read and parse dir/servers. */
int peers_load(const char *dir, struct peers *out)
{
	char path[4200], buf[PEERS_FILE_MAX + 1];
	snprintf(path, sizeof path, "%s/servers", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		log_warn("peers", "%s: %s", path, strerror(errno));
		return -1;
	}
	size_t len = 0;
	ssize_t got;
	while (len < sizeof buf && (got = read(fd, buf + len, sizeof buf - len)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			log_warn("peers", "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		len += (size_t)got;
	}
	close(fd);
	const char *why = "too long";
	if (len > PEERS_FILE_MAX || peers_parse(buf, len, out, &why) < 0) {
		log_warn("peers", "%s: %s; using agent.server", path, why);
		return -1;
	}
	return 1;
}

/* Write dir/servers atomically. */
int peers_save(const char *dir, const char *const *list, size_t n)
{
	char path[4200], tmp[4210], buf[PEERS_FILE_MAX];
	size_t len = 0;
	int saved;
	for (size_t i = 0; i < n && i < RENDEZVOUS_MAX; i++) {
		size_t k = strlen(list[i]);
		if (k > PROTO_ADDR_MAX)
			return -1;
		memcpy(buf + len, list[i], k);
		buf[len + k] = '\n';
		len += k + 1;
	}
	snprintf(path, sizeof path, "%s/servers", dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	if (util_write_all(fd, buf, len) < 0 || fsync(fd) < 0) {
		close(fd);
		goto fail_tmp;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0)
		goto fail_tmp;
	return 0;
fail_tmp:
	saved = errno;
	unlink(tmp);
	errno = saved;
fail:
	log_warn("peers", "cannot write %s: %s", path, strerror(errno));
	return -1;
}
