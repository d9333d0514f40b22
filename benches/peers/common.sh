# shellcheck shell=bash
# Helpers shared by the peers scripts (wrk.sh, builds-ab.sh, reads-ab.sh, follower-reads-ab.sh,
# restart-ab.sh, tokens-wrk.sh) and benches/tls/run.sh: sourced, not run.

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

# Installs wrk from Debian when it is missing.
need_wrk() {
  command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
}

# The median of the numbers given (words; blanks ignored).
median() { tr ' ' '\n' <<<"$*" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# CPU ticks (user + system, 1/100 s) a process (PID) or one of its threads (PID/task/TID) has
# used so far.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# start_hello DIR WORKERS: the hello-world ceiling (the newest target/release/deps/load-*'s
# `hello-serve`) with WORKERS threads; sets HELLO_PID and HELLO_PORT. It stops when its stdin,
# this shell's descriptor 9, closes: the caller's cleanup runs `exec 9>&-`.
start_hello() {
  local loadbin
  loadbin=$(find target/release/deps -maxdepth 1 -name 'load-*' -type f -executable -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2)
  [ -n "$loadbin" ] || { echo "no load bench binary (cargo bench --bench load --no-run)" >&2; exit 1; }
  mkfifo "$1/hello.in"
  "$loadbin" hello-serve --bench --workers "$2" < "$1/hello.in" > "$1/hello.port" 2>/dev/null &
  HELLO_PID=$!
  exec 9> "$1/hello.in"
  wait_for "the hello-world server" test -s "$1/hello.port"
  HELLO_PORT=$(head -1 "$1/hello.port")
}

# ab_args "$@": the two builds and the rounds of an A/B script (OLD_BIN NEW_BIN [ROUNDS=5]
# [SECS=5]); sets old, new, rounds, secs or exits 2 with the usage.
ab_args() {
  [ $# -ge 2 ] || { echo "usage: $0 OLD_BIN NEW_BIN [ROUNDS=5] [SECS=5]" >&2; exit 2; }
  old=$(realpath "$1") new=$(realpath "$2") rounds=${3:-5} secs=${4:-5}
  [[ $rounds =~ ^[1-9][0-9]?$ && $secs =~ ^[1-9][0-9]?$ ]] || { echo "ROUNDS and SECS: 1 to 99" >&2; exit 2; }
}

# bench_workdir: a scratch directory W and a list `pids` of the processes started; at exit
# the processes are stopped (the hello-world server by closing descriptor 9) and W removed.
bench_workdir() {
  W=$(mktemp -d)
  pids=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  exec 9>&- 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
