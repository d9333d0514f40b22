#!/usr/bin/env bash
# Peers, side by side on this machine in one run: the disk's fsync rate, PostgreSQL 15 doing
# the create-order transaction (pgbench), a 3-node etcd 3.4 cluster's put rate
# (`etcdctl check perf`), and pizza-orders' own create-order rate (release build, load bench)
# at the same concurrency, and read rates against a hello-world axum server driven by the same
# client. Every throughput is the median of `rounds` runs, ours and theirs alternating.
# Installs what is missing with apt-get. Loopback only; every server it starts, it stops.
#   bash benches/peers/run.sh [seconds-per-run] [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
rounds=${2:-3}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
here=benches/peers
work=$(mktemp -d)
pids=()
pgbin=/usr/lib/postgresql/15/bin
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/pg/postmaster.pid" ] && as_pg "$pgbin/pg_ctl" -D "$work/pg" stop -m fast >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

need=()
command -v pgbench >/dev/null 2>&1 || [ -x /usr/lib/postgresql/15/bin/pgbench ] || need+=(postgresql)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
declare -A result

echo "== fsync rate (pg_test_fsync, 8 kB fdatasync)" >&2
result[fsync]=$(cd "$work" && "$pgbin/pg_test_fsync" -s 2 2>/dev/null | awk '$1 == "fdatasync" {print int($2); exit}')

echo "== PostgreSQL 15 create-order (pgbench, durable commits)" >&2
chown -R postgres "$work" 2>/dev/null || true
as_pg "$pgbin/initdb" -D "$work/pg" -A trust >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/pg" -o "-c listen_addresses=127.0.0.1 -p 55432 -c unix_socket_directories=$work -c max_connections=200" -l "$work/pg.log" start >/dev/null
as_pg "$pgbin/psql" -h 127.0.0.1 -p 55432 -d postgres -q -f "$here/schema.sql" >/dev/null
pg_rate() {
  as_pg "$pgbin/pgbench" -h 127.0.0.1 -p 55432 -n -c "$1" -j 2 -T "$secs" -f "$here/create_order.sql" postgres 2>/dev/null | awk '/^tps/ {print int($3)}' || true
}

echo "== pizza-orders create-order (release, 1 and 3 nodes), alternating with PostgreSQL" >&2
cargo bench --quiet --bench load --no-run >/dev/null 2>&1
bin=$(find target/release/deps -maxdepth 1 -name 'load-*' -type f -executable -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2)
ours_rate() {
  "$bin" --bench create --nodes "$1" --clients "$2" --seconds "$secs" 2>/dev/null | awk -F'|' '/^\| create/ {gsub(/[^0-9]/, "", $5); print $5}'
}
for c in 1 16 64; do
  pg=(); po=()
  for _ in $(seq "$rounds"); do pg+=("$(pg_rate "$c")"); po+=("$(ours_rate 1 "$c")"); done
  result[pg_$c]=$(median "${pg[@]}"); result[po1_$c]=$(median "${po[@]}")
done
as_pg "$pgbin/pg_ctl" -D "$work/pg" stop >/dev/null

echo "== etcd 3.4, three members on loopback (etcdctl check perf --load=l)" >&2
cluster="e1=http://127.0.0.1:52380,e2=http://127.0.0.1:52381,e3=http://127.0.0.1:52382"
for i in 0 1 2; do
  etcd --name "e$((i + 1))" --data-dir "$work/etcd$i" --listen-client-urls "http://127.0.0.1:5237$i" \
    --advertise-client-urls "http://127.0.0.1:5237$i" --listen-peer-urls "http://127.0.0.1:5238$i" \
    --initial-advertise-peer-urls "http://127.0.0.1:5238$i" --initial-cluster "$cluster" \
    --initial-cluster-state new > "$work/etcd$i.log" 2>&1 &
  pids+=($!)
done
sleep 3
perf=$(ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:52370,http://127.0.0.1:52371,http://127.0.0.1:52372 check perf --load=l 2>&1 || true)
echo "$perf" | grep -E "PASS|FAIL" >&2 || true
# "PASS: Throughput is 150 writes/s" or "FAIL: Throughput too low: 3000 writes/s"
result[etcd]=$(echo "$perf" | awk '/Throughput/ {for (i = 2; i <= NF; i++) if ($i == "writes/s") {print int($(i - 1)); exit}}')

for c in 1 16 64; do
  po=()
  for _ in $(seq "$rounds"); do po+=("$(ours_rate 3 "$c")"); done
  result[po3_$c]=$(median "${po[@]}")
done

echo "== reads vs a hello-world axum server (same client, interleaved rounds)" >&2
for n in 1 3; do
  reads=$("$bin" --bench reads --nodes "$n" --clients 64 --seconds 3 --rounds "$rounds" 2>/dev/null)
  result[hello_$n]=$(echo "$reads" | awk -F'|' '/^\| reads/ && /\| hello-world axum \|/ {split($6, w, " "); sub("/s", "", w[2]); print w[2]}')
  result[hellopn_$n]=$(echo "$reads" | awk -F'|' '/^\| reads/ && /one process per node/ {split($6, w, " "); sub("/s", "", w[2]); print w[2]}')
  result[stale_$n]=$(echo "$reads" | awk -F'|' '/^\| reads/ && /stale read/ {split($6, w, " "); sub("/s", "", w[2]); print w[2]}')
  result[lin_$n]=$(echo "$reads" | awk -F'|' '/^\| reads/ && /linearizable read/ {split($6, w, " "); sub("/s", "", w[2]); print w[2]}')
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "–" }'; }
echo
echo "| what | ours | theirs | ours / theirs |"
echo "| --- | --- | --- | --- |"
for c in 1 16 64; do
  echo "| 1 node vs PostgreSQL 15, $c clients (creates/s) | ${result[po1_$c]} | ${result[pg_$c]} | $(ratio "${result[po1_$c]}" "${result[pg_$c]}") |"
done
echo "| 3 nodes (64 clients) vs etcd 3.4 3-node puts/s (check perf l, 500 clients; one run) | ${result[po3_64]} | ${result[etcd]} | $(ratio "${result[po3_64]}" "${result[etcd]}") |"
for n in 1 3; do
  echo "| $n node(s): stale reads vs hello-world axum (64 clients) | ${result[stale_$n]} | ${result[hello_$n]} | $(ratio "${result[stale_$n]}" "${result[hello_$n]}") |"
  echo "| $n node(s): linearizable reads vs hello-world axum (64 clients) | ${result[lin_$n]} | ${result[hello_$n]} | $(ratio "${result[lin_$n]}" "${result[hello_$n]}") |"
done
for n in 1 3; do
  echo "| $n node(s): stale reads vs hello-world axum, one process per node | ${result[stale_$n]} | ${result[hellopn_$n]} | $(ratio "${result[stale_$n]}" "${result[hellopn_$n]}") |"
  echo "| $n node(s): linearizable reads vs hello-world axum, one process per node | ${result[lin_$n]} | ${result[hellopn_$n]} | $(ratio "${result[lin_$n]}" "${result[hellopn_$n]}") |"
done
echo "| disk fdatasync ops/s (reference) | | ${result[fsync]} | |"
echo "3 nodes, 1 / 16 clients: ${result[po3_1]} / ${result[po3_16]} creates/s; medians of $rounds runs of $secs s"
