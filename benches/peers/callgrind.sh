#!/usr/bin/env bash
# Instructions a request costs one node, counted by callgrind: repeatable where seconds on a
# shared machine are not (two runs of one build agree within ~0.1 %).
#   bash benches/peers/callgrind.sh BIN WHAT [N=2000] [OUT=target/callgrind.out]
# WHAT: stale | lin (GET of one order, ?consistency=stale or linearizable) | create (POST
# /v1/orders, every request a new user) | a path such as /healthz or /v1/menu (GET, no token).
# One node of BIN under `valgrind --tool=callgrind` (fresh data dir, 127.0.0.1, one worker
# thread), driven by a Python client over one keep-alive connection outside valgrind: 200
# requests to warm up, the counters zeroed (callgrind_control -z), N requests, a dump
# (callgrind_control -d). Prints the instructions of the whole process per request (every
# thread: the Raft core, apply and the timers count too) and keeps the dump in OUT for
# `callgrind_annotate --inclusive=yes --tree=calling OUT`.
# Needs valgrind (Debian: valgrind, which has callgrind_control) and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { echo "usage: $0 BIN stale|lin|create|/PATH [N=2000] [OUT=target/callgrind.out]" >&2; exit 2; }
bin=$(realpath "$1") what=$2 n=${3:-2000} out=${4:-target/callgrind.out}
[[ $n =~ ^[1-9][0-9]{0,5}$ ]] || { echo "N: 1 to 999999" >&2; exit 2; }
case $what in stale | lin | create | /*) ;; *) echo "WHAT: stale, lin, create or a path (/healthz)" >&2; exit 2 ;; esac
[ -x "$bin" ] || { echo "no executable $bin" >&2; exit 1; }
for tool in valgrind callgrind_control python3 curl; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (Debian: apt-get install valgrind python3 curl)" >&2; exit 1; }
done
# shellcheck source=benches/peers/common.sh
. benches/peers/common.sh
W=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
secret=wrk-bench-secret-wrk-bench-secret-0123456
bench_config "$W/node.toml" "$secret"
mapfile -t common < <(bench_settings "$W/node.toml")
"$bin" token --config "$W/node.toml" --user reader > "$W/token"
[ "$what" = create ] && "$bin" token --config "$W/node.toml" --user buyer --count $((n + 200)) > "$W/tokens"
valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" "$bin" serve "${common[@]}" \
  --listen "127.0.0.1:$port" --data-dir "$W/data" --set cluster.node_id=1 --set cluster.bootstrap=true \
  --set runtime.worker_threads=1 > "$W/node.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$W/node.log" >&2; exit 1; }
  sleep 0.5
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "the node did not get ready under valgrind" >&2; exit 1; }
slot=$(date -u -d tomorrow +%Y-%m-%dT17:00:00Z)
WHAT=$what N=$n PORT=$port PID=$pid SLOT=$slot TOKEN=$(cat "$W/token") TOKENS="$W/tokens" python3 - <<'PY'
import http.client, json, os, subprocess
what, n, pid = os.environ["WHAT"], int(os.environ["N"]), os.environ["PID"]
c = http.client.HTTPConnection("127.0.0.1", int(os.environ["PORT"]))
order = json.dumps({"address": "1 Main St", "size": "small", "toppings": [], "delivery_slot": os.environ["SLOT"]})
def call(method, path, token=None, body=None, expect=200):
    headers = {"Content-Type": "application/json"} if body else {}
    if token:
        headers["Authorization"] = "Bearer " + token
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    if r.status != expect:
        raise SystemExit(f"{method} {path}: {r.status} {data[:200]!r}")
    return data
if what == "create":
    tokens = iter(open(os.environ["TOKENS"]).read().split())
    one = lambda: call("POST", "/v1/orders", next(tokens), order, 201)
else:
    reader = os.environ["TOKEN"]
    placed = json.loads(call("POST", "/v1/orders", reader, order, 201))["id"]
    path = {"stale": f"/v1/orders/{placed}?consistency=stale", "lin": f"/v1/orders/{placed}"}.get(what, what)
    token = reader if what in ("stale", "lin") else None
    one = lambda: call("GET", path, token)
for _ in range(200):
    one()
subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
for _ in range(n):
    one()
subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
PY
sleep 1
dump=$(ls -t "$W"/cg.out* | head -1)
mkdir -p "$(dirname "$out")"
cp "$dump" "$out"
total=$(awk '/^(summary|totals):/ {print $2; exit}' "$out")
echo "$what $(basename "$bin"): $((total / n)) instructions a request ($n requests; dump in $out)"
