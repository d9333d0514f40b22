#!/usr/bin/env bash
# Two builds' reads on a follower side by side, driven by wrk: one three-node cluster of each
# build (every node `runtime.worker_threads=1`, as in wrk.sh; fresh data dirs, 127.0.0.1, one
# order), GET own order (stale and linearizable) on a follower of each, and a hello-world with
# one worker thread (the load bench's `hello-serve --workers 1`) as the ceiling; 64
# connections, every round alternates the builds. Prints every run (stderr), then per point
# the median rate, its ratio to hello-world's median, the follower's and the leader's median
# CPU per read (user + system, from /proc) and the median number of reads per read-index round.
#   bash benches/peers/follower-reads-ab.sh OLD_BIN NEW_BIN [ROUNDS=5] [SECS=5]
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
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cluster() { # name bin: three nodes, one order; writes name.{follower,leader}.{pid,port}, name.url, name.token
  local name=$1 bin=$2 ports=() ids=() admin tok slot id leader i
  for i in 0 1 2; do ports+=("$(free_port)"); done
  for i in 0 1 2; do
    "$bin" serve "${common[@]}" --listen "127.0.0.1:${ports[i]}" --data-dir "$W/$name$i" \
      --set cluster.node_id=$((i + 1)) --set cluster.bootstrap=false --set runtime.worker_threads=1 > "$W/$name$i.log" 2>&1 &
    pids+=("$!"); ids+=("$!")
  done
  for i in 0 1 2; do wait_for "$name node $((i + 1))" curl -sf "http://127.0.0.1:${ports[i]}/healthz"; done
  admin=$("$bin" token --config "$W/node.toml" --user bench-admin --admin --ttl 2h)
  curl -sf -X POST "http://127.0.0.1:${ports[0]}/admin/cluster/init" -H "authorization: Bearer $admin" -H 'content-type: application/json' \
    -d "{\"members\":{\"1\":\"127.0.0.1:${ports[0]}\",\"2\":\"127.0.0.1:${ports[1]}\",\"3\":\"127.0.0.1:${ports[2]}\"}}" > /dev/null
  for i in 0 1 2; do wait_for "$name node $((i + 1)) ready" curl -sf "http://127.0.0.1:${ports[i]}/readyz"; done
  leader=$(curl -sf -H "authorization: Bearer $admin" "http://127.0.0.1:${ports[0]}/admin/cluster" | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
  tok=$("$bin" token --config "$W/node.toml" --user reader1 --ttl 2h); echo "$tok" > "$W/$name.token"
  slot=$(date -u -d tomorrow +%Y-%m-%dT17:00:00Z)
  id=$(curl -sf -X POST "http://127.0.0.1:${ports[leader - 1]}/v1/orders" -H "authorization: Bearer $tok" -H 'content-type: application/json' \
    -d "{\"address\":\"12 Long Street, Springfield\",\"size\":\"large\",\"toppings\":[\"pepperoni\",\"mushroom\"],\"delivery_slot\":\"$slot\"}" | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
  i=$((leader % 3))
  echo "${ids[i]}" > "$W/$name.follower.pid"; echo "${ports[i]}" > "$W/$name.follower.port"
  echo "${ids[leader - 1]}" > "$W/$name.leader.pid"
  echo "http://127.0.0.1:${ports[i]}/v1/orders/$id" > "$W/$name.url"
  wait_for "the order on $name's follower" curl -sf -H "authorization: Bearer $tok" "$(cat "$W/$name.url")?consistency=stale"
}
cluster old "$old"
cluster new "$new"
start_hello "$W" 1
hpid=$HELLO_PID hp=$HELLO_PORT
pids+=("$hpid")
# Reads per read-index round on a follower so far: sum and count of the round-size histogram.
rounds_of() { curl -sf "http://127.0.0.1:$(cat "$W/$1.follower.port")/metrics" | awk '/^pizza_orders_read_index_round_size_sum / {s = $2} /^pizza_orders_read_index_round_size_count / {n = $2} END {print s + 0, n + 0}'; }
declare -A rates fcpus lcpus sizes
for r in $(seq "$rounds"); do
  order=(hello old-stale new-stale old-lin new-lin)
  ((r % 2)) || order=(hello new-stale old-stale new-lin old-lin)
  for what in "${order[@]}"; do
    size=""
    case $what in
      hello) f=$hpid; l=$hpid; u=http://127.0.0.1:$hp/hello; h=();;
      *) n=${what%-*}; f=$(cat "$W/$n.follower.pid"); l=$(cat "$W/$n.leader.pid"); u=$(cat "$W/$n.url")
         [[ $what == *-stale ]] && u="$u?consistency=stale"
         h=(-H "authorization: Bearer $(cat "$W/$n.token")");;
    esac
    [[ $what == *-lin ]] && read -r s0 n0 < <(rounds_of "$n")
    f0=$(cpu_ticks "$f"); l0=$(cpu_ticks "$l"); out=$(wrk -t2 -c64 -d"${secs}s" "${h[@]}" "$u"); f1=$(cpu_ticks "$f"); l1=$(cpu_ticks "$l")
    if [[ $what == *-lin ]]; then
      read -r s1 n1 < <(rounds_of "$n")
      size=$(python3 -c "print('%.1f' % (($s1-$s0)/max($n1-$n0,1)))")
      sizes[$what]+="$size "
    fi
    rate=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    fcpu=$(python3 -c "print('%.2f' % (($f1-$f0)*10000/($rate*$secs)))")
    lcpu=$(python3 -c "print('%.2f' % (($l1-$l0)*10000/($rate*$secs)))")
    rates[$what]+="$rate "; fcpus[$what]+="$fcpu "; lcpus[$what]+="$lcpu "
    echo "round $r $what $rate req/s, follower $fcpu us/read, leader $lcpu us/read${size:+, $size reads/round}${non2xx:+ non2xx $non2xx}" >&2
  done
done
hm=$(median "${rates[hello]}")
for what in hello old-stale new-stale old-lin new-lin; do
  m=$(median "${rates[$what]}")
  if [[ $what == hello ]]; then
    printf '%-10s median %8.0f req/s  1.00x hello  server %s us/req   (rounds: %s)\n' "$what" "$m" "$(median "${fcpus[$what]}")" "${rates[$what]}"
  else
    printf '%-10s median %8.0f req/s  %.2fx hello  follower %s us/read  leader %s us/read%s   (rounds: %s)\n' "$what" "$m" \
      "$(python3 -c "print($m/$hm)")" "$(median "${fcpus[$what]}")" "$(median "${lcpus[$what]}")" \
      "${sizes[$what]:+  $(median "${sizes[$what]}") reads/round}" "${rates[$what]}"
  fi
done
for point in stale lin; do
  printf 'new/old %-5s %.2f\n' "$point" "$(python3 -c "print($(median "${rates[new-$point]}")/$(median "${rates[old-$point]}"))")"
done
