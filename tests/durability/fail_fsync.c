/* LD_PRELOAD shim for the fsync-failure test (issue 20): a dying disk.
 * Once TASKHOST_FAIL_FSYNC_AFTER fsyncs of a SQLite WAL file (a name ending
 * in "-wal") have succeeded, every later one fails with EIO. Without the
 * variable it changes nothing. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_long wal_syncs;

static int is_wal(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    const ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 4) return 0;
    path[n] = '\0';
    return strcmp(path + n - 4, "-wal") == 0;
}

static int fails(int fd) {
    const char *after = getenv("TASKHOST_FAIL_FSYNC_AFTER");
    if (after == NULL || !is_wal(fd)) return 0;
    return atomic_fetch_add(&wal_syncs, 1) >= atol(after);
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
