#!/usr/bin/env bash
# What authentication costs an API read. One release daemon, pinned to CPU 1, saturated by wrk
# pinned to CPU 0; the server's time per request is 1 / throughput. Auth's cost is the keyed
# trivial route (/api/v1/whoami) minus the public trivial route (/healthz); it is reported as a
# share of a real registry read (/api/v1/graph, keyed).
# Usage: bench/auth.sh [seconds per run] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
runs=${2:-3}
bin=target/release/steward
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

{ printf '[api.rate_limits]\nviewer = 1000000\nadmin = 1000000\n'; cat examples/vizion/steward.toml; } > "$work/steward.toml"
STEWARD_LOG=warn taskset -c 1 "$bin" up --config "$work/steward.toml" --data-dir "$work/data" --listen 127.0.0.1:0 > "$work/out" 2>/dev/null &
for _ in $(seq 1 100); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.05; done
url=$(sed -n 's/^steward listening on //p' "$work/out")
key=$(sed -n 's/^admin key (shown once, store it now): //p' "$work/out")

rate() { # $1 = path, $2.. = extra wrk args; prints requests/s
  taskset -c 0 wrk -t1 -c16 -d"${seconds}s" "${@:2}" "$url$1" | awk '/Requests\/sec/ {print $2}'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -a health whoami graph
for _ in $(seq 1 "$runs"); do
  health+=("$(rate /healthz)")
  whoami+=("$(rate /api/v1/whoami -H "Authorization: Bearer $key")")
  graph+=("$(rate /api/v1/graph -H "Authorization: Bearer $key")")
done
h=$(printf '%s\n' "${health[@]}" | median)
w=$(printf '%s\n' "${whoami[@]}" | median)
g=$(printf '%s\n' "${graph[@]}" | median)
awk -v h="$h" -v w="$w" -v g="$g" -v runs="$runs" 'BEGIN {
  th = 1e6 / h; tw = 1e6 / w; tg = 1e6 / g; auth = tw - th
  printf "medians of %d runs, server on one core:\n", runs
  printf "  /healthz (public)       %8.0f req/s  %6.1f us/request\n", h, th
  printf "  /api/v1/whoami (keyed)  %8.0f req/s  %6.1f us/request\n", w, tw
  printf "  /api/v1/graph (keyed)   %8.0f req/s  %6.1f us/request\n", g, tg
  printf "auth costs %.1f us per request = %.1f%% of a registry read\n", auth, 100 * auth / tg
}'
