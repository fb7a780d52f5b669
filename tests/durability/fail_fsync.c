/* LD_PRELOAD shim for the fsync-failure test (issue 20): a dying disk.
 * Once the file TASKHOST_FAIL_FSYNC_ARMED names exists, every fsync or
 * fdatasync of a file whose name ends in TASKHOST_FAIL_FSYNC_SUFFIX (a
 * SQLite WAL, "-wal", when unset) fails with EIO. Without the first
 * variable it changes nothing. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int named(int fd, const char *suffix) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    const ssize_t n = readlink(link, path, sizeof path - 1);
    const size_t len = strlen(suffix);
    if (n < (ssize_t)len) return 0;
    path[n] = '\0';
    return strcmp(path + n - len, suffix) == 0;
}

static int fails(int fd) {
    const char *armed = getenv("TASKHOST_FAIL_FSYNC_ARMED");
    if (armed == NULL || access(armed, F_OK) != 0) return 0;
    const char *suffix = getenv("TASKHOST_FAIL_FSYNC_SUFFIX");
    return named(fd, suffix != NULL ? suffix : "-wal");
}

int fdatasync(int fd) {
    if (fails(fd)) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}

int fsync(int fd) {
    if (fails(fd)) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
