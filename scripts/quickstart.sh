#!/usr/bin/env bash
# Quick start: on a fresh machine, installs what is missing (Docker engine, busybox,
# gVisor), starts dockerd, builds the control plane and the agent, builds the
# offline workspace image, starts the control plane on 127.0.0.1:8700, runs a demo
# conversation and prints how to call the API with curl.
#
# Usage: scripts/quickstart.sh          start (or restart) and run the demo
#        scripts/quickstart.sh --stop   stop the control plane (its workspaces are removed)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="$repo/.work/quickstart"
mkdir -p "$state"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agent-workspaces/target}
addr=${CP_LISTEN:-127.0.0.1:8700}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

stop() {
  if [[ -f "$state/pid" ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    say "stopping the control plane (pid $(cat "$state/pid"))"
    kill -TERM "$(cat "$state/pid")"
    for _ in $(seq 1 100); do
      kill -0 "$(cat "$state/pid")" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -f "$state/pid"
}

if [[ "${1:-}" == "--stop" ]]; then
  stop
  exit 0
fi

say "setting up the machine (idempotent)"
bash "$repo/scripts/setup.sh"

say "building the control plane and the agent"
(cd "$repo" && cargo build --quiet -p control-plane -p agent)

say "building the offline workspace image"
bash "$repo/deployment/images/build-offline.sh"

stop
# Two tokens: the demo tenant's (not an admin: it cannot change the pool or other
# tenants' settings) and an operator's (admin) for the pool.
for f in token admin-token; do
  [[ -f "$state/$f" ]] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$state/$f"
done
token=$(cat "$state/token")
admin_token=$(cat "$state/admin-token")

say "starting the control plane on http://$addr (log: $state/control-plane.log)"
CP_LISTEN=$addr \
  CP_API_TOKENS="demo:$token,operator:$admin_token:admin" \
  CP_FLEET=quickstart \
  CP_CLEANUP_ON_SHUTDOWN=true \
  CP_DOCKER__SOCKET_ROOT=/run/agent-workspaces/quickstart \
  nohup "$CARGO_TARGET_DIR/debug/control-plane" >"$state/control-plane.log" 2>&1 &
echo $! >"$state/pid"
for _ in $(seq 1 100); do
  curl -fsS "http://$addr/health/ready" >/dev/null 2>&1 && break
  kill -0 "$(cat "$state/pid")" 2>/dev/null || { cat "$state/control-plane.log"; exit 1; }
  sleep 0.1
done
curl -fsS "http://$addr/health/ready"
echo
# Give the warm pool a moment, so the demo is served from it.
for _ in $(seq 1 50); do
  curl -fsS "http://$addr/v1/pool" -H "Authorization: Bearer $admin_token" 2>/dev/null | grep -q '"size":[1-9]' && break
  sleep 0.2
done

say "demo: a command in the workspace of conversation 'demo-1' (events stream as SSE)"
# The $(...) below run inside the sandbox, not here.
# shellcheck disable=SC2016
curl -sS -N -X POST "http://$addr/v1/conversations/demo-1/execute" \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"mode":"command","shell":true,"argv":["echo \"hello from $(hostname) as $(id -un)\"; echo network: $(ls /sys/class/net); touch /x 2>&1 || true; echo 42 > answer.txt; ls -l"]}'

say "demo: the file the command wrote, read through the API"
curl -sS "http://$addr/v1/conversations/demo-1/files?path=answer.txt" -H "Authorization: Bearer $token"

say "demo: the sandbox's only way out is its egress proxy, which refuses unlisted hosts"
curl -sS -N -X POST "http://$addr/v1/conversations/demo-1/execute" \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"mode":"command","shell":true,"argv":["wget -q -O - http://example.com/ 2>&1; wget -q -O - http://169.254.169.254/ 2>&1; true"]}'

cat <<EOT

The control plane keeps running (pid $(cat "$state/pid")). Try:

  export CP=http://$addr TOKEN=$token
  curl -N -X POST \$CP/v1/conversations/my-conv/execute -H "Authorization: Bearer \$TOKEN" \\
       -H 'Content-Type: application/json' -d '{"mode":"command","argv":["uname","-a"]}'
  curl -X PUT --data-binary @README.md "\$CP/v1/conversations/my-conv/files?path=README.md" -H "Authorization: Bearer \$TOKEN"
  curl "\$CP/v1/conversations/my-conv/files/list?recursive=true" -H "Authorization: Bearer \$TOKEN"
  curl \$CP/v1/workspaces -H "Authorization: Bearer \$TOKEN"
  curl -X DELETE \$CP/v1/conversations/my-conv/workspace -H "Authorization: Bearer \$TOKEN"
  curl \$CP/metrics

API reference: docs/api.md. Stop it (and remove its workspaces): scripts/quickstart.sh --stop
EOT
