/*
 * seccomp_probe: issue one system call and print how it ended, for the dockerd seccomp
 * test (tests/infra/dockerd_seccomp_test.sh). Built static at test time and run inside
 * busybox containers.
 *
 *   seccomp_probe io_uring   io_uring_setup(1, &params)   (removed by our profile)
 *   seccomp_probe ptrace     ptrace(PTRACE_TRACEME)       (removed unless CAP_SYS_PTRACE)
 *
 * Prints "ok" when the call succeeded, otherwise "errno=<NAME>" (EPERM, ENOSYS, ...).
 * Exit status: 0 ok, 1 failed with errno, 2 usage.
 */
#include <errno.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

static int report(long rc) {
    if (rc >= 0) {
        puts("ok");
        return 0;
    }
    const char *name = errno == EPERM ? "EPERM" : errno == ENOSYS ? "ENOSYS"
                     : errno == EFAULT ? "EFAULT" : errno == EINVAL ? "EINVAL" : NULL;
    if (name)
        printf("errno=%s\n", name);
    else
        printf("errno=%d\n", errno);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: seccomp_probe io_uring|ptrace\n");
        return 2;
    }
    if (strcmp(argv[1], "io_uring") == 0) {
        struct io_uring_params params;
        memset(&params, 0, sizeof params);
        long fd = syscall(SYS_io_uring_setup, 1, &params);
        int rc = report(fd);
        if (fd >= 0)
            close((int)fd);
        return rc;
    }
    if (strcmp(argv[1], "ptrace") == 0)
        return report(ptrace(PTRACE_TRACEME, 0, NULL, NULL));
    fprintf(stderr, "unknown probe %s\n", argv[1]);
    return 2;
}
