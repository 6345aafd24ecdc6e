#!/usr/bin/env bash
# Fetches the Claude Code CLI at the pinned version (claude-code.version) and prints the
# path of its native binary. The npm package `@anthropic-ai/claude-code` is a thin
# installer whose `optionalDependencies` pick a platform package; the linux-x64 one
# (`@anthropic-ai/claude-code-linux-x64`, glibc) holds the self-contained binary, which
# is all a workspace needs (no Node.js). `npm pack` downloads and checks it against the
# registry's integrity hash; the tarball and the extracted binary stay in the cache
# directory, so a machine that has them never downloads them again, and a fresh
# machine (CI) fetches them from npm once.
#
# Usage: deployment/images/fetch-claude-code.sh [--version V]
#   cache: $AGENT_WORKSPACES_CACHE (default ~/.cache/agent-workspaces)/claude-code/<V>/
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=$(tr -d '[:space:]' <"$here/claude-code.version")
while (($#)); do
  case "$1" in
    --version) version=$2; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[claude-code] %s\n' "$*" >&2; }

case "$(uname -m)" in
  x86_64) platform=linux-x64 ;;
  aarch64) platform=linux-arm64 ;;
  *) log "no Claude Code platform package for $(uname -m)"; exit 1 ;;
esac
package="@anthropic-ai/claude-code-$platform@$version"
cache=${AGENT_WORKSPACES_CACHE:-$HOME/.cache/agent-workspaces}
dir="$cache/claude-code/$version-$platform"
bin="$dir/claude"

if [[ -x "$bin" ]] && [[ "$("$bin" --version 2>/dev/null)" == "$version "* ]]; then
  log "cached: $bin"
  printf '%s\n' "$bin"
  exit 0
fi

command -v npm >/dev/null || { log "npm is required to fetch $package (apt-get install npm)"; exit 1; }
mkdir -p "$dir"
work=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "fetching $package (from the npm cache if it has it, else the registry)"
# --prefer-offline: the npm cache answers when it already has the package.
(cd "$work" && npm pack --silent --prefer-offline --cache "$cache/npm" "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
got=$("$work/package/claude" --version 2>/dev/null || true)
if [[ "$got" != "$version "* ]]; then
  log "the fetched binary reports '$got', expected $version"
  exit 1
fi
install -m 0755 "$work/package/claude" "$bin.tmp"
mv -f "$bin.tmp" "$bin"
log "installed $bin ($(du -h "$bin" | cut -f1))"
printf '%s\n' "$bin"
