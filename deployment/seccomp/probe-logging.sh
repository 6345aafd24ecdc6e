#!/usr/bin/env bash
# Can the host see a seccomp refusal? Reproduces the table in docs/operations.md
# ("Seccomp refusals"): runs `mount` (refused by our profile: it needs CAP_SYS_ADMIN)
# in the offline workspace image under the profile, the profile with the LOG filter
# flag, and the profile with `mount` as SCMP_ACT_LOG; then a C program's own filter
# on getppid: ERRNO without and with SECCOMP_FILTER_FLAG_LOG, and SECCOMP_RET_LOG
# (which lets the call through). Counts the kernel's audit records of type 1326
# (SECCOMP) that each run produced.
# Needs root (dmesg), Docker, gcc and the image from deployment/images/build-offline.sh.
# Changes nothing on the host; every container is --rm and --network none.
#
# Usage: deployment/seccomp/probe-logging.sh [image]   (default: workspace-offline:latest)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
image=${1:-workspace-offline:latest}
profile=$here/workspace-seccomp.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

records() { dmesg | grep -c 'type=1326' || true; }

# Prints "<new SECCOMP records> | <what the command printed>" for one run of "$@".
probe() {
  local before out
  before=$(records)
  out=$("$@" 2>&1 | tr '\n' ' ' || true)
  sleep 0.5
  printf '%s | %s\n' "$(($(records) - before))" "$out"
}

python3 - "$profile" "$tmp" <<'PY'
import json, sys
profile = json.load(open(sys.argv[1]))
flag = dict(profile, flags=["SECCOMP_FILTER_FLAG_LOG"])
log = dict(profile, syscalls=profile["syscalls"] + [
    {"names": ["mount"], "action": "SCMP_ACT_LOG", "args": []}])
json.dump(flag, open(sys.argv[2] + "/flag-log.json", "w"))
json.dump(log, open(sys.argv[2] + "/log-action.json", "w"))
PY

cat >"$tmp/errno-filter.c" <<'C'
/* getppid() under a seccomp filter: refused with EPERM; argv[1] == "flag" adds
   SECCOMP_FILTER_FLAG_LOG; argv[1] == "logaction" uses SECCOMP_RET_LOG instead. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getppid, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM), /* patched below */
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog p = {.len = 4, .filter = f};
  unsigned flags = argc > 1 && argv[1][0] == 'f' ? SECCOMP_FILTER_FLAG_LOG : 0;
  if (argc > 1 && argv[1][0] == 'l') f[2].k = SECCOMP_RET_LOG;
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flags, &p)) { perror("seccomp"); return 2; }
  long r = syscall(__NR_getppid);
  printf("getppid=%ld errno=%d", r, errno);
  return 0;
}
C
gcc -O -o "$tmp/errno-filter" "$tmp/errno-filter.c"

run() { docker run --rm --network none --security-opt "seccomp=$1" "$image" mount -t tmpfs none /tmp; }

echo "docker $(docker version --format '{{.Server.Version}}'), kernel $(uname -r)"
echo "actions_logged: $(cat /proc/sys/kernel/seccomp/actions_logged)"
echo "records | output"
echo "profile (ERRNO):              $(probe run "$profile")"
echo "profile + flags LOG:          $(probe run "$tmp/flag-log.json")"
echo "profile + mount SCMP_ACT_LOG: $(probe run "$tmp/log-action.json")"
echo "C filter ERRNO, no flag:      $(probe "$tmp/errno-filter")"
echo "C filter ERRNO, flag LOG:     $(probe "$tmp/errno-filter" flag)"
echo "C filter SECCOMP_RET_LOG:     $(probe "$tmp/errno-filter" logaction)   (the call went through)"
