#!/usr/bin/env bash
# Offline builder of the minimal workspace image: no registry, no base image.
# Assembles a root file system from busybox (Debian's busybox-static), the workspace
# agent binary with the shared libraries it links, /etc/passwd with uid 1000, and the
# mount points the runtime expects, then loads it with `docker import`.
# With --claude it adds the real Claude Code CLI (the native linux-x64 binary of
# `@anthropic-ai/claude-code`, at the version pinned in claude-code.version) and
# Debian's bash, which the CLI's Bash tool runs: the agent-mode image.
#
# Usage: deployment/images/build-offline.sh [--release] [--tag NAME] [--agent PATH] [--claude]
#   --release     build the agent with the release profile (default: dev, shared with tests)
#   --tag NAME    image name (default: $WORKSPACE_IMAGE or workspace-offline:latest;
#                 with --claude: $WORKSPACE_CLAUDE_IMAGE or workspace-claude:latest)
#   --agent PATH  use this agent binary instead of building one
#   --claude      add the Claude Code CLI and bash (fetched once by fetch-claude-code.sh
#                 into ~/.cache/agent-workspaces, then reused offline)
# The image is rebuilt only when the agent binary, the CLI or this script changed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tag=""
profile=dev
agent_bin=""
claude=false
while (($#)); do
  case "$1" in
    --release) profile=release ;;
    --tag) tag=$2; shift ;;
    --agent) agent_bin=$2; shift ;;
    --claude) claude=true ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

if [[ -z "$tag" ]]; then
  if $claude; then tag=${WORKSPACE_CLAUDE_IMAGE:-workspace-claude:latest}
  else tag=${WORKSPACE_IMAGE:-workspace-offline:latest}; fi
fi

log() { printf '[image] %s\n' "$*" >&2; }

extras=()
claude_version=""
if $claude; then
  claude_version=$(tr -d '[:space:]' <"$repo/deployment/images/claude-code.version")
  claude_bin=$(bash "$repo/deployment/images/fetch-claude-code.sh")
  bash_bin=/bin/bash
  [[ -x "$bash_bin" ]] || { log "bash is required for --claude"; exit 1; }
  extras=("$claude_bin" "$bash_bin")
fi

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

fingerprint=$(cat "$agent_bin" "${BASH_SOURCE[0]}" "$busybox" "${extras[@]}" | sha256sum | cut -c1-16)
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

# The shared libraries a binary links (glibc, libgcc_s, ...) and the dynamic loader,
# at the paths it was linked against.
copy_libs() {
  local lib
  while read -r lib; do
    [[ -n "$lib" && -e "$lib" ]] || continue
    mkdir -p "$stage$(dirname "$lib")"
    cp -L "$lib" "$stage$lib"
  done < <(ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
}
copy_libs "$agent_bin"

labels="io.agent-workspace.image=offline"
if $claude; then
  # /bin/bash is Debian's bash (not a busybox link); /bin/sh stays busybox.
  rm -f "$stage/bin/bash"
  cp "$bash_bin" "$stage/bin/bash"
  copy_libs "$bash_bin"
  install -m 0755 "$claude_bin" "$stage/usr/local/bin/claude"
  copy_libs "$claude_bin"
  labels="io.agent-workspace.image=claude io.agent-workspace.claude-code-version=$claude_version"
fi

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
  --change "LABEL $labels io.agent-workspace.fingerprint=$fingerprint" \
  - "$tag" >/dev/null
log "built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | numfmt --to=si)B)"
