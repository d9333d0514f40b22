#!/usr/bin/env bash
# Every HTTP comparison of the peers bench, driven by wrk (a C load generator, far cheaper per
# request than our Rust bench client), side by side in one run on this machine:
#   - creates: 1 node, and 3 nodes against a 3-member etcd 3.4 put through its JSON gateway
#     (POST /v3/kv/put, a new key and a 300-byte value each), 1 / 16 / 64 connections;
#   - reads: GET own order (linearizable, and ?consistency=stale) on 1 node and on a follower of
#     3 nodes, and GET /v1/menu on 1 node, against a hello-world axum server (GET /hello →
#     "hello", the load bench's `hello-serve`, 2 worker threads) at 64 connections; the
#     follower, which like every node of the three runs one worker thread, also against a
#     hello-world with one worker thread (the same thread budget on both sides).
# Every figure is the median of ROUNDS runs of SECS s, ours and the anchor alternating (and
# which goes first alternates too). wrk: 2 threads (1 at 1 connection), --latency.
#
# Creates: every request places an order as a new user (tokens minted with `pizza-orders token
# --count`, a disjoint slice per wrk thread, benches/peers/create.lua), all in one delivery slot
# per round (tomorrow 17:00Z, 18:00Z, …) of capacity 1 000 000 (the most the catalog allows;
# one run is at most SECS × MAX_RATE orders). Ours and etcd both get their writes through one
# endpoint: the leader (our creates to the Raft leader, etcd's puts to the etcd leader; a write
# to a follower would add a forwarding hop on either side).
#
# Nodes: release binary, fresh data dirs in a temp dir, 127.0.0.1 only, a config without a
# catalog file (the one default store 'main' delivers everywhere, slots 00:00-24:00),
# log.filter=error, limits and analytics off. The single node has the default worker threads
# (one per core); the three nodes share the machine and get runtime.worker_threads=1 each.
# etcd: defaults (3 members, client ports 12370-12372, peer ports 12380-12382).
#
# Uses the binaries as built (no cargo): target/release/pizza-orders, and the load bench binary
# for hello-serve (PIZZA_LOAD_BIN, default: the newest target/release/deps/load-*).
# Installs wrk / etcd with apt-get if missing. Every process it starts, it stops on exit.
#   bash benches/peers/wrk.sh [SECS=5] [ROUNDS=3] [CONNS="1 16 64"] [READ_CONNS=64] [MAX_RATE=40000]
# MAX_RATE: creates/s the token files are sized for (tokens per run = SECS × MAX_RATE); a run
# that outgrows them reuses tokens and gets 409s, reported in the non-2xx column.
# Printed: the table (stdout), then every point: per-round rates, medians of p50/p99, non-2xx
# and socket errors, the CPU the processes under test used (% of one core) and how busy the
# machine was (all cores, wrk included), and whether either cluster held an election.
# WRK_KEEP=FILE keeps wrk's raw outputs.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
rounds=${2:-3}
conns_list=${3:-"1 16 64"}
read_conns=${4:-64}
max_rate=${5:-40000}
for v in "$secs" "$rounds" "$read_conns" "$max_rate" $conns_list; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [SECS=5] [ROUNDS=3] [CONNS=\"1 16 64\"] [READ_CONNS=64] [MAX_RATE=40000] (positive integers)" >&2; exit 2; }
done
((secs <= 60 && rounds <= 7)) || { echo "SECS at most 60, ROUNDS at most 7 (a delivery slot per round, 17:00Z-23:00Z)" >&2; exit 2; }
here=benches/peers
bin=target/release/pizza-orders
load_bin=${PIZZA_LOAD_BIN:-$(find target/release/deps -maxdepth 1 -name 'load-*' -type f -executable -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -1 | cut -d' ' -f2)}
[ -x "$bin" ] || { echo "no $bin (cargo build --release)" >&2; exit 1; }
[[ -n $load_bin && -x $load_bin ]] || { echo "no load bench binary (cargo bench --bench load --no-run)" >&2; exit 1; }

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v curl >/dev/null 2>&1 || need+=(curl)
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d)
pids=()
hello_pid=""
hello1w_pid=""
cleanup() {
  local p left deadline=$(($(date +%s) + 5))
  exec 9>&- 8>&- 2>/dev/null || true   # the hello-world servers' stdin: they stop when it closes
  for p in "${pids[@]}" $hello_pid $hello1w_pid; do kill "$p" 2>/dev/null || true; done
  # A stopping etcd leader first tries to hand over its leadership, which takes seconds when
  # its peers are stopping too: whatever is still there after 5 s gets SIGKILL.
  while :; do
    left=()
    for p in "${pids[@]}" $hello_pid $hello1w_pid; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
    ((${#left[@]})) || break
    if (($(date +%s) >= deadline)); then kill -9 "${left[@]}" 2>/dev/null || true; break; fi
    sleep 0.1
  done
  for p in "${pids[@]}" $hello_pid $hello1w_pid; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

single=17000
ours=(17001 17002 17003)
etcd_client=(12370 12371 12372)
etcd_peer=(12380 12381 12382)
for port in $single "${ours[@]}" "${etcd_client[@]}" "${etcd_peer[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port on 127.0.0.1 is already in use" >&2; exit 1
  fi
done
# shellcheck source=benches/peers/common.sh
. benches/peers/common.sh

echo "== $(date -u +%FT%TZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); $(etcd --version | head -1)" >&2

# --- the servers -----------------------------------------------------------------------------
secret=wrk-bench-secret-wrk-bench-secret-0123456
cfg=$work/node.toml
bench_config "$cfg" "$secret"
mapfile -t common < <(bench_settings "$cfg")
admin=$("$bin" token --config "$cfg" --user wrk-admin --admin --ttl 2h)

start_node() { # name port extra-settings...
  local name=$1 port=$2; shift 2
  "$bin" serve "${common[@]}" --listen "127.0.0.1:$port" --data-dir "$work/$name" "$@" > "$work/$name.log" 2>&1 9>&- &
  pids+=($!)
}
echo "== starting 1 node (default worker threads), 3 nodes (worker_threads=1 each), 3 etcd members, hello-world" >&2
start_node single $single --set cluster.node_id=1 --set cluster.bootstrap=true
for i in 0 1 2; do
  start_node "node$((i + 1))" "${ours[i]}" --set "cluster.node_id=$((i + 1))" --set cluster.bootstrap=false \
    --set runtime.worker_threads=1
done
etcd_cluster="e1=http://127.0.0.1:${etcd_peer[0]},e2=http://127.0.0.1:${etcd_peer[1]},e3=http://127.0.0.1:${etcd_peer[2]}"
for i in 0 1 2; do
  etcd --name "e$((i + 1))" --data-dir "$work/etcd$i" \
    --listen-client-urls "http://127.0.0.1:${etcd_client[i]}" --advertise-client-urls "http://127.0.0.1:${etcd_client[i]}" \
    --listen-peer-urls "http://127.0.0.1:${etcd_peer[i]}" --initial-advertise-peer-urls "http://127.0.0.1:${etcd_peer[i]}" \
    --initial-cluster "$etcd_cluster" --initial-cluster-state new > "$work/etcd$i.log" 2>&1 9>&- &
  pids+=($!)
done
single_pid=${pids[0]}
node_pids="${pids[*]:1:3}"
etcd_pids="${pids[*]:4:3}"
mkfifo "$work/hello.in"
"$load_bin" hello-serve --bench --workers 2 < "$work/hello.in" > "$work/hello.port" 2>/dev/null &
hello_pid=$!
exec 9> "$work/hello.in"
wait_for "the hello-world server" test -s "$work/hello.port"
hello_url="http://127.0.0.1:$(head -1 "$work/hello.port")/hello"
mkfifo "$work/hello1w.in"
"$load_bin" hello-serve --bench --workers 1 < "$work/hello1w.in" > "$work/hello1w.port" 2>/dev/null 9>&- &
hello1w_pid=$!
exec 8> "$work/hello1w.in"
wait_for "the one-thread hello-world server" test -s "$work/hello1w.port"
hello1w_url="http://127.0.0.1:$(head -1 "$work/hello1w.port")/hello"

wait_for "the single node" curl -sf "http://127.0.0.1:$single/readyz"
for p in "${ours[@]}"; do wait_for "node on $p" curl -sf "http://127.0.0.1:$p/healthz"; done
curl -sf -X POST "http://127.0.0.1:${ours[0]}/admin/cluster/init" -H "authorization: Bearer $admin" \
  -H 'content-type: application/json' \
  -d "{\"members\":{\"1\":\"127.0.0.1:${ours[0]}\",\"2\":\"127.0.0.1:${ours[1]}\",\"3\":\"127.0.0.1:${ours[2]}\"}}" >/dev/null \
  || { echo "cluster init failed" >&2; tail -5 "$work/node1.log" >&2; exit 1; }
for p in "${ours[@]}"; do wait_for "node on $p ready" curl -sf "http://127.0.0.1:$p/readyz"; done
cluster_json() { curl -sf --max-time 2 -H "authorization: Bearer $admin" "http://127.0.0.1:$1/admin/cluster"; }
json_num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" | head -1; }
leader_id=""
deadline=$(($(now_ms) + 30000))
while :; do
  ids=()
  for p in "${ours[@]}"; do ids+=("$(cluster_json "$p" | json_num leader || true)"); done
  if [[ -n ${ids[0]} && ${ids[0]} == "${ids[1]}" && ${ids[0]} == "${ids[2]}" ]]; then leader_id=${ids[0]}; break; fi
  (($(now_ms) < deadline)) || { echo "our 3 nodes agree on no leader" >&2; exit 1; }
  sleep 0.1
done
our_leader=${ours[leader_id - 1]}
our_follower=${ours[leader_id % 3]}
term_before=$(cluster_json "$our_leader" | json_num term)

etcd_healthy() { for p in "${etcd_client[@]}"; do curl -sf --max-time 1 "http://127.0.0.1:$p/health" | grep -q '"health":"true"' || return 1; done; }
wait_for "etcd healthy" etcd_healthy
etcd_leader=""
for p in "${etcd_client[@]}"; do
  body=$(curl -sf --max-time 1 -X POST "http://127.0.0.1:$p/v3/maintenance/status" -d '{}')
  me=$(sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p' <<<"$body"); ld=$(sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p' <<<"$body")
  [[ -n $me && $me == "$ld" ]] && etcd_leader=$p
done
[ -n "$etcd_leader" ] || { echo "no etcd leader" >&2; exit 1; }
etcd_term_before=$(curl -sf -X POST "http://127.0.0.1:$etcd_leader/v3/maintenance/status" -d '{}' | sed -n 's/.*"raft_term":"\([0-9]*\)".*/\1/p')
echo "   our leader: node $leader_id (port $our_leader), follower read on port $our_follower; etcd leader: port $etcd_leader; hello: $hello_url" >&2

# --- wrk -------------------------------------------------------------------------------------
# One wrk run; prints "rate p50_ms p99_ms non2xx socket_errors" and keeps the output.
# Also the CPU the server processes ($serving: their pids) used during the run, in % of one core,
# and how busy the whole machine was (/proc/stat), in % of all cores.
runs=0
serving=""
proc_cpu() { # pids → utime + stime, in clock ticks
  local p
  for p in "$@"; do sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}'; done | awk '{s += $1} END {print s + 0}'
}
machine_cpu() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
wrk_run() { # label connections url [wrk args...]
  local label=$1 c=$2 url=$3 out threads=2 c0 c1 b0 t0 b1 t1 t_start t_end; shift 3
  ((c >= 2)) || threads=1
  runs=$((runs + 1))
  # shellcheck disable=SC2086
  c0=$(proc_cpu $serving); read -r b0 t0 < <(machine_cpu); t_start=$(date +%s%N)
  out=$(wrk -t"$threads" -c"$c" -d"${secs}s" --timeout 5s --latency "$@" "$url" 2>&1) || true
  # shellcheck disable=SC2086
  c1=$(proc_cpu $serving); read -r b1 t1 < <(machine_cpu); t_end=$(date +%s%N)
  out+=$'\n'"cpu: $(awk -v a="$c0" -v b="$c1" -v s="$t_start" -v e="$t_end" 'BEGIN {printf "%.0f", (b - a) / 100 / ((e - s) / 1e9) * 100}') $(awk -v a="$b0" -v b="$b1" -v x="$t0" -v y="$t1" 'BEGIN {printf "%.0f", (y > x) ? (b - a) / (y - x) * 100 : 0}')"
  printf '### %s (%s connections)\n%s\n' "$label" "$c" "$out" >> "$work/wrk.out"
  awk '
    function ms(v) { if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 } if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
                     if (v ~ /m$/) { sub(/m$/, "", v); return v * 60000 } if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 } return v }
    /^Requests\/sec/ { rate = $2 }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses/ { bad = $NF }
    /Socket errors/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
    /tokens:/ && /wrap/ { wraps = $(NF - 1) }
    /^cpu: / { scpu = $2; mcpu = $3 }
    END { printf "%d %.3f %.3f %d %d %d %d %d\n", rate, p50, p99, bad, err, wraps, scpu, mcpu }' <<<"$out"
}
declare -A R P50 P99 BAD SCPU MCPU  # per point: space-separated values over the rounds
record() { # key: reads "rate p50 p99 bad err wraps server-cpu machine-cpu" from stdin
  local r p5 p9 b e w sc mc
  read -r r p5 p9 b e w sc mc
  R[$1]+="$r "; P50[$1]+="$p5 "; P99[$1]+="$p9 "; BAD[$1]=$(( ${BAD[$1]:-0} + b + e ))
  SCPU[$1]+="$sc "; MCPU[$1]+="$mc "
  if ((b + e + w > 0)); then echo "   $1: $b non-2xx, $e socket errors, $w token wrap-arounds" >&2; fi
  echo "   $1: $r/s p50 $p5 ms p99 $p9 ms; server CPU $sc % of a core, machine $mc % busy" >&2
}

slot=$(date -u -d tomorrow +%Y-%m-%dT17:00:00Z)   # the order to read; creates: round r → (16 + r):00Z
tomorrow=$(date -u -d tomorrow +%Y-%m-%d)
mint=0
create_run() { # key port connections
  local key=$1 port=$2 c=$3 threads=2 n
  ((c >= 2)) || threads=1
  mint=$((mint + 1))
  n=$((secs * max_rate))
  "$bin" token --config "$cfg" --user "w$mint" --count "$n" --ttl 2h |
    awk -v t="$threads" -v f="$work/tokens" '{ print > (f "." ((NR - 1) % t)) }'
  SLOT="${tomorrow}T$((16 + r)):00:00Z" TOKENS=$work/tokens wrk_run "$key" "$c" "http://127.0.0.1:$port/v1/orders" -s "$here/create.lua" > "$work/res"
  record "$key" < "$work/res"
  rm -f "$work"/tokens.*
}
etcd_run() { # key connections
  RUN=$runs wrk_run "$1" "$2" "http://127.0.0.1:$etcd_leader/v3/kv/put" -s "$here/etcd-put.lua" > "$work/res"
  record "$1" < "$work/res"
}
read_run() { # key url [token]
  if [ -n "${3:-}" ]; then
    wrk_run "$1" "$read_conns" "$2" -H "Authorization: Bearer $3" > "$work/res"
  else
    wrk_run "$1" "$read_conns" "$2" > "$work/res"
  fi
  record "$1" < "$work/res"
}
place_order() { # port user → the order id
  local token
  token=$("$bin" token --config "$cfg" --user "$2")
  curl -sf -X POST "http://127.0.0.1:$1/v1/orders" -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"address\":\"1 Main St\",\"size\":\"small\",\"toppings\":[],\"delivery_slot\":\"$slot\"}" |
    sed -n 's/^{"id":"\([^"]*\)".*/\1/p'
}

# --- 1 node ----------------------------------------------------------------------------------
echo "== reads, 1 node, $read_conns connections, against hello-world" >&2
reader=$("$bin" token --config "$cfg" --user wrk-reader)
id1=$(place_order $single wrk-reader)
[ -n "$id1" ] || { echo "could not place the order to read" >&2; exit 1; }
curl -sf -H "authorization: Bearer $reader" "http://127.0.0.1:$single/v1/orders/$id1" >/dev/null
for r in $(seq "$rounds"); do
  steps=(hello lin stale menu)
  ((r % 2)) || steps=(menu stale lin hello)
  for s in "${steps[@]}"; do
    case $s in
      hello) serving=$hello_pid read_run hello1 "$hello_url" ;;
      lin) serving=$single_pid read_run lin1 "http://127.0.0.1:$single/v1/orders/$id1" "$reader" ;;
      stale) serving=$single_pid read_run stale1 "http://127.0.0.1:$single/v1/orders/$id1?consistency=stale" "$reader" ;;
      menu) serving=$single_pid read_run menu1 "http://127.0.0.1:$single/v1/menu" ;;
    esac
  done
done
echo "== creates, 1 node" >&2
for r in $(seq "$rounds"); do
  for c in $conns_list; do serving=$single_pid create_run "create1_$c" $single "$c"; done
done

# --- 3 nodes ---------------------------------------------------------------------------------
echo "== reads on a follower of 3 nodes, $read_conns connections, against hello-world" >&2
id3=$(place_order "$our_leader" wrk-reader)
[ -n "$id3" ] || { echo "could not place the order to read (3 nodes)" >&2; exit 1; }
wait_for "the order on the follower" curl -sf -H "authorization: Bearer $reader" "http://127.0.0.1:$our_follower/v1/orders/$id3?consistency=stale"
for r in $(seq "$rounds"); do
  steps=(hello hello1w lin stale)
  ((r % 2)) || steps=(stale lin hello1w hello)
  for s in "${steps[@]}"; do
    case $s in
      hello) serving=$hello_pid read_run hello3 "$hello_url" ;;
      hello1w) serving=$hello1w_pid read_run hello3w1 "$hello1w_url" ;;
      lin) serving=$node_pids read_run lin3 "http://127.0.0.1:$our_follower/v1/orders/$id3" "$reader" ;;
      stale) serving=$node_pids read_run stale3 "http://127.0.0.1:$our_follower/v1/orders/$id3?consistency=stale" "$reader" ;;
    esac
  done
done
echo "== creates, 3 nodes (to our leader) against etcd puts (to the etcd leader)" >&2
for r in $(seq "$rounds"); do
  for c in $conns_list; do
    if ((r % 2)); then serving=$node_pids create_run "create3_$c" "$our_leader" "$c"; serving=$etcd_pids etcd_run "etcd_$c" "$c"
    else serving=$etcd_pids etcd_run "etcd_$c" "$c"; serving=$node_pids create_run "create3_$c" "$our_leader" "$c"; fi
  done
done
term_after=$(cluster_json "$our_leader" | json_num term || true)
etcd_term_after=$(curl -sf -X POST "http://127.0.0.1:$etcd_leader/v3/maintenance/status" -d '{}' | sed -n 's/.*"raft_term":"\([0-9]*\)".*/\1/p' || true)

# --- the table -------------------------------------------------------------------------------
med() { # median of a point's rates (or - if none)
  # shellcheck disable=SC2086
  if [ -n "${R[$1]:-}" ]; then median ${R[$1]}; else echo -; fi
}
medp() { # median p50 of a point
  # shellcheck disable=SC2086
  if [ -n "${P50[$1]:-}" ]; then median ${P50[$1]}; else echo -; fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "–" }'; }
join_rates() { # prefix: "X / Y / Z"
  local out="" c
  for c in $conns_list; do out+="${out:+ / }$(med "$1_$c")"; done
  echo "$out"
}
first_c=${conns_list%% *}
ratios=""
for c in $conns_list; do ratios+="${ratios:+ / }$(ratio "$(med "create3_$c")" "$(med "etcd_$c")")"; done
conns_label=${conns_list// / \/ }
echo
echo "| what (wrk, medians of $rounds × ${secs} s, alternating) | ours | anchor | ratio |"
echo "| --- | --- | --- | --- |"
echo "| 1 node create-order, $conns_label connections | $(join_rates create1) per s (p50 $(medp "create1_$first_c") ms at $first_c) | (no anchor) | |"
echo "| 3 nodes create-order (to the leader; worker_threads=1 each), $conns_label connections | $(join_rates create3) per s (p50 $(medp "create3_$first_c") ms at $first_c) | etcd 3.4 3-member put via JSON gateway (to the leader, 300-byte values): $(join_rates etcd) per s (p50 $(medp "etcd_$first_c") ms at $first_c) | $ratios |"
echo "| GET own order, $read_conns connections, linearizable / stale, 1 node | $(med lin1) / $(med stale1) per s | hello-world axum (GET /hello): $(med hello1) per s | $(ratio "$(med lin1)" "$(med hello1)") / $(ratio "$(med stale1)" "$(med hello1)") |"
echo "| the same on a follower of 3 nodes (worker_threads=1) | $(med lin3) / $(med stale3) per s | hello-world, 2 worker threads: $(med hello3) per s; 1 worker thread: $(med hello3w1) per s | $(ratio "$(med lin3)" "$(med hello3)") / $(ratio "$(med stale3)" "$(med hello3)"); against 1 thread $(ratio "$(med lin3)" "$(med hello3w1)") / $(ratio "$(med stale3)" "$(med hello3w1)") |"
echo "| GET /v1/menu (no storage, no token), 1 node, $read_conns connections | $(med menu1) per s | hello-world: $(med hello1) per s | $(ratio "$(med menu1)" "$(med hello1)") |"
echo
echo "Every point (per-round rates; medians of p50, p99 and CPU; non-2xx + socket errors summed over the rounds; server CPU: the processes under test — 1 node, the 3 nodes, the 3 etcd members or hello-world — in % of one core, out of $(nproc) × 100; machine busy: all cores, wrk included):"
echo
echo "| point | req/s per round | median | p50 ms | p99 ms | non-2xx + errors | server CPU, % of a core | machine busy % |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
keys=(hello1 lin1 stale1 menu1)
for c in $conns_list; do keys+=("create1_$c"); done
keys+=(hello3 hello3w1 lin3 stale3)
for c in $conns_list; do keys+=("create3_$c" "etcd_$c"); done
for k in "${keys[@]}"; do
  # shellcheck disable=SC2086
  echo "| $k | ${R[$k]% } | $(med "$k") | $(medp "$k") | $(median ${P99[$k]}) | ${BAD[$k]:-0} | $(median ${SCPU[$k]}) | $(median ${MCPU[$k]}) |"
done
echo
echo "Elections during the run: ours term $term_before → ${term_after:-?}, etcd term ${etcd_term_before:-?} → ${etcd_term_after:-?}."
if grep -q "Non-2xx\|Socket errors" "$work/wrk.out"; then
  echo "Non-2xx / socket errors were seen; POST /v1/orders answers by status, from each node's /metrics:"
  for p in $single "${ours[@]}"; do
    curl -sf "http://127.0.0.1:$p/metrics" | grep '^pizza_orders_http_requests_total' | grep 'route="/v1/orders"' |
      grep -v 'status="20[01]"' | sed "s/^/  node $p: /" || true
  done
fi
if [ -n "${WRK_KEEP:-}" ]; then cp "$work/wrk.out" "$WRK_KEEP"; echo "wrk outputs: $WRK_KEEP" >&2; fi
