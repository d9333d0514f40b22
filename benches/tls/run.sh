#!/usr/bin/env bash
# HTTPS against plain HTTP, side by side in one run on this machine: one release node serving
# plain HTTP and one serving HTTPS (certificates from `pizza-orders certs init`), both driven
# by wrk (Debian package; far cheaper per request than the server) at the same connection
# count. Reported: requests/s and p99 with keep-alive (GET /v1/menu and GET own order with a
# token), and new connections per second (`Connection: close`: one TLS handshake per request).
# Medians of `rounds` runs, plain and TLS alternating. Loopback only; both nodes are stopped.
#   bash benches/tls/run.sh [seconds-per-run] [rounds] [connections]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
rounds=${2:-3}
conns=${3:-64}
# shellcheck source=benches/peers/common.sh
. benches/peers/common.sh
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
need_wrk
cargo build --release --quiet
bin=target/release/pizza-orders
"$bin" certs init --out "$work/certs" --nodes 1 >/dev/null
secret=bench-secret-bench-secret-bench-secret-0
common=(--set "auth.jwt_secret=$secret" --set "cluster.secret=$secret" --set "log.filter=error"
        --set "runtime.worker_threads=1")
start() { # name port extra...
  local name=$1 port=$2; shift 2
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/$name" "${common[@]}" "$@" > "$work/$name.log" 2>&1 &
  pids+=($!)
}
start plain 58080
start tls 58443 --set "tls.cert_file=$work/certs/node1.pem" --set "tls.key_file=$work/certs/node1-key.pem"
for url in http://127.0.0.1:58080/healthz https://127.0.0.1:58443/healthz; do
  for _ in $(seq 1 100); do curl -sfk "$url" >/dev/null && break; sleep 0.1; done
done
token=$("$bin" token --user bench-reader --set "auth.jwt_secret=$secret")
day=$(date -u -d "+3 days" +%Y-%m-%dT12:00:00Z)
for base in http://127.0.0.1:58080 https://127.0.0.1:58443; do
  curl -sfk -X POST "$base/v1/orders" -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"address\":\"1 Main St\",\"size\":\"medium\",\"toppings\":[],\"delivery_slot\":\"$day\",\"postcode\":\"W1D 3QU\"}" >/dev/null \
    || curl -sfk -X POST "$base/v1/orders" -H "authorization: Bearer $token" -H 'content-type: application/json' \
      -d "{\"address\":\"1 Main St\",\"size\":\"medium\",\"toppings\":[],\"delivery_slot\":\"$day\"}" >/dev/null || true
done

# wrk's summary: requests/s and the 99th percentile in ms.
run() { # url [header]
  local out
  if [ -n "${2:-}" ]; then
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -H "$2" "$1" 2>/dev/null)
  else
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$1" 2>/dev/null)
  fi
  local rate p99
  rate=$(echo "$out" | awk '/^Requests\/sec/ {print int($2)}')
  p99=$(echo "$out" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/, "", v); v/=1000} else if (v ~ /ms$/) {sub(/ms/, "", v)} else if (v ~ /s$/) {sub(/s/, "", v); v*=1000}; printf "%.2f", v}')
  echo "$rate $p99"
}
declare -A rate p99
for what in menu order close; do
  for side in plain tls; do rate[$what.$side]=""; p99[$what.$side]=""; done
done
for _ in $(seq "$rounds"); do
  for side in plain tls; do
    if [ $side = plain ]; then base=http://127.0.0.1:58080; else base=https://127.0.0.1:58443; fi
    read -r r p < <(run "$base/v1/menu"); rate[menu.$side]+="$r "; p99[menu.$side]+="$p "
    read -r r p < <(run "$base/v1/orders" "Authorization: Bearer $token"); rate[order.$side]+="$r "; p99[order.$side]+="$p "
    read -r r p < <(run "$base/v1/menu" "Connection: close"); rate[close.$side]+="$r "; p99[close.$side]+="$p "
  done
done
echo
echo "| what ($conns connections, wrk, medians of $rounds × ${secs} s) | plain req/s | TLS req/s | ratio | plain p99 ms | TLS p99 ms |"
echo "| --- | --- | --- | --- | --- | --- |"
for what in menu order close; do
  case $what in
    menu) label="GET /v1/menu, keep-alive" ;;
    order) label="GET /v1/orders (token), keep-alive" ;;
    close) label="GET /v1/menu, new connection each (handshakes/s)" ;;
  esac
  # shellcheck disable=SC2086
  pr=$(median ${rate[$what.plain]}); tr=$(median ${rate[$what.tls]})
  # shellcheck disable=SC2086
  pp=$(median ${p99[$what.plain]}); tp=$(median ${p99[$what.tls]})
  ratio=$(awk -v a="$tr" -v b="$pr" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "-" }')
  echo "| $label | $pr | $tr | $ratio | $pp | $tp |"
done
