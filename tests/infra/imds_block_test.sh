#!/bin/bash
# Attack test of ami/scripts/imds-block.sh in throw-away network namespaces:
#
#   ctr (172.31.99.2) --veth "dockert0"--> host (router, runs imds-block) --veth--> imds
#                                                                      (169.254.169.254,
#                                                                       169.254.170.2)
#
# Before the script the "container" reaches 169.254.169.254 through the host; after it,
# it does not, while 169.254.170.2 (the ECS credentials endpoint's address) still answers.
# Running the script twice leaves one rule per interface pattern (idempotent).
# Needs root, iproute2, iptables and busybox (for ping). Touches nothing outside its namespaces.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SCRIPT=$ROOT/ami/scripts/imds-block.sh
ID=$$
H=ibt-host-$ID
C=ibt-ctr-$ID
M=ibt-imds-$ID

cleanup() {
  for ns in "$H" "$C" "$M"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

fail() { echo "  FAIL  $*"; exit 1; }
ok() { echo "  ok    $*"; }

for ns in "$H" "$C" "$M"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done

ip -n "$H" link add dockert0 type veth peer name c0 netns "$C"
ip -n "$H" link add imds0 type veth peer name m0 netns "$M"
ip -n "$H" addr add 172.31.99.1/24 dev dockert0
ip -n "$H" addr add 169.254.0.1/16 dev imds0
ip -n "$H" link set dockert0 up
ip -n "$H" link set imds0 up
ip netns exec "$H" sysctl -qw net.ipv4.ip_forward=1

ip -n "$C" addr add 172.31.99.2/24 dev c0
ip -n "$C" link set c0 up
ip -n "$C" route add default via 172.31.99.1

ip -n "$M" addr add 169.254.169.254/16 dev m0
ip -n "$M" addr add 169.254.170.2/16 dev m0
ip -n "$M" link set m0 up
ip -n "$M" route add 172.31.99.0/24 via 169.254.0.1

reach() { ip netns exec "$C" busybox ping -c 1 -W 1 "$1" >/dev/null 2>&1; }

reach 169.254.169.254 || fail "baseline: the container cannot reach 169.254.169.254 even without the rule (test network broken)"
ok "without the rule the container reaches 169.254.169.254 through the host"

ip netns exec "$H" bash "$SCRIPT"
ip netns exec "$H" bash "$SCRIPT"

reach 169.254.169.254 && fail "after imds-block the container still reaches 169.254.169.254"
ok "after imds-block the container cannot reach 169.254.169.254"
reach 169.254.170.2 || fail "imds-block also cut 169.254.170.2"
ok "169.254.170.2 (ECS credentials endpoint address) is still reachable"

rules=$(ip netns exec "$H" iptables -w -S DOCKER-USER | grep -c -- '-d 169.254.169.254/32 .*-j DROP' || true)
[[ "$rules" == 3 ]] || fail "expected 3 DROP rules (docker+, br-+, ecs-bridge) after two runs, found $rules"
ok "two runs leave exactly one DROP rule per interface pattern"
jumps=$(ip netns exec "$H" iptables -w -S FORWARD | grep -c -- '-j DOCKER-USER' || true)
[[ "$jumps" == 1 ]] || fail "expected one FORWARD jump to DOCKER-USER, found $jumps"
ok "FORWARD jumps to DOCKER-USER once"
if ip netns exec "$H" ip6tables -w -n -L FORWARD >/dev/null 2>&1; then
  v6=$(ip netns exec "$H" ip6tables -w -S DOCKER-USER | grep -c -- '-d fd00:ec2::254/128 .*-j DROP' || true)
  [[ "$v6" == 3 ]] || fail "expected 3 IPv6 DROP rules for fd00:ec2::254, found $v6"
  ok "IPv6 metadata address fd00:ec2::254 dropped as well"
fi
