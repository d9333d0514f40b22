#!/usr/bin/env bash
# Start a three-node cluster on loopback (ports 7001-7003, data in data/node1..3), form it,
# and print its status. `scripts/local-cluster.sh stop` stops the nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/pizza-orders
pids=data/local-cluster.pids

if [[ "${1:-start}" == "stop" ]]; then
  [[ -f $pids ]] && xargs -r kill < "$pids" && rm -f "$pids"
  echo "stopped"
  exit 0
fi

cargo build --release --quiet
mkdir -p data
: > "$pids"
for i in 1 2 3; do
  "$bin" serve --config "config/node$i.toml" > "data/node$i.log" 2>&1 &
  echo $! >> "$pids"
done
for i in 1 2 3; do
  for _ in $(seq 1 50); do
    curl -sf "http://127.0.0.1:700$i/healthz" > /dev/null && break
    sleep 0.1
  done
done
"$bin" cluster init --config config/node1.toml --node http://127.0.0.1:7001 \
  --member 1=127.0.0.1:7001 --member 2=127.0.0.1:7002 --member 3=127.0.0.1:7003 > /dev/null 2>&1 || true
sleep 1
"$bin" cluster status --config config/node1.toml --node http://127.0.0.1:7001
echo "logs: data/node1.log … data/node3.log; stop with: scripts/local-cluster.sh stop"
