#!/usr/bin/env bash
# Two builds' reads side by side, driven by wrk: GET own order (stale and linearizable) on one
# node of each build (fresh data dirs, 127.0.0.1, one order), and hello-world (the load bench's
# `hello-serve`, 2 workers) as the ceiling; 64 connections, every round alternates the builds.
# Prints every run (stderr), then per point the median rate, its ratio to hello-world's median
# and the median server CPU per request (user + system, from /proc).
#   bash benches/peers/reads-ab.sh OLD_BIN NEW_BIN [ROUNDS=5] [SECS=5]
# Uses the newest target/release/deps/load-* for hello-serve (cargo bench --bench load --no-run).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=benches/peers/common.sh
. benches/peers/common.sh
ab_args "$@"
need_wrk
bench_workdir
secret=wrk-bench-secret-wrk-bench-secret-0123456
bench_config "$W/node.toml" "$secret"
mapfile -t common < <(bench_settings "$W/node.toml")
start() { # name bin port
  "$2" serve "${common[@]}" --listen "127.0.0.1:$3" --data-dir "$W/$1" --set cluster.node_id=1 --set cluster.bootstrap=true > "$W/$1.log" 2>&1 &
  pids+=("$!"); echo "$!" > "$W/$1.pid"
  for _ in $(seq 150); do curl -sf "http://127.0.0.1:$3/readyz" >/dev/null && break; sleep 0.1; done
  local tok slot id
  tok=$("$2" token --config "$W/node.toml" --user reader1 --ttl 2h); echo "$tok" > "$W/$1.token"
  slot=$(date -u -d tomorrow +%Y-%m-%dT17:00:00Z)
  id=$(curl -sf -X POST "http://127.0.0.1:$3/v1/orders" -H "authorization: Bearer $tok" -H 'content-type: application/json' \
   -d "{\"address\":\"12 Long Street, Springfield\",\"size\":\"large\",\"toppings\":[\"pepperoni\",\"mushroom\"],\"delivery_slot\":\"$slot\"}" | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
  echo "http://127.0.0.1:$3/v1/orders/$id" > "$W/$1.url"
}
start old "$old" 17201
start new "$new" 17202
start_hello "$W" 2
hpid=$HELLO_PID hp=$HELLO_PORT
pids+=("$hpid")
declare -A rates cpus
for r in $(seq "$rounds"); do
  order=(hello old-stale new-stale old-lin new-lin)
  ((r % 2)) || order=(hello new-stale old-stale new-lin old-lin)
  for what in "${order[@]}"; do
    case $what in
      hello) p=$hpid; u=http://127.0.0.1:$hp/hello; h=();;
      *-stale) n=${what%-stale}; p=$(cat "$W/$n.pid"); u="$(cat "$W/$n.url")?consistency=stale"; h=(-H "authorization: Bearer $(cat "$W/$n.token")");;
      *-lin) n=${what%-lin}; p=$(cat "$W/$n.pid"); u="$(cat "$W/$n.url")"; h=(-H "authorization: Bearer $(cat "$W/$n.token")");;
    esac
    c0=$(cpu_ticks "$p"); out=$(wrk -t2 -c64 -d"${secs}s" "${h[@]}" "$u"); c1=$(cpu_ticks "$p")
    rate=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    cpu=$(python3 -c "print('%.2f' % (($c1-$c0)*10000/($rate*$secs)))")
    rates[$what]+="$rate "; cpus[$what]+="$cpu "
    echo "round $r $what $rate req/s, server $cpu us/req ${non2xx:+non2xx $non2xx}" >&2
  done
done
hm=$(median "${rates[hello]}")
for what in hello old-stale new-stale old-lin new-lin; do
  m=$(median "${rates[$what]}"); c=$(median "${cpus[$what]}")
  printf '%-10s median %8.0f req/s  %.2fx hello  server %s us/req   (rounds: %s)\n' "$what" "$m" "$(python3 -c "print($m/$hm)")" "$c" "${rates[$what]}"
done
