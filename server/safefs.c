/* Opening what lies below the data folder without following a symbolic
 * link: openat with O_NOFOLLOW on one name at a time, relative to a folder
 * already checked, then fstat on what was opened. */
#include "safefs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Keep EPERM for the owner refusal: the rare EPERM an open or mkdir gives
 * of itself (an immutable file) is reported as EACCES. */
static int safefs_errno(void)
{
	return errno == EPERM ? EACCES : errno;
}

/* Close fd after a failed check, keeping err in errno. */
static int safefs_reject(int fd, int err)
{
	close(fd);
	errno = err;
	return -1;
}

/* Open (and with create, first make) a folder that must be owned by us. */
int safefs_dir_open(int dirfd, const char *name, int create)
{
	if (create && mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST) {
		errno = safefs_errno();
		return -1;
	}
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int err = safefs_errno();
		struct stat sb;
		/* O_DIRECTORY answers ENOTDIR for a link too: say which it is. */
		if (err == ENOTDIR && fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(sb.st_mode))
			err = ELOOP;
		errno = err;
		return -1;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return safefs_reject(fd, safefs_errno());
	if (!S_ISDIR(sb.st_mode))
		return safefs_reject(fd, ENOTDIR);
	if (sb.st_uid != geteuid())
		return safefs_reject(fd, EPERM);
	return fd;
}

/* Open a regular file that is not a link. */
int safefs_file_open(int dirfd, const char *name, int flags)
{
	int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
	if (fd < 0) {
		errno = safefs_errno();
		return -1;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return safefs_reject(fd, safefs_errno());
	if (!S_ISREG(sb.st_mode))
		return safefs_reject(fd, ENXIO);
	return fd;
}

/* Whether err is a refusal of ours rather than an I/O error. */
int safefs_refused(int err)
{
	return err == ELOOP || err == ENOTDIR || err == ENXIO || err == EPERM;
}

/* A refusal in words, or strerror's text. */
const char *safefs_why(int err, char *out, size_t size)
{
	switch (err) {
	case ELOOP:
		snprintf(out, size, "is a symbolic link");
		break;
	case ENOTDIR:
		snprintf(out, size, "is not a folder");
		break;
	case ENXIO:
		snprintf(out, size, "is not a regular file");
		break;
	case EPERM:
		snprintf(out, size, "is not owned by uid %u", (unsigned)geteuid());
		break;
	default:
		snprintf(out, size, "%s", strerror(err));
		break;
	}
	return out;
}
