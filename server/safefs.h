/* Opening what lies below the data folder without following a symbolic
 * link. Each call opens one name relative to a folder descriptor with
 * O_NOFOLLOW, and each folder it hands out has been checked, so a path
 * walked one name at a time from the data folder never passes a link.
 * A refusal is an errno that the open itself does not give for these
 * flags, so safefs_why can say what was wrong. */
#ifndef PIMON_SAFEFS_H
#define PIMON_SAFEFS_H

#include <stddef.h>

/* Open the folder name inside dirfd, creating it (mode 0755) first when
 * create is set. It must be a real folder, not a link, owned by the
 * server's effective user. An O_DIRECTORY descriptor, or -1 with errno:
 * ELOOP (a symbolic link), ENOTDIR (not a folder), EPERM (owned by another
 * user), or what openat or mkdirat gave. */
int safefs_dir_open(int dirfd, const char *name, int create);

/* Open the file name inside dirfd with flags (O_NOFOLLOW, O_CLOEXEC and
 * O_NONBLOCK added; mode 0644 when O_CREAT creates it). It must be a
 * regular file, not a link. A descriptor, or -1 with errno: ELOOP (a
 * symbolic link), ENXIO (not a regular file), or what openat gave. */
int safefs_file_open(int dirfd, const char *name, int flags);

/* Non-zero if err is one of the refusals above rather than an I/O error. */
int safefs_refused(int err);

/* What an open above refused, to follow the path in a log line: "is a
 * symbolic link", "is not owned by uid 0"; strerror's text for any other
 * error. Returns out. */
const char *safefs_why(int err, char *out, size_t size);

#endif
