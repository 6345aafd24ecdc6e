#!/usr/bin/env bash
# Offline builder of the minimal workspace image: no registry, no base image.
# Assembles a root file system from busybox (Debian's busybox-static), the workspace
# agent binary with the shared libraries it links, /etc/passwd with uid 1000, and the
# mount points the runtime expects, then loads it with `docker import`.
#
# Usage: deployment/images/build-offline.sh [--release] [--tag NAME] [--agent PATH]
#   --release     build the agent with the release profile (default: dev, shared with tests)
#   --tag NAME    image name (default: $WORKSPACE_IMAGE or workspace-offline:latest)
#   --agent PATH  use this agent binary instead of building one
# The image is rebuilt only when the agent binary or this script changed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tag=${WORKSPACE_IMAGE:-workspace-offline:latest}
profile=dev
agent_bin=""
while (($#)); do
  case "$1" in
    --release) profile=release ;;
    --tag) tag=$2; shift ;;
    --agent) agent_bin=$2; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[image] %s\n' "$*" >&2; }

busybox=/bin/busybox
if [[ ! -x "$busybox" ]] || ldd "$busybox" >/dev/null 2>&1; then
  log "a static /bin/busybox is required: apt-get install busybox-static"
  exit 1
fi

if [[ -z "$agent_bin" ]]; then
  cargo_args=(build --quiet -p agent --bin workspace-agent)
  [[ "$profile" == release ]] && cargo_args+=(--release)
  log "building workspace-agent ($profile)"
  (cd "$repo" && cargo "${cargo_args[@]}")
  target_dir=$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  dir=debug
  [[ "$profile" == release ]] && dir=release
  agent_bin="$target_dir/$dir/workspace-agent"
fi
[[ -x "$agent_bin" ]] || { log "agent binary not found: $agent_bin"; exit 1; }

fingerprint=$(cat "$agent_bin" "${BASH_SOURCE[0]}" "$busybox" | sha256sum | cut -c1-16)
current=$(docker image inspect --format '{{ index .Config.Labels "io.agent-workspace.fingerprint" }}' "$tag" 2>/dev/null || true)
if [[ "$current" == "$fingerprint" ]]; then
  log "$tag is up to date ($fingerprint)"
  exit 0
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,usr/bin,usr/local/bin,etc,workspace,home/appuser,tmp,run/workspace,proc,sys,dev,opt/venv/bin}

cp "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list); do
  [[ "$applet" == busybox ]] || ln -sf busybox "$stage/bin/$applet"
done
cp "$agent_bin" "$stage/usr/local/bin/workspace-agent"
strip --strip-debug "$stage/usr/local/bin/workspace-agent" 2>/dev/null || true

# The agent's shared libraries (glibc, libgcc_s) and the dynamic loader, at the
# paths it was linked against.
while read -r lib; do
  [[ -n "$lib" && -e "$lib" ]] || continue
  mkdir -p "$stage$(dirname "$lib")"
  cp -L "$lib" "$stage$lib"
done < <(ldd "$agent_bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')

cat >"$stage/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
appuser:x:1000:1000:workspace user:/home/appuser:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$stage/etc/group" <<'GROUP'
root:x:0:
appuser:x:1000:
nogroup:x:65534:
GROUP
echo 'hosts: files' >"$stage/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$stage/etc/hosts"
chmod 1777 "$stage/tmp"
chown -R 1000:1000 "$stage/workspace" "$stage/home/appuser"

log "importing $tag ($fingerprint)"
tar --numeric-owner -C "$stage" -c . | docker import \
  --change 'USER 1000:1000' \
  --change 'WORKDIR /workspace' \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin HOME=/home/appuser' \
  --change 'CMD ["/usr/local/bin/workspace-agent"]' \
  --change "LABEL io.agent-workspace.image=offline io.agent-workspace.fingerprint=$fingerprint" \
  - "$tag" >/dev/null
log "built $tag"
