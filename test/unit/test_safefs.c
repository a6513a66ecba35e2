/* Opening below the data folder: links to folders and files are refused
 * (and nothing is made at their targets), a folder owned by another user
 * and a FIFO are refused without blocking, and a real folder and file
 * open. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "safefs.h"

/* A fresh folder to work in, and one beside it standing for "outside". */
static char top[64], outside[64];

/* Make top and outside; -1 if the system cannot. */
static int make_dirs(void)
{
	snprintf(top, sizeof top, "/tmp/pimon-safefs-XXXXXX");
	snprintf(outside, sizeof outside, "/tmp/pimon-safefs-out-XXXXXX");
	return mkdtemp(top) && mkdtemp(outside) ? 0 : -1;
}

/* Remove what the tests made. */
static void remove_dirs(void)
{
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s %s", top, outside);
	CHECK(system(cmd) == 0);
}

/* A real folder is made and opened; opening it again finds it. */
static void test_real_folder(int tfd)
{
	int fd = safefs_dir_open(tfd, "host", 1);
	CHECK(fd >= 0);
	int again = safefs_dir_open(tfd, "host", 0);
	CHECK(again >= 0);
	CHECK(safefs_dir_open(tfd, "none", 0) < 0 && errno == ENOENT);
	CHECK(!safefs_refused(ENOENT));
	int f = fd >= 0 ? safefs_file_open(fd, "cpu.csv", O_WRONLY | O_CREAT | O_APPEND) : -1;
	CHECK(f >= 0 && write(f, "x\n", 2) == 2);
	struct stat sb;
	CHECK(fstatat(fd, "cpu.csv", &sb, 0) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 2);
	if (f >= 0)
		close(f);
	if (again >= 0)
		close(again);
	if (fd >= 0)
		close(fd);
}

/* A link to a folder outside is refused, made or not, and nothing is
 * created through it. */
static void test_folder_link(int tfd)
{
	CHECK(symlinkat(outside, tfd, "victim") == 0);
	errno = 0;
	CHECK(safefs_dir_open(tfd, "victim", 1) < 0 && errno == ELOOP);
	CHECK(safefs_refused(ELOOP));
	char why[64];
	CHECK_STR(safefs_why(ELOOP, why, sizeof why), "is a symbolic link");
	CHECK(safefs_dir_open(tfd, "victim", 0) < 0 && errno == ELOOP);
	/* A dangling link is refused too, and its target not made. */
	CHECK(symlinkat("/tmp/pimon-safefs-none/x", tfd, "dangling") == 0);
	CHECK(safefs_dir_open(tfd, "dangling", 1) < 0 && errno == ELOOP);
	CHECK(access("/tmp/pimon-safefs-none", F_OK) < 0);
	/* A file where a folder should be. */
	int f = safefs_file_open(tfd, "plain", O_WRONLY | O_CREAT);
	CHECK(f >= 0);
	if (f >= 0)
		close(f);
	CHECK(safefs_dir_open(tfd, "plain", 0) < 0 && errno == ENOTDIR);
	CHECK_STR(safefs_why(ENOTDIR, why, sizeof why), "is not a folder");
}

/* A link to a file outside is neither opened, created, nor written. */
static void test_file_link(int tfd)
{
	char target[128];
	snprintf(target, sizeof target, "%s/shadow", outside);
	int t = open(target, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(t >= 0 && write(t, "secret\n", 7) == 7);
	if (t >= 0)
		close(t);
	CHECK(symlinkat(target, tfd, "load.csv") == 0);
	CHECK(safefs_file_open(tfd, "load.csv", O_RDONLY) < 0 && errno == ELOOP);
	CHECK(safefs_file_open(tfd, "load.csv", O_WRONLY | O_APPEND | O_CREAT) < 0 &&
	      errno == ELOOP);
	CHECK(safefs_file_open(tfd, "load.csv", O_RDWR) < 0 && errno == ELOOP);
	struct stat sb;
	CHECK(stat(target, &sb) == 0 && sb.st_size == 7);
	/* A dangling link: O_CREAT does not make its target. */
	char missing[128];
	snprintf(missing, sizeof missing, "%s/made", outside);
	CHECK(symlinkat(missing, tfd, "cpu.csv") == 0);
	CHECK(safefs_file_open(tfd, "cpu.csv", O_WRONLY | O_CREAT) < 0 && errno == ELOOP);
	CHECK(access(missing, F_OK) < 0);
}

/* A FIFO is refused at once, for reading and for writing. */
static void test_fifo(int tfd)
{
	CHECK(mkfifoat(tfd, "fifo.csv", 0644) == 0);
	CHECK(safefs_file_open(tfd, "fifo.csv", O_RDONLY) < 0 && errno == ENXIO);
	CHECK(safefs_file_open(tfd, "fifo.csv", O_WRONLY | O_APPEND) < 0 && errno == ENXIO);
	char why[64];
	CHECK_STR(safefs_why(ENXIO, why, sizeof why), "is not a regular file");
	CHECK(safefs_file_open(tfd, ".", O_RDONLY) < 0 && errno == ENXIO);
}

/* A folder owned by another user is refused (only root can make one). */
static void test_other_owner(int tfd)
{
	if (geteuid() != 0) {
		printf("safefs: not root, the owner check is not tried\n");
		return;
	}
	CHECK(mkdirat(tfd, "theirs", 0755) == 0);
	CHECK(fchownat(tfd, "theirs", 65534, 65534, 0) == 0);
	CHECK(safefs_dir_open(tfd, "theirs", 1) < 0 && errno == EPERM);
	CHECK(safefs_refused(EPERM));
	char why[64];
	CHECK_STR(safefs_why(EPERM, why, sizeof why), "is not owned by uid 0");
}

int main(void)
{
	if (make_dirs() < 0) {
		perror("mkdtemp");
		return 1;
	}
	int tfd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(tfd >= 0);
	if (tfd >= 0) {
		test_real_folder(tfd);
		test_folder_link(tfd);
		test_file_link(tfd);
		test_fifo(tfd);
		test_other_owner(tfd);
		close(tfd);
	}
	remove_dirs();
	return check_report("safefs");
}
