#!/usr/bin/env bash
# Runs the lifecycle benchmark (control-plane/examples/bench_lifecycle.rs: cold and
# warm create-to-first-output, the API relay's added latency) of an earlier revision
# and of the working tree in one session, alternating, so a before/after comparison
# shares the machine's state. Prints each round's tables, labelled.
#
#   scripts/bench-lifecycle-compare.sh 583806b            # 2 rounds each
#   ROUNDS=3 RUNS=20 WARM_RUNS=100 scripts/bench-lifecycle-compare.sh <rev>
#
# Needs: dockerd and the offline image (scripts/setup.sh,
# deployment/images/build-offline.sh). Builds both in release mode (each in its own
# target directory under ~/.cache/agent-workspaces).
set -euo pipefail

rev=${1:?usage: $0 <git revision to compare with>}
rounds=${ROUNDS:-2}
runs=${RUNS:-20}
warm_runs=${WARM_RUNS:-100}
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=$HOME/.cache/agent-workspaces
old_tree=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$old_tree" >/dev/null 2>&1 || true' EXIT

git -C "$repo" worktree add --detach "$old_tree" "$rev" >/dev/null
echo "[compare] building $rev" >&2
(cd "$old_tree" && CARGO_TARGET_DIR=$cache/bench-before cargo build --release -q \
  -p control-plane --example bench_lifecycle)
echo "[compare] building the working tree" >&2
(cd "$repo" && CARGO_TARGET_DIR=$cache/bench-after cargo build --release -q \
  -p control-plane --example bench_lifecycle)

for round in $(seq 1 "$rounds"); do
  for side in before after; do
    echo
    echo "## round $round, $side ($([[ $side == before ]] && echo "$rev" || echo "working tree"))"
    "$cache/bench-$side/release/examples/bench_lifecycle" --runs "$runs" --warm-runs "$warm_runs"
  done
done
