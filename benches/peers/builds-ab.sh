#!/usr/bin/env bash
# Two builds of pizza-orders side by side, creates driven by wrk: each build runs one node and a
# three-node cluster at once (fresh data dirs, 127.0.0.1), and every point alternates the builds
# (which goes first alternates by round). Used for the Raft log evaluation (the default build
# against `cargo build --release --features raft-log-eval`, docs/design.md "The Raft log").
#   bash benches/peers/builds-ab.sh A_BIN B_BIN [SECS=5] [ROUNDS=3] [CONNS="1 64"]
# Creates as in wrk.sh: every request a new user (tokens from `token --count`, a disjoint slice
# per wrk thread, benches/peers/create.lua), one half-hour delivery slot per round and build
# (tomorrow from 06:00Z), capacity 1 000 000; writes go to the leader. Printed: per point the
# rate of each round, the medians of rate and p50, B/A; the CPU the build's nodes used per
# create (user + system, all three nodes for the cluster, the busy poller left out, from /proc:
# steadier than the rate on a shared host, where a neighbour takes the build's time but not its
# CPU); then wrk's non-2xx and socket errors summed (none expected).
# An older release may not know some of the settings (v0.1.0, f777dd9, has no `analytics` or
# `limits`): each build is started once on a scratch directory first, and a setting its
# configuration refuses as an unknown field is dropped for that build and named on stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { echo "usage: $0 A_BIN B_BIN [SECS=5] [ROUNDS=3] [CONNS=\"1 64\"]" >&2; exit 2; }
a_bin=$(realpath "$1") b_bin=$(realpath "$2")
secs=${3:-5} rounds=${4:-3} conns_list=${5:-"1 64"}
for v in "$secs" "$rounds" $conns_list; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "SECS, ROUNDS and CONNS are positive integers" >&2; exit 2; }
done
((secs <= 60 && rounds <= 12)) || { echo "SECS at most 60, ROUNDS at most 12 (two half-hour delivery slots per round, tomorrow 06:00-18:00Z)" >&2; exit 2; }
for b in "$a_bin" "$b_bin"; do [ -x "$b" ] || { echo "no executable $b" >&2; exit 1; }; done
here=benches/peers
work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=benches/peers/common.sh
. benches/peers/common.sh
need_wrk
secret=builds-ab-secret-builds-ab-secret-0123456
cfg=$work/node.toml
bench_config "$cfg" "$secret"
mapfile -t wanted < <(bench_settings "$cfg"; printf '%s\n' --set runtime.worker_threads=1)
# accepted_settings BIN: the wanted settings less those BIN's configuration calls unknown (its
# error names the field: `... for key "global.analytics"`), one start on a scratch dir each.
accepted_settings() {
  local bin=$1 probe=$work/probe port=17399 out drop kept=("${wanted[@]}") next i
  for _ in 1 2 3 4 5 6 7 8; do
    rm -rf "$probe"
    "$bin" serve "${kept[@]}" --listen "127.0.0.1:$port" --data-dir "$probe" > "$work/probe.log" 2>&1 &
    local pid=$! deadline=$(($(now_ms) + 3000))
    while kill -0 "$pid" 2>/dev/null && (($(now_ms) < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"; wait "$pid" 2>/dev/null || true
      printf '%s\n' "${kept[@]}"
      return 0
    fi
    wait "$pid" 2>/dev/null || true
    out=$(cat "$work/probe.log")
    drop=$(sed -n 's/.*unknown field.*for key "global\.\([A-Za-z0-9_.]*\)".*/\1/p' <<<"$out" | head -1)
    [ -n "$drop" ] || { echo "$bin does not start with the benchmark settings:" >&2; tail -3 <<<"$out" >&2; exit 1; }
    echo "   $bin does not know '$drop': runs without it" >&2
    next=()
    for ((i = 0; i < ${#kept[@]}; i++)); do
      if [ "${kept[i]}" = --set ] && [[ ${kept[i + 1]} == "$drop"=* || ${kept[i + 1]} == "$drop".* ]]; then
        i=$((i + 1))
      else
        next+=("${kept[i]}")
      fi
    done
    kept=("${next[@]}")
  done
  echo "$bin: too many unknown settings" >&2
  exit 1
}
# The cluster's nodes run on one worker thread each (three nodes on two cores), the single
# node on its default: the probe's list has the setting, and it is split off again.
declare -A settings one_thread
for build in a b; do
  bin=${build}_bin
  all=$(accepted_settings "${!bin}")
  settings[$build]=$(awk 'p != "" { if (!(p == "--set" && $0 == "runtime.worker_threads=1")) { print p; print $0 } p = ""; next }
                          $0 == "--set" { p = $0; next } { print }' <<<"$all")
  one_thread[$build]=$(grep -c -x 'runtime.worker_threads=1' <<<"$all" || true)
done
# Tokens from a build that mints many at once (`token --count`), the newer one if only one does.
tok_bin=$b_bin
"$tok_bin" token --help | grep -q -- --count || tok_bin=$a_bin
"$tok_bin" token --help | grep -q -- --count || { echo "neither build mints tokens with --count" >&2; exit 1; }
admin=$("$tok_bin" token --config "$cfg" --user ab-admin --admin --ttl 2h)
start() { # build name port settings...
  local build=$1 name=$2 port=$3 bin common; shift 3
  bin=${build}_bin; bin=${!bin}
  mapfile -t common <<<"${settings[$build]}"
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is in use" >&2; exit 1; fi
  "$bin" serve "${common[@]}" --listen "127.0.0.1:$port" --data-dir "$work/$name" "$@" > "$work/$name.log" 2>&1 &
  pids+=($!)
  pid_of[$name]=$!
}
declare -A single cluster leader pid_of
for build in a b; do
  base=$([ $build = a ] && echo 17300 || echo 17310)
  single[$build]=$base
  start "$build" "$build-single" "$base" --set cluster.node_id=1 --set cluster.bootstrap=true
  cluster[$build]="$((base + 1)) $((base + 2)) $((base + 3))"
  i=0
  for p in ${cluster[$build]}; do
    i=$((i + 1))
    node_threads=()
    ((one_thread[$build])) && node_threads=(--set runtime.worker_threads=1)
    start "$build" "$build-node$i" "$p" --set "cluster.node_id=$i" --set cluster.bootstrap=false "${node_threads[@]}"
  done
done
cluster_json() { curl -sf --max-time 2 -H "authorization: Bearer $admin" "http://127.0.0.1:$1/admin/cluster"; }
json_num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" | head -1; }
for build in a b; do
  wait_for "build $build single node" curl -sf "http://127.0.0.1:${single[$build]}/readyz"
  read -r p1 p2 p3 <<<"${cluster[$build]}"
  for p in $p1 $p2 $p3; do wait_for "build $build node on $p" curl -sf "http://127.0.0.1:$p/healthz"; done
  curl -sf -X POST "http://127.0.0.1:$p1/admin/cluster/init" -H "authorization: Bearer $admin" -H 'content-type: application/json' \
    -d "{\"members\":{\"1\":\"127.0.0.1:$p1\",\"2\":\"127.0.0.1:$p2\",\"3\":\"127.0.0.1:$p3\"}}" >/dev/null \
    || { echo "build $build: cluster init failed" >&2; exit 1; }
  for p in $p1 $p2 $p3; do wait_for "build $build node on $p ready" curl -sf "http://127.0.0.1:$p/readyz"; done
  id=""
  deadline=$(($(now_ms) + 30000))
  until [ -n "$id" ]; do
    id=$(cluster_json "$p1" | json_num leader || true)
    (($(now_ms) < deadline)) || { echo "build $build: no leader" >&2; exit 1; }
    [ -n "$id" ] || sleep 0.1
  done
  ports=("$p1" "$p2" "$p3")
  leader[$build]=${ports[id - 1]}
done
echo "== $(date -u +%FT%TZ), $(nproc) cores; A=$a_bin B=$b_bin; leaders: A ${leader[a]}, B ${leader[b]}" >&2

tomorrow=$(date -u -d tomorrow +%Y-%m-%d)
declare -A R P50 BAD CPU
mint=0
# node_ticks BUILD SHAPE: the CPU ticks (user + system) its single node or three nodes used so
# far, less the busy poller's (`busy-poll`, SCHED_IDLE: it spins only on a CPU nothing else
# wants, so its ticks are idle time, not work; a thread's ticks count from its start).
node_ticks() {
  local n names sum=0
  if [ "$2" = 1node ]; then names="$1-single"; else names="$1-node1 $1-node2 $1-node3"; fi
  for n in $names; do
    sum=$((sum + $(cpu_ticks "${pid_of[$n]}") - $(poller_ticks "${pid_of[$n]}")))
  done
  echo "$sum"
}
poller_ticks() {
  local task
  for task in /proc/"$1"/task/*; do
    [ "$(cat "$task/comm" 2>/dev/null)" = busy-poll ] && { cpu_ticks "$1/task/${task##*/}"; return; }
  done
  echo 0
}
ticks_per_s=$(getconf CLK_TCK)
create_run() { # key build port connections round
  local key=$1 build=$2 port=$3 c=$4 r=$5 threads=2 out slot shape=${1%%-*} before after
  ((c >= 2)) || threads=1
  mint=$((mint + 1))
  "$tok_bin" token --config "$cfg" --user "ab$mint" --count $((secs * 40000)) --ttl 2h |
    awk -v t="$threads" -v f="$work/tokens" '{ print > (f "." ((NR - 1) % t)) }'
  # Round r, build a or b: the half-hour slot 2(r-1) (+1 for b) after tomorrow 06:00Z.
  slot=$((2 * (r - 1))); [ "$build" = b ] && slot=$((slot + 1))
  slot=$(printf '%sT%02d:%02d:00Z' "$tomorrow" $((6 + slot / 2)) $((30 * (slot % 2))))
  before=$(node_ticks "$build" "$shape")
  out=$(SLOT="$slot" TOKENS=$work/tokens \
    wrk -t"$threads" -c"$c" -d"${secs}s" --timeout 5s --latency -s "$here/create.lua" "http://127.0.0.1:$port/v1/orders" 2>&1) || true
  after=$(node_ticks "$build" "$shape")
  rm -f "$work"/tokens.*
  read -r rate p50 bad sent < <(awk '
    function ms(v) { if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 } if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
                     if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 } return v }
    /^Requests\/sec/ { rate = $2 } $1 == "50%" { p50 = ms($2) } / requests in / { sent = $1 }
    /Non-2xx or 3xx responses/ { bad += $NF } /Socket errors/ { gsub(/,/, ""); bad += $4 + $6 + $8 + $10 }
    END { printf "%d %.3f %d %d\n", rate, p50, bad, sent }' <<<"$out")
  local cpu=0
  ((sent > 0)) && cpu=$(awk -v t=$((after - before)) -v hz="$ticks_per_s" -v n="$sent" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  R[$key]+="$rate "; P50[$key]+="$p50 "; CPU[$key]+="$cpu "; BAD[$key]=$((${BAD[$key]:-0} + bad))
  echo "   round $r $key: $rate/s p50 $p50 ms, nodes' CPU $cpu us a create${bad:+, $bad non-2xx/errors}" >&2
}
for r in $(seq "$rounds"); do
  order="a b"; ((r % 2)) || order="b a"
  for c in $conns_list; do
    for build in $order; do create_run "1node-c$c-$build" "$build" "${single[$build]}" "$c" "$r"; done
    for build in $order; do create_run "3nodes-c$c-$build" "$build" "${leader[$build]}" "$c" "$r"; done
  done
done
for build in a b; do
  read -r p1 _ <<<"${cluster[$build]}"
  echo "build $build: leader term now $(cluster_json "$p1" | json_num term) (an election during the run would show as a term above the first)" >&2
done
printf '| point | A per s (rounds) | B per s (rounds) | A p50 ms | B p50 ms | B/A | CPU us a create A / B (B/A) | non-2xx+errors A/B |\n|---|---|---|---|---|---|---|---|\n'
for c in $conns_list; do
  for shape in 1node 3nodes; do
    a=$(median "${R[$shape-c$c-a]}"); b=$(median "${R[$shape-c$c-b]}")
    ca=$(median "${CPU[$shape-c$c-a]}"); cb=$(median "${CPU[$shape-c$c-b]}")
    printf '| %s, %s connections | %s (%s) | %s (%s) | %s | %s | %s | %s / %s (%s) | %s/%s |\n' "$shape" "$c" "$a" "${R[$shape-c$c-a]% }" "$b" "${R[$shape-c$c-b]% }" \
      "$(median "${P50[$shape-c$c-a]}")" "$(median "${P50[$shape-c$c-b]}")" "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b / a}')" \
      "$ca" "$cb" "$(awk -v a="$ca" -v b="$cb" 'BEGIN {if (a > 0) printf "%.2f", b / a; else print "-"}')" \
      "${BAD[$shape-c$c-a]}" "${BAD[$shape-c$c-b]}"
  done
done
