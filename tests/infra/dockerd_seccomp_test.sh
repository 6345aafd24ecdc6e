#!/bin/bash
# A real dockerd started with the AMI's daemon.json (installed by harden.sh into a
# temporary root, its seccomp-profile path redirected there) applies the workspace seccomp
# profile to every container by default:
#   - a normal busybox workload runs; Seccomp is 2 and NoNewPrivs is 1 without any flag;
#   - io_uring_setup and ptrace fail with EPERM; ptrace succeeds under the upstream profile
#     the workspace profile is derived from (so it is our removal acting), io_uring_setup
#     succeeds unconfined (the kernel has it) and fails under that upstream profile too
#     (Docker's default dropped io_uring in 25.0);
#   - the capability-conditional groups are intact: with CAP_SYS_ADMIN a container can
#     still unshare a mount namespace (without it, it cannot), and CAP_SYS_PTRACE gives
#     ptrace back.
# The daemon is this test's own (own socket, data root, exec root, pidfile, managed
# containerd and namespace, no bridge, no iptables); it never touches the shared dockerd.
# Needs root, dockerd + docker CLI, busybox (static), gcc with a static libc.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
T=$(mktemp -d /tmp/wsd.XXXXXX)
SOCK=$T/docker.sock
NS=wsdtest-$$
DOCKERD_PID=

cleanup() {
  set +e
  if [[ -n "$DOCKERD_PID" ]] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    docker -H "unix://$SOCK" ps -aq 2>/dev/null | xargs -r docker -H "unix://$SOCK" rm -f >/dev/null 2>&1
    kill "$DOCKERD_PID"
    for _ in $(seq 1 40); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$DOCKERD_PID" 2>/dev/null
  fi
  # Leftover mounts of this daemon's data root (overlay layers, netns files).
  grep -o " $T/[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

failures=0
passed=0
ok() { echo "  ok    $*"; passed=$((passed + 1)); }
bad() { echo "  FAIL  $*"; failures=$((failures + 1)); }
expect() { # expect DESCRIPTION WANTED GOT
  if [[ "$3" == "$2" ]]; then ok "$1 ($3)"; else bad "$1: wanted '$2', got '$3'"; fi
}

for tool in dockerd docker busybox gcc python3; do
  command -v "$tool" >/dev/null || { echo "dockerd_seccomp_test: $tool is required" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "dockerd_seccomp_test: must run as root" >&2; exit 1; }

echo "  building the probe and the offline busybox image"
mkdir -p "$T/img/bin" "$T/root"
cp "$(command -v busybox)" "$T/img/bin/busybox"
gcc -static -O2 -o "$T/img/bin/seccomp_probe" "$ROOT/tests/infra/seccomp_probe.c"

echo "  installing the AMI files into $T/root and redirecting daemon.json"
bash "$ROOT/ami/scripts/harden.sh" "$T/root" >/dev/null
python3 - "$T/root/etc/docker/daemon.json" "$T/daemon.json" "$T/root" <<'PY'
import json, sys
src, dst, root = sys.argv[1:]
d = json.load(open(src))
d["seccomp-profile"] = root + d["seccomp-profile"]
json.dump(d, open(dst, "w"), indent=2)
PY

echo "  starting a private dockerd"
dockerd --config-file "$T/daemon.json" \
  --data-root "$T/data" --exec-root "$T/exec" --pidfile "$T/docker.pid" \
  -H "unix://$SOCK" --bridge=none --iptables=false --ip-masq=false \
  --containerd-namespace "$NS" --containerd-plugins-namespace "$NS-plugins" \
  >"$T/dockerd.log" 2>&1 &
DOCKERD_PID=$!
D=(docker -H "unix://$SOCK")
for _ in $(seq 1 60); do
  "${D[@]}" version >/dev/null 2>&1 && break
  kill -0 "$DOCKERD_PID" 2>/dev/null || { cat "$T/dockerd.log" >&2; echo "dockerd exited" >&2; exit 1; }
  sleep 0.5
done
"${D[@]}" version >/dev/null || { tail -20 "$T/dockerd.log" >&2; exit 1; }
profile_line=$("${D[@]}" info 2>/dev/null | grep -A1 -i 'seccomp' | tr -s ' ' | tr '\n' ' ')
case "$profile_line" in
  *"$T/root/etc/docker/seccomp/workspace-seccomp.json"*) ok "dockerd reports the workspace profile as its default" ;;
  *) bad "dockerd does not report the workspace profile: $profile_line" ;;
esac

tar -C "$T/img" -c . | "${D[@]}" import - wsdtest/busybox:probe >/dev/null
RUN=("${D[@]}" run --rm --network none wsdtest/busybox:probe)

out=$("${RUN[@]}" /bin/busybox sh -c 'echo hello; /bin/busybox ls / >/dev/null && /bin/busybox wc -c </proc/self/status >/dev/null && echo done' 2>&1 || true)
expect "a normal busybox workload runs" "hello done" "$(echo "$out" | tr '\n' ' ' | sed 's/ $//')"
expect "seccomp is applied by default (Seccomp: 2)" "2" \
  "$("${RUN[@]}" /bin/busybox sed -n 's/^Seccomp:[[:space:]]*//p' /proc/self/status 2>&1)"
expect "no-new-privileges is applied by default (NoNewPrivs: 1)" "1" \
  "$("${RUN[@]}" /bin/busybox sed -n 's/^NoNewPrivs:[[:space:]]*//p' /proc/self/status 2>&1)"

UPSTREAM=$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import derive; print(derive.UPSTREAM)' "$ROOT/deployment/seccomp")
STOCK=(--security-opt "seccomp=$UPSTREAM")
expect "io_uring_setup under our profile" "errno=EPERM" "$("${RUN[@]}" /bin/seccomp_probe io_uring 2>&1 || true)"
expect "io_uring_setup unconfined (contrast: the kernel has it)" "ok" \
  "$("${D[@]}" run --rm --network none --security-opt seccomp=unconfined wsdtest/busybox:probe /bin/seccomp_probe io_uring 2>&1 || true)"
expect "io_uring_setup under the upstream Docker profile (gone since 25.0)" "errno=EPERM" \
  "$("${D[@]}" run --rm --network none "${STOCK[@]}" wsdtest/busybox:probe /bin/seccomp_probe io_uring 2>&1 || true)"
expect "ptrace(PTRACE_TRACEME) under our profile" "errno=EPERM" "$("${RUN[@]}" /bin/seccomp_probe ptrace 2>&1 || true)"
expect "ptrace(PTRACE_TRACEME) under the upstream Docker profile (contrast)" "ok" \
  "$("${D[@]}" run --rm --network none "${STOCK[@]}" wsdtest/busybox:probe /bin/seccomp_probe ptrace 2>&1 || true)"
expect "ptrace with CAP_SYS_PTRACE (conditional group kept)" "ok" \
  "$("${D[@]}" run --rm --network none --cap-add SYS_PTRACE wsdtest/busybox:probe /bin/seccomp_probe ptrace 2>&1 || true)"

unshare_rc() { "${D[@]}" run --rm --network none "$@" wsdtest/busybox:probe /bin/busybox unshare -m /bin/busybox true >/dev/null 2>&1 && echo 0 || echo 1; }
expect "unshare -m without CAP_SYS_ADMIN is refused" "1" "$(unshare_rc)"
expect "unshare -m with CAP_SYS_ADMIN works (conditional group intact)" "0" "$(unshare_rc --cap-add SYS_ADMIN)"

echo "dockerd seccomp test: $passed passed, $failures failed"
[[ $failures -eq 0 ]]
