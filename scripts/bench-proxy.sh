#!/usr/bin/env bash
# Benchmark the egress proxy beside direct access, squid and tinyproxy, in one run,
# on loopback, and print a comparison table.
#
#   scripts/bench-proxy.sh                 # 3 rounds, 5 s per measurement
#   BENCH_SECONDS=10 BENCH_CONNS=32 BENCH_ROUNDS=5 scripts/bench-proxy.sh
#
# Needs: cargo, squid, tinyproxy (Debian packages `squid`, `tinyproxy`).
# Measures, for each of direct / proxy-sidecar / squid / tinyproxy:
#   - latency p50/p99 of sequential keep-alive GETs on one connection (64-byte body),
#   - requests/s with BENCH_CONNS concurrent keep-alive connections,
#   - CONNECT tunnel download throughput (one stream).
# The load generator (proxy-sidecar/examples/bench.rs) runs on one thread. Targets are
# measured in interleaved rounds and the median of the rounds is reported, so a load
# spike on a shared machine does not favour whichever target ran at a quiet moment.
set -euo pipefail

secs=${BENCH_SECONDS:-5}
conns=${BENCH_CONNS:-16}
rounds=${BENCH_ROUNDS:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}

for tool in squid tinyproxy; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "bench-proxy: '$tool' not found; install the Debian package '$tool'" >&2
    exit 1
  fi
done

echo "bench-proxy: building (release)..." >&2
cargo build --quiet --release -p proxy-sidecar --bin proxy-sidecar --example bench
bin=$CARGO_TARGET_DIR/release
bench=$bin/examples/bench

tmp=$(mktemp -d)
chmod 0777 "$tmp"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

port() { "$bench" free-port; }
wait_port() {
  local p=$1 name=$2
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "bench-proxy: $name did not start on port $p" >&2
  exit 1
}

http_port=$(port)
source_port=$(port)
proxy_port=$(port)
admin_port=$(port)
squid_port=$(port)
tiny_port=$(port)

"$bench" upstream --http "127.0.0.1:$http_port" --source "127.0.0.1:$source_port" &
pids+=($!)
wait_port "$http_port" upstream

cat >"$tmp/proxy.toml" <<EOF
listen = "127.0.0.1:$proxy_port"
admin_listen = "127.0.0.1:$admin_port"
audit = "/dev/null"
[policy]
allow = [
  { host = "127.0.0.1:$http_port", allow_private = true },
  { host = "127.0.0.1:$source_port", allow_private = true },
]
EOF
RUST_LOG=warn "$bin/proxy-sidecar" --config "$tmp/proxy.toml" 2>"$tmp/proxy.log" &
pids+=($!)
wait_port "$proxy_port" proxy-sidecar

cat >"$tmp/squid.conf" <<EOF
http_port 127.0.0.1:$squid_port
http_access allow all
cache deny all
cache_mem 8 MB
access_log none
cache_log $tmp/squid-cache.log
pid_filename $tmp/squid.pid
coredump_dir $tmp
forwarded_for delete
via off
shutdown_lifetime 1 seconds
EOF
squid -N -f "$tmp/squid.conf" >"$tmp/squid.out" 2>&1 &
pids+=($!)
wait_port "$squid_port" squid

cat >"$tmp/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port $tiny_port
Listen 127.0.0.1
Timeout 600
MaxClients 256
Allow 127.0.0.1
LogLevel Critical
PidFile "$tmp/tinyproxy.pid"
DisableViaHeader Yes
EOF
tinyproxy -d -c "$tmp/tinyproxy.conf" >"$tmp/tinyproxy.out" 2>&1 &
pids+=($!)
wait_port "$tiny_port" tinyproxy

field() { jq -r ".$2" <<<"$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

names=(direct proxy-sidecar squid tinyproxy)
declare -A via=([direct]="" [proxy-sidecar]="127.0.0.1:$proxy_port" [squid]="127.0.0.1:$squid_port" [tinyproxy]="127.0.0.1:$tiny_port")
declare -A all_rps all_p50 all_p99 all_tun

for round in $(seq 1 "$rounds"); do
  for name in "${names[@]}"; do
    args=()
    if [[ -n ${via[$name]} ]]; then
      args=(--proxy "${via[$name]}")
    fi
    echo "bench-proxy: round $round/$rounds: $name..." >&2
    out=$("$bench" latency --target "127.0.0.1:$http_port" "${args[@]}" --seconds "$secs")
    all_p50[$name]+=" $(field "$out" p50_us)"
    all_p99[$name]+=" $(field "$out" p99_us)"
    out=$("$bench" rps --target "127.0.0.1:$http_port" "${args[@]}" --conns "$conns" --seconds "$secs")
    all_rps[$name]+=" $(field "$out" rps)"
    out=$("$bench" tunnel --target "127.0.0.1:$source_port" "${args[@]}" --seconds "$secs")
    all_tun[$name]+=" $(field "$out" mib_s)"
  done
done

declare -A rps p50 p99 tun
for name in "${names[@]}"; do
  # shellcheck disable=SC2086 # word splitting of the collected samples is intended
  {
    rps[$name]=$(median ${all_rps[$name]})
    p50[$name]=$(median ${all_p50[$name]})
    p99[$name]=$(median ${all_p99[$name]})
    tun[$name]=$(median ${all_tun[$name]})
  }
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo
echo "Machine: $(nproc) CPUs ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
echo "Versions: $(squid -v | head -1), $(tinyproxy -v 2>&1 | head -1), proxy-sidecar $("$bin/proxy-sidecar" --version | awk '{print $2}')"
echo "Settings: median of $rounds interleaved rounds, ${secs}s per measurement, ${conns} connections for req/s, 64-byte responses, one client thread"
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '| %-13s | %9s | %8s | %8s | %11s | %11s | %12s | %9s |\n' \
  target "req/s" "p50 µs" "p99 µs" "added p50" "added p99" "tunnel MiB/s" "vs direct"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' "---------------" "-----------" "----------" "----------" "-------------" "-------------" "--------------" "-----------"
for name in "${names[@]}"; do
  read -r a50 a99 ratio < <(awk -v p50="${p50[$name]}" -v p99="${p99[$name]}" -v d50="${p50[direct]}" -v d99="${p99[direct]}" \
    -v t="${tun[$name]}" -v dt="${tun[direct]}" \
    'BEGIN { printf "%.1f %.1f %.0f%%\n", p50-d50, p99-d99, 100*t/dt }')
  printf '| %-13s | %9s | %8s | %8s | %8s µs | %8s µs | %12s | %9s |\n' \
    "$name" "${rps[$name]}" "${p50[$name]}" "${p99[$name]}" "$a50" "$a99" "${tun[$name]}" "$ratio"
done
echo
awk -v o="${rps[proxy-sidecar]}" -v s="${rps[squid]}" -v t="${rps[tinyproxy]}" \
  'BEGIN { printf "proxy-sidecar throughput: %.2fx squid, %.2fx tinyproxy\n", o/s, o/t }'
awk -v a50="${p50[proxy-sidecar]}" -v a99="${p99[proxy-sidecar]}" -v d50="${p50[direct]}" -v d99="${p99[direct]}" \
  -v o="${rps[proxy-sidecar]}" -v s="${rps[squid]}" -v t="${tun[proxy-sidecar]}" -v dt="${tun[direct]}" 'BEGIN {
    printf "targets: added p50 <= 200 µs: %s; added p99 <= 1000 µs: %s; req/s >= 2x squid: %s; tunnel >= 80%% of direct: %s\n",
      (a50-d50 <= 200 ? "met" : "MISSED"), (a99-d99 <= 1000 ? "met" : "MISSED"),
      (o >= 2*s ? "met" : "MISSED"), (t >= 0.8*dt ? "met" : "MISSED")
  }'
