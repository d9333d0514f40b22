#!/usr/bin/env bash
# Read throughput per token kind, driven by wrk: one node with `[auth.oidc]` (its keys from a
# JWKS file made here: RS256, ES256, EdDSA), GET own order (?consistency=stale, 64 connections)
# with an HS256 token of `pizza-orders token` and with a provider's RS256, ES256 and EdDSA token
# (signed by tests/oidc-provider's `sign`, i.e. jose), and hello-world as the ceiling. Every
# round alternates the order; prints every run (stderr), then per kind the median rate and its
# ratio to HS256's and to hello-world's. One token per kind: after its first request a token is
# remembered, so this measures the steady state a browser sees; the first verification's cost
# per kind is `cargo bench --bench tokens`.
#   bash benches/peers/tokens-wrk.sh BIN [ROUNDS=3] [SECS=5]
# Needs node and the test provider's packages (bash .ci/web-tools), wrk, and the load bench's
# hello-serve (cargo bench --bench load --no-run).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 BIN [ROUNDS=3] [SECS=5]" >&2; exit 2; }
bin=$(realpath "$1") rounds=${2:-3} secs=${3:-5}
[[ $rounds =~ ^[1-9][0-9]?$ && $secs =~ ^[1-9][0-9]?$ ]] || { echo "ROUNDS and SECS: 1 to 99" >&2; exit 2; }
# shellcheck source=benches/peers/common.sh
. benches/peers/common.sh
need_wrk
W=$(mktemp -d)
pids=()
cleanup() {
  exec 9>&- 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
provider=tests/oidc-provider/provider.mjs
issuer=https://id.example.test
for k in RS256:rs ES256:es EdDSA:ed; do
  node "$provider" genkey "${k%%:*}" "${k##*:}" 2>/dev/null > "$W/${k##*:}.jwk"
done
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
public = []
for kid in ("rs", "es", "ed"):
    key = json.load(open(f"{w}/{kid}.jwk"))
    json.dump({"keys": [key]}, open(f"{w}/{kid}.keys", "w"))
    public.append({k: v for k, v in key.items() if k not in ("d", "p", "q", "dp", "dq", "qi")})
json.dump({"keys": public}, open(f"{w}/public.json", "w"))
PY
secret=wrk-bench-secret-wrk-bench-secret-0123456
bench_config "$W/node.toml" "$secret"
cat >> "$W/node.toml" <<CONFIG
[auth.oidc]
name = "idp"
issuer = "$issuer"
audience = "pizza-orders"
jwks_file = "$W/public.json"
CONFIG
mapfile -t common < <(bench_settings "$W/node.toml")
port=17301
"$bin" serve "${common[@]}" --listen "127.0.0.1:$port" --data-dir "$W/data" --set cluster.node_id=1 --set cluster.bootstrap=true > "$W/node.log" 2>&1 &
npid=$!; pids+=("$npid")
wait_for "the node" curl -sf "http://127.0.0.1:$port/readyz"
exp=$(($(date +%s) + 7200))
"$bin" token --config "$W/node.toml" --user reader-hs --ttl 2h > "$W/hs.token"
for kid in rs es ed; do
  echo "{\"iss\":\"$issuer\",\"aud\":\"pizza-orders\",\"sub\":\"reader-$kid\",\"exp\":$exp}" \
    | KEYS_FILE="$W/$kid.keys" node "$provider" sign 2>/dev/null > "$W/$kid.token"
done
slot=$(date -u -d tomorrow +%Y-%m-%dT17:00:00Z)
for kind in hs rs es ed; do
  id=$(curl -sf -X POST "http://127.0.0.1:$port/v1/orders" -H "authorization: Bearer $(cat "$W/$kind.token")" -H 'content-type: application/json' \
    -d "{\"address\":\"12 Long Street, Springfield\",\"size\":\"large\",\"toppings\":[\"pepperoni\"],\"delivery_slot\":\"$slot\"}" \
    | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
  echo "http://127.0.0.1:$port/v1/orders/$id?consistency=stale" > "$W/$kind.url"
done
loadbin=$(find target/release/deps -maxdepth 1 -name 'load-*' -type f -executable -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2)
[ -n "$loadbin" ] || { echo "no load bench binary (cargo bench --bench load --no-run)" >&2; exit 1; }
mkfifo "$W/hello.in"
"$loadbin" hello-serve --bench --workers 2 < "$W/hello.in" > "$W/hport" 2>/dev/null &
pids+=("$!")
exec 9> "$W/hello.in"
wait_for "the hello-world server" test -s "$W/hport"
hp=$(head -1 "$W/hport")
declare -A rates
for r in $(seq "$rounds"); do
  order=(hello hs rs es ed)
  ((r % 2)) || order=(ed es rs hs hello)
  for kind in "${order[@]}"; do
    if [ "$kind" = hello ]; then
      out=$(wrk -t2 -c64 -d"${secs}s" "http://127.0.0.1:$hp/hello")
    else
      out=$(wrk -t2 -c64 -d"${secs}s" -H "authorization: Bearer $(cat "$W/$kind.token")" "$(cat "$W/$kind.url")")
    fi
    bad=$(grep -E "Non-2xx|Socket errors" <<< "$out" || true)
    [ -z "$bad" ] || { echo "$kind: $bad" >&2; exit 1; }
    rate=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
    p50=$(awk '/Latency/ {print $2}' <<< "$out")
    echo "round $r $kind: $rate/s (mean latency $p50)" >&2
    rates[$kind]+="$rate "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
hs=$(median <<< "${rates[hs]}") hello=$(median <<< "${rates[hello]}")
printf '| token | GET own order, stale, 64 conn | vs HS256 | vs hello-world |\n| --- | --- | --- | --- |\n'
for kind in hello hs rs es ed; do
  m=$(median <<< "${rates[$kind]}")
  name=$(case $kind in hello) echo "hello-world";; hs) echo "HS256 (pizza-orders token)";; rs) echo "RS256 (provider)";; es) echo "ES256 (provider)";; ed) echo "EdDSA (provider)";; esac)
  printf '| %s | %.0f/s | %.2f | %.2f |\n' "$name" "$m" "$(echo "$m / $hs" | bc -l)" "$(echo "$m / $hello" | bc -l)"
done
