#!/usr/bin/env bash
# Start a three-node cluster on loopback (ports 7001-7003, data in data/node1..3), form it,
# and print its status. `scripts/local-cluster.sh stop` stops the nodes.
#
# `scripts/local-cluster.sh --tls` does the same over HTTPS with mutual TLS between the nodes:
# it creates a cluster CA and three node certificates in data/certs (`pizza-orders certs init`,
# once; delete data/certs for new ones) and starts each node with them. Then:
#   curl --cacert data/certs/ca.pem https://127.0.0.1:7001/healthz
# and pass `--ca-file data/certs/ca.pem` to admin commands with `--node https://…`.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/pizza-orders
pids=data/local-cluster.pids
certs=data/certs

tls=false
case "${1:-start}" in
  stop)
    [[ -f $pids ]] && xargs -r kill < "$pids" && rm -f "$pids"
    echo "stopped"
    exit 0
    ;;
  start) ;;
  --tls) tls=true ;;
  *)
    echo "usage: scripts/local-cluster.sh [--tls | stop]" >&2
    exit 2
    ;;
esac

cargo build --release --quiet
mkdir -p data

scheme=http
curl_tls=()    # extra curl arguments for the health checks
admin_tls=()   # extra arguments for the admin commands
if $tls; then
  scheme=https
  if [[ ! -f $certs/ca.pem ]]; then
    "$bin" certs init --out "$certs" --nodes 3
  fi
  curl_tls=(--cacert "$certs/ca.pem")
  admin_tls=(--ca-file "$certs/ca.pem")
fi

: > "$pids"
for i in 1 2 3; do
  node_tls=()
  if $tls; then
    # The same certificate serves the API and authenticates the node to its peers.
    # No HSTS on loopback: a browser that trusts data/certs/ca.pem would otherwise insist on
    # https for every port of localhost for a year (the single-node default is plain http).
    node_tls=(
      --set "tls.cert_file=$certs/node$i.pem" --set "tls.key_file=$certs/node$i-key.pem"
      --set tls.hsts_max_age_s=0
      --set "cluster.ca_file=$certs/ca.pem"
      --set "cluster.cert_file=$certs/node$i.pem" --set "cluster.key_file=$certs/node$i-key.pem"
    )
  fi
  "$bin" serve --config "config/node$i.toml" ${node_tls[@]+"${node_tls[@]}"} > "data/node$i.log" 2>&1 &
  echo $! >> "$pids"
done
for i in 1 2 3; do
  for _ in $(seq 1 50); do
    curl -sf ${curl_tls[@]+"${curl_tls[@]}"} "$scheme://127.0.0.1:700$i/healthz" > /dev/null && break
    sleep 0.1
  done
done
"$bin" cluster init --config config/node1.toml --node "$scheme://127.0.0.1:7001" ${admin_tls[@]+"${admin_tls[@]}"} \
  --member 1=127.0.0.1:7001 --member 2=127.0.0.1:7002 --member 3=127.0.0.1:7003 > /dev/null 2>&1 || true
sleep 1
"$bin" cluster status --config config/node1.toml --node "$scheme://127.0.0.1:7001" ${admin_tls[@]+"${admin_tls[@]}"}
echo "logs: data/node1.log … data/node3.log; stop with: scripts/local-cluster.sh stop"
if $tls; then
  echo "https: curl --cacert $certs/ca.pem https://127.0.0.1:7001/healthz; admin commands: --ca-file $certs/ca.pem"
fi
