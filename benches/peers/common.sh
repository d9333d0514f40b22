# shellcheck shell=bash
# Helpers shared by the peers scripts (wrk.sh, builds-ab.sh, reads-ab.sh, restart-ab.sh):
# sourced, not run.

# Milliseconds since the epoch.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# wait_for WHAT COMMAND...: run COMMAND until it succeeds, for at most 30 s.
wait_for() {
  local what=$1 deadline=$(($(now_ms) + 30000)); shift
  until "$@" >/dev/null 2>&1; do
    (($(now_ms) < deadline)) || { echo "timed out waiting for $what" >&2; exit 1; }
    sleep 0.1
  done
}

# bench_config FILE SECRET: a node config for benchmarks. No catalog file, so the one default
# store 'main' delivers everywhere; slots open all day; the token and cluster secrets derive
# from SECRET (at least 32 characters).
bench_config() {
  cat > "$1" <<CONFIG
[auth]
jwt_secret = "$2"
[cluster]
secret = "$2-cluster"
[slots]
opens = "00:00"
closes = "24:00"
CONFIG
}

# The settings every benchmark node runs with: quiet logs, no rate limits or analytics, and
# slots of the most capacity the catalog allows (config file first: bench_settings FILE).
bench_settings() {
  printf '%s\n' --config "$1" --set log.filter=error --set limits.enabled=false --set analytics.enabled=false \
    --set slots.capacity=1000000
}
