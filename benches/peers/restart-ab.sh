#!/usr/bin/env bash
# Two builds' recovery after kill -9, side by side: for each build and round, one node (fresh
# data dir, 127.0.0.1) takes creates from wrk at 64 connections for SECS, is killed with
# SIGKILL the moment wrk stops (no graceful anything), and is started again on the same data;
# printed: the orders wrk saw acknowledged, the orders the restarted node holds (from
# /admin/check once it holds them all, or its count stood still for 3 s: never fewer), the
# node's resident memory (VmRSS) and the Raft log's size on disk at the kill, and the time from
# the restart to /readyz answering 200. Builds alternate; rounds are independent.
#   bash benches/peers/restart-ab.sh A_BIN B_BIN [ROUNDS=3] [SECS=5]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { echo "usage: $0 A_BIN B_BIN [ROUNDS=3] [SECS=5]" >&2; exit 2; }
a_bin=$(realpath "$1") rounds=${3:-3} secs=${4:-5}
b_bin=$(realpath "$2"); export b_bin  # read through ${!bin}
[[ $rounds =~ ^[1-9]$ && $secs =~ ^[1-9][0-9]?$ ]] || { echo "ROUNDS 1 to 9, SECS 1 to 99" >&2; exit 2; }
# shellcheck source=benches/peers/common.sh
. benches/peers/common.sh
need_wrk
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
secret=restart-ab-secret-restart-ab-secret-0123
cfg=$work/node.toml
bench_config "$cfg" "$secret"
mapfile -t common < <(bench_settings "$cfg")
port=17330
admin=$("$a_bin" token --config "$cfg" --user restart-admin --admin --ttl 2h)
start() { # bin dir
  "$1" serve "${common[@]}" --listen "127.0.0.1:$port" --data-dir "$2" --set cluster.node_id=1 \
    --set cluster.bootstrap=true > "$2.log" 2>&1 &
  pid=$!
}
ready_ms() { # → ms until /readyz is 200, at most 60 s
  local t0 deadline
  t0=$(now_ms); deadline=$((t0 + 60000))
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    (($(now_ms) < deadline)) || { echo "not ready after 60 s" >&2; tail -5 "$dir.log" >&2; exit 1; }
    sleep 0.005
  done
  echo $(($(now_ms) - t0))
}
tomorrow=$(date -u -d tomorrow +%Y-%m-%d)
echo "| build | round | acknowledged | held after restart | RSS at the kill | log on disk at the kill | restart to ready |"
echo "|---|---|---|---|---|---|---|"
for r in $(seq "$rounds"); do
  order=(a b); ((r % 2)) || order=(b a)
  for build in "${order[@]}"; do
    bin=${build}_bin; bin=${!bin}
    dir=$work/$build-$r
    start "$bin" "$dir"
    ready_ms > /dev/null
    "$a_bin" token --config "$cfg" --user "r$r$build" --count $((secs * 25000)) --ttl 2h |
      awk -v f="$work/tokens" '{ print > (f "." ((NR - 1) % 2)) }'
    out=$(SLOT="${tomorrow}T12:00:00Z" TOKENS=$work/tokens \
      wrk -t2 -c64 -d"${secs}s" --timeout 5s -s benches/peers/create.lua "http://127.0.0.1:$port/v1/orders" 2>&1) || true
    rss_mib=$(awk '/^VmRSS:/ {print int($2 / 1024)}' "/proc/$pid/status")
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    rm -f "$work"/tokens.*
    acked=$(awk '/requests in/ {n = $1} /Non-2xx/ {bad = $NF} END {print n - bad}' <<<"$out")
    log_bytes=$(du -sb "$dir/raft-log" | cut -f1)
    start "$bin" "$dir"
    ms=$(ready_ms)
    # Ready comes while the node may still re-apply the tail of its log: count until the
    # count holds the acknowledged orders or stops moving.
    held=0 previous=-1 settle=0
    while ((held < acked && settle < 3)); do
      held=$(curl -sS --max-time 60 -H "authorization: Bearer $admin" "http://127.0.0.1:$port/admin/check" |
        python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["orders"]) if "orders" in d else sys.exit(str(d))' || echo 0)
      if ((held == previous)); then settle=$((settle + 1)); else settle=0; fi
      previous=$held
      ((held >= acked)) || sleep 1
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    echo "| $build | $r | $acked | $held | $rss_mib MiB | $((log_bytes / 1024)) KiB | $ms ms |"
    ((held >= acked)) || echo "build $build round $r: LOST $((acked - held)) acknowledged orders" >&2
    rm -rf "$dir"
  done
done
