#!/usr/bin/env bash
# The stage_* functions are called indirectly, by name:
# shellcheck disable=SC2317
# Runs every test of the project on this machine: installs and starts what the tests
# need (scripts/setup.sh --test), runs the static checks, builds the offline
# workspace images (busybox, and the Claude Code one for agent mode), then the Rust
# tests (unit, integration against the real Docker engine, Redis and moto), and the
# infrastructure suite. Every stage runs; the
# summary lists each with its result and time; the exit code is non-zero if any
# stage failed.
#
# Usage: scripts/test.sh [stage ...]   (default: all stages; see `stages` below)
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agent-workspaces/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export TF_IN_AUTOMATION=1

stages=(setup static image rust infra)
[[ $# -gt 0 ]] && stages=("$@")

stage_setup() { bash scripts/setup.sh --test; }

stage_static() {
  local rc=0
  cargo fmt --all -- --check || rc=1
  cargo clippy --workspace --all-targets --quiet -- -D warnings || rc=1
  mapfile -t scripts < <(git ls-files '*.sh' .ci/run; git ls-files --others --exclude-standard '*.sh')
  shellcheck "${scripts[@]}" || rc=1
  # Dependency policy (deny.toml). Not `advisories`: it fetches the RustSec database
  # from GitHub, which these machines cannot reach; run it where they can.
  cargo deny check --hide-inclusion-graph licenses bans sources || rc=1
  python3 deployment/seccomp/derive.py --check || rc=1
  promtool check config monitoring/prometheus/prometheus.yml || rc=1
  promtool test rules monitoring/prometheus/alerts/workspace-alerts.test.yml || rc=1
  return "$rc"
}

# The offline image, and the agent-mode image with the real Claude Code CLI (fetched
# from npm once, then reused from ~/.cache/agent-workspaces).
stage_image() {
  bash deployment/images/build-offline.sh &&
    bash deployment/images/build-offline.sh --claude
}

stage_rust() {
  cargo test --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-2}"
}

stage_infra() {
  local rc=0
  bash tests/infra/run.sh || rc=1
  python3 deployment/s3/check.py || rc=1
  return "$rc"
}

declare -A result took
overall=0
for s in "${stages[@]}"; do
  if ! declare -F "stage_$s" >/dev/null; then
    echo "unknown stage: $s (known: setup static image rust infra)" >&2
    exit 2
  fi
  printf '\n===== stage %s =====\n' "$s"
  start=$(date +%s)
  if "stage_$s"; then result[$s]=pass; else result[$s]=FAIL; overall=1; fi
  took[$s]=$(($(date +%s) - start))
  # Without the engine and the image, the Rust tests cannot mean anything.
  if [[ "$s" == setup || "$s" == image ]] && [[ "${result[$s]}" == FAIL ]]; then
    echo "stage $s failed; later stages need it" >&2
    break
  fi
done

printf '\n===== summary =====\n'
for s in "${stages[@]}"; do
  [[ -n "${result[$s]:-}" ]] && printf '%-8s %-5s %4ss\n' "$s" "${result[$s]}" "${took[$s]}"
done
exit $overall
