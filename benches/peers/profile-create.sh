#!/usr/bin/env bash
# Where a lone create's time goes: one node of BIN (fresh data dir, 127.0.0.1), creates driven
# by wrk at CONNS connections (default 1) for SECS seconds, the node sampled meanwhile by
# `perf record` (call graphs by frame pointers where there are any, else DWARF). Prints wrk's
# figures and the hottest symbols, self time and with children, and keeps perf.data in OUT.
#   bash benches/peers/profile-create.sh BIN [SECS=10] [CONNS=1] [OUT=target/profile-create]
# Needs perf (Debian: linux-perf) and wrk; the release profile keeps debug info for symbols.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 BIN [SECS=10] [CONNS=1] [OUT=target/profile-create]" >&2; exit 2; }
bin=$(realpath "$1") secs=${2:-10} conns=${3:-1} out=${4:-target/profile-create}
if ! [[ $secs =~ ^[1-9][0-9]*$ && $conns =~ ^[1-9][0-9]*$ ]] || ((secs > 60)); then
  echo "SECS (1-60) and CONNS are positive integers" >&2
  exit 2
fi
for tool in perf wrk; do command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }; done
# shellcheck source=benches/peers/common.sh
. benches/peers/common.sh
work=$(mktemp -d)
pid=""
cleanup() {
  [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$out"
secret=profile-create-secret-profile-create-0123
bench_config "$work/node.toml" "$secret"
mapfile -t settings < <(bench_settings "$work/node.toml")
port=17390
"$bin" serve "${settings[@]}" --listen "127.0.0.1:$port" --data-dir "$work/data" \
  --set cluster.node_id=1 --set cluster.bootstrap=true > "$work/node.log" 2>&1 &
pid=$!
wait_for "the node" curl -sf "http://127.0.0.1:$port/readyz"
threads=1; ((conns >= 2)) && threads=2
"$bin" token --config "$work/node.toml" --user prof --count $((secs * 40000)) --ttl 2h |
  awk -v t="$threads" -v f="$work/tokens" '{ print > (f "." ((NR - 1) % t)) }'
# The warm-up's users are others (a user with an order would get 409 in the sampled run).
"$bin" token --config "$work/node.toml" --user warm --count 40000 --ttl 2h > "$work/warm.0"
slot="$(date -u -d tomorrow +%Y-%m-%d)T12:00:00Z"
# A second of warm-up (first connections, caches), then the sampled run.
SLOT=$slot TOKENS=$work/warm wrk -t1 -c1 -d1s -s benches/peers/create.lua "http://127.0.0.1:$port/v1/orders" >/dev/null 2>&1
perf record -F "${PERF_FREQ:-2999}" --call-graph "${PERF_CALLGRAPH:-fp}" -p "$pid" -o "$out/perf.data" -- sleep "$secs" 2> "$work/perf.log" &
perf_pid=$!
SLOT=$slot TOKENS=$work/tokens wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s benches/peers/create.lua \
  "http://127.0.0.1:$port/v1/orders" | grep -E "Requests/sec|50%|99%|Non-2xx|Socket"
wait "$perf_pid" || { cat "$work/perf.log" >&2; exit 1; }
# perf pads its columns to the widest symbol: the first 160 characters of each row.
echo "== self time (top 30)"
perf report -i "$out/perf.data" --no-children --stdio --sort symbol 2>/dev/null | grep -E '^ +[0-9]' | head -30 | cut -c1-160
echo "== with children (top 40)"
perf report -i "$out/perf.data" --children --stdio --sort symbol -g none 2>/dev/null | grep -E '^ +[0-9]' | head -40 | cut -c1-160
