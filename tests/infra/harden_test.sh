#!/bin/bash
# ami/scripts/harden.sh into a temporary root: the expected files, modes and unit links,
# the very same seccomp profile as deployment/seccomp/, an idempotent second run, and a
# clear refusal of a missing target. Needs bash, python3, sha256sum.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HARDEN=$ROOT/ami/scripts/harden.sh
T=$(mktemp -d /tmp/harden-test.XXXXXX)
trap 'rm -rf "$T"' EXIT

failures=0
passed=0
ok() { echo "  ok    $*"; passed=$((passed + 1)); }
bad() { echo "  FAIL  $*"; failures=$((failures + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

if cmp -s "$ROOT/ami/workspace-seccomp.json" "$ROOT/deployment/seccomp/workspace-seccomp.json"; then
  ok "ami/workspace-seccomp.json is byte-identical to deployment/seccomp/workspace-seccomp.json"
else
  bad "ami/workspace-seccomp.json differs from deployment/seccomp/workspace-seccomp.json (copy it again)"
fi

if bash "$HARDEN" "$T/root1" >/dev/null 2>&1; then
  bad "harden.sh accepted a missing target root"
else
  ok "harden.sh refuses a missing target root"
fi

mkdir -p "$T/root"
bash "$HARDEN" "$T/root" >/dev/null
R=$T/root

mode() { stat -c %a "$1"; }
check "daemon.json installed (0644)" test "$(mode "$R/etc/docker/daemon.json")" = 644
check "seccomp profile installed (0644)" test "$(mode "$R/etc/docker/seccomp/workspace-seccomp.json")" = 644
check "installed seccomp profile is the deployment/seccomp one" \
  cmp -s "$R/etc/docker/seccomp/workspace-seccomp.json" "$ROOT/deployment/seccomp/workspace-seccomp.json"
check "ecs.config installed" cmp -s "$R/etc/ecs/ecs.config" "$ROOT/ami/ecs.config"
check "ecs.config blocks IMDS for awsvpc tasks" grep -qx 'ECS_AWSVPC_BLOCK_IMDS=true' "$R/etc/ecs/ecs.config"
check "ecs.config enables the warm-pool check" grep -qx 'ECS_WARM_POOLS_CHECK=true' "$R/etc/ecs/ecs.config"
check "ecs.config bounds every task's pids" grep -qx 'ECS_TASK_PIDS_LIMIT=1024' "$R/etc/ecs/ecs.config"
check "ecs.config has no ECS_ENABLE_TASK_ENI_TRUNKING (not an agent setting)" \
  bash -c "! grep -q ECS_ENABLE_TASK_ENI_TRUNKING '$R/etc/ecs/ecs.config'"
check "sysctl hardening installed" grep -q '^kernel.unprivileged_bpf_disabled = 1' "$R/etc/sysctl.d/90-workspace-host.conf"
check "imds-block script installed executable (0755)" test "$(mode "$R/usr/local/sbin/workspace-imds-block")" = 755
check "imds-block unit installed" test -f "$R/etc/systemd/system/workspace-imds-block.service"
check "unit runs the installed script" grep -qx 'ExecStart=/usr/local/sbin/workspace-imds-block' "$R/etc/systemd/system/workspace-imds-block.service"
check "unit ordered before docker and ecs" grep -qx 'Before=docker.service ecs.service' "$R/etc/systemd/system/workspace-imds-block.service"
for link in multi-user.target.wants docker.service.requires; do
  check "unit enabled via $link" \
    test "$(readlink "$R/etc/systemd/system/$link/workspace-imds-block.service")" = ../workspace-imds-block.service
done

check "daemon.json: seccomp profile, no-new-privileges, log rotation" python3 - "$R/etc/docker/daemon.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["seccomp-profile"] == "/etc/docker/seccomp/workspace-seccomp.json", d
assert d["no-new-privileges"] is True, d
assert d["log-driver"] == "json-file" and d["log-opts"]["max-size"] and d["log-opts"]["max-file"], d
PY

tree_hash() { (cd "$1" && find . -printf '%p %y %m %l\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
before=$(tree_hash "$R")
bash "$HARDEN" "$R" >/dev/null
after=$(tree_hash "$R")
check "a second run leaves the same tree (idempotent)" test "$before" = "$after"

files=$(cd "$R" && find . -type f -o -type l | sort | tr '\n' ' ')
expected="./etc/docker/daemon.json ./etc/docker/seccomp/workspace-seccomp.json ./etc/ecs/ecs.config ./etc/sysctl.d/90-workspace-host.conf ./etc/systemd/system/docker.service.requires/workspace-imds-block.service ./etc/systemd/system/multi-user.target.wants/workspace-imds-block.service ./etc/systemd/system/workspace-imds-block.service ./usr/local/sbin/workspace-imds-block "
check "nothing else is written into the root" test "$files" = "$expected"

echo "harden.sh: $passed passed, $failures failed"
[[ $failures -eq 0 ]]
