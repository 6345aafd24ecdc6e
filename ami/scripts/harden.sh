#!/bin/bash
# harden.sh [TARGET_ROOT]
#
# Installs the workspace host's hardening files from this ami/ directory into TARGET_ROOT
# (default /). Packer runs it on the build instance with TARGET_ROOT=/; tests run it into a
# temporary directory. Idempotent: a second run leaves the same tree. It changes nothing
# outside TARGET_ROOT and starts no service (systemd units are enabled by symlink).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${1:-/}
ROOT=${ROOT%/}

if [[ -n "$ROOT" && ! -d "$ROOT" ]]; then
  echo "harden.sh: target root '$ROOT' is not a directory" >&2
  exit 2
fi

for f in daemon.json workspace-seccomp.json ecs.config imds-block.service \
  sysctl-hardening.conf scripts/imds-block.sh; do
  if [[ ! -f "$SRC/$f" ]]; then
    echo "harden.sh: missing source file $SRC/$f" >&2
    exit 2
  fi
done

# Refuse malformed JSON before it can stop dockerd from starting on every host.
if command -v python3 >/dev/null 2>&1; then
  for f in daemon.json workspace-seccomp.json; do
    python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$SRC/$f" || {
      echo "harden.sh: $SRC/$f is not valid JSON" >&2
      exit 2
    }
  done
fi

say() { echo "harden.sh: $*"; }

say "installing into ${ROOT:-/}"
install -D -m 0644 "$SRC/daemon.json" "$ROOT/etc/docker/daemon.json"
install -D -m 0644 "$SRC/workspace-seccomp.json" "$ROOT/etc/docker/seccomp/workspace-seccomp.json"
install -D -m 0644 "$SRC/ecs.config" "$ROOT/etc/ecs/ecs.config"
install -D -m 0644 "$SRC/sysctl-hardening.conf" "$ROOT/etc/sysctl.d/90-workspace-host.conf"
install -D -m 0755 "$SRC/scripts/imds-block.sh" "$ROOT/usr/local/sbin/workspace-imds-block"
install -D -m 0644 "$SRC/imds-block.service" "$ROOT/etc/systemd/system/workspace-imds-block.service"

# Enable the unit the way `systemctl enable` would (WantedBy= and RequiredBy=), without
# needing a running systemd.
for dir in multi-user.target.wants docker.service.requires; do
  mkdir -p "$ROOT/etc/systemd/system/$dir"
  ln -sfn ../workspace-imds-block.service "$ROOT/etc/systemd/system/$dir/workspace-imds-block.service"
done

if [[ -z "$ROOT" ]] && [[ -d /run/systemd/system ]]; then
  systemctl daemon-reload
fi
say "done"
