#!/bin/bash
# workspace-imds-block: drop traffic from container interfaces to the instance metadata
# service. Installed by harden.sh as /usr/local/sbin/workspace-imds-block and run by
# workspace-imds-block.service before Docker and the ECS agent start. Idempotent.
#
# The rules live in Docker's DOCKER-USER chain, which Docker keeps (and jumps to first
# from FORWARD) across restarts; the chain and the jump are created here when Docker has
# not started yet. awsvpc tasks are covered too by ECS_AWSVPC_BLOCK_IMDS=true; this is the
# second layer for bridge-mode containers and the awsvpc ecs-bridge.
set -euo pipefail

IPTABLES=${IPTABLES:-iptables}
IP6TABLES=${IP6TABLES:-ip6tables}
IFACES=("docker+" "br-+" "ecs-bridge")

ensure_rules() {
  local ipt=$1 dest=$2 iface
  "$ipt" -w -n -L DOCKER-USER >/dev/null 2>&1 || "$ipt" -w -N DOCKER-USER
  "$ipt" -w -C FORWARD -j DOCKER-USER 2>/dev/null || "$ipt" -w -I FORWARD 1 -j DOCKER-USER
  for iface in "${IFACES[@]}"; do
    if ! "$ipt" -w -C DOCKER-USER -i "$iface" -d "$dest" -j DROP 2>/dev/null; then
      "$ipt" -w -I DOCKER-USER 1 -i "$iface" -d "$dest" -j DROP
    fi
  done
}

ensure_rules "$IPTABLES" 169.254.169.254/32
if command -v "$IP6TABLES" >/dev/null 2>&1 && "$IP6TABLES" -w -n -L FORWARD >/dev/null 2>&1; then
  ensure_rules "$IP6TABLES" fd00:ec2::254/128
fi
