#!/usr/bin/env bash
# Availability reads straight to a node against the same reads through nginx running
# deploy/nginx/pizza-orders.conf (cache HITs), side by side with wrk, alternating rounds.
#
#   bash benches/proxy/run.sh [rounds=3] [seconds=5] [connections=32]
#
# Needs wrk and nginx (Debian: apt-get install wrk nginx). Everything listens on 127.0.0.1 and
# is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
seconds=${2:-5}
connections=${3:-32}
for tool in wrk nginx; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "error: $tool is not installed (apt-get install wrk nginx)" >&2; exit 2; }
done
cargo build --release --quiet --bin pizza-orders
bin=target/release/pizza-orders
work=$(mktemp -d)
node_pid=""; nginx_pid=""
cleanup() {
  [ -n "$nginx_pid" ] && kill -TERM "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  [ -n "$node_pid" ] && kill -TERM "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
node_port=$(free_port); nginx_port=$(free_port)
cat > "$work/node.toml" <<TOML
listen = "127.0.0.1:$node_port"
[auth]
jwt_secret = "proxy-bench-secret-proxy-bench-secret-000"
[cluster]
secret = "proxy-bench-cluster-secret-proxy-bench-00"
[slots]
opens = "00:00"
closes = "24:00"
[log]
filter = "error"
TOML
"$bin" serve --config "$work/node.toml" --data-dir "$work/data" > "$work/node.out" 2>&1 &
node_pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/node.out" && break; sleep 0.1; done
sed -e "s|server 127.0.0.1:8080|server 127.0.0.1:$node_port|" \
    -e "s|/var/cache/nginx/pizza-orders|$work/cache|" \
    -e "s|listen 80;|listen 127.0.0.1:$nginx_port;|" deploy/nginx/pizza-orders.conf > "$work/site.conf"
user=""; [ "$(id -u)" -eq 0 ] && user="user root;"
cat > "$work/nginx.conf" <<CONF
$user
daemon off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy; fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  include $work/site.conf;
}
CONF
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
"$nginx_bin" -p "$work" -c "$work/nginx.conf" &
nginx_pid=$!
for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$nginx_port") 2>/dev/null && break; sleep 0.1; done
day=$(date -u -d '+2 days' +%F)
path="/v1/stores/main/slots?from=${day}T00:00:00Z&to=$(date -u -d '+3 days' +%F)T00:00:00Z"
curl -s -o /dev/null "http://127.0.0.1:$nginx_port$path"  # warm the cache
run() { # url → "req/s p99_ms"
  wrk -t1 -c"$connections" -d"${seconds}s" --latency "$1" | awk '
    /Requests\/sec/ { rps = $2 }
    /^ +99%/ { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } p99 = v }
    END { printf "%s %s\n", rps, p99 }'
}
direct=(); proxied=()
for r in $(seq 1 "$rounds"); do
  direct+=("$(run "http://127.0.0.1:$node_port$path")")
  proxied+=("$(run "http://127.0.0.1:$nginx_port$path")")
  echo "round $r: direct ${direct[-1]} | nginx ${proxied[-1]}  (req/s p99_ms)"
done
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
d_rps=$(printf '%s\n' "${direct[@]}" | cut -d' ' -f1 | median); d_p99=$(printf '%s\n' "${direct[@]}" | cut -d' ' -f2 | median)
n_rps=$(printf '%s\n' "${proxied[@]}" | cut -d' ' -f1 | median); n_p99=$(printf '%s\n' "${proxied[@]}" | cut -d' ' -f2 | median)
hits=$(curl -s -D - -o /dev/null "http://127.0.0.1:$nginx_port$path" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache-status" { print $2 }')
echo "| availability, one day (48 slots), $connections connections | direct $d_rps req/s, p99 $d_p99 ms | nginx ($hits) $n_rps req/s, p99 $n_p99 ms | $(awk -v a="$n_rps" -v b="$d_rps" 'BEGIN { printf "%.2fx", a / b }') |"
