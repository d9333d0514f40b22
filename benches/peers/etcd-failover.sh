#!/usr/bin/env bash
# etcd 3.4's fail-over time, measured the way `cargo bench --bench load -- failover --rounds 10`
# measures ours, so the two can stand side by side.
#
#   bash benches/peers/etcd-failover.sh [ROUNDS=10] [ELECTION_MS=1000] [HEARTBEAT_MS=100] [STAGGER_MS=0]
#
# Method: three etcd members on loopback (127.0.0.1 only; client ports 12370-12372, peer ports
# 12380-12382: below Linux's ephemeral range 32768-60999, so no outgoing connection on a busy
# machine can be holding one of them; data dirs in a mktemp dir), started with
# --election-timeout ELECTION_MS --heartbeat-interval HEARTBEAT_MS (etcd's defaults: 1000, 100).
# Each round finds the leader (the member whose /v3/maintenance/status names itself leader),
# kill -9s it, takes the start time right after the kill, then puts a key through a surviving
# member (the next one, (leader + 1) mod 3, as our bench does) via etcd's JSON gateway
# (curl --max-time 0.5 POST /v3/kv/put) until a put is acknowledged: HTTP 200 with a "header"
# and no "error" in the body; at most 30 s. The round's figure is the time from the kill to
# that acknowledgement. The killed member is then restarted on its own data dir with the same
# flags (--initial-cluster-state existing); once all three answer /health true (at most 30 s)
# and 1 s more, the next round starts. Reported: each round, then the median (the upper one for
# an even count, sorted[N/2], as our bench takes it), min and max.
#
# How the attempts go: with STAGGER_MS=0 (the default) one at a time, ~5 ms apart. Beware: a
# put that reaches the survivor while it still takes the dead member for leader is forwarded
# there and lost; it does not fail fast but hangs until curl gives up at 0.5 s, and it is
# rarely acknowledged once a new leader is elected. So the sequential figure is the election
# time rounded up to the next attempt, i.e. up to ~0.5 s (on average ~0.25 s) late, in steps of
# ~0.52 s. STAGGER_MS=N > 0 starts a new attempt every N ms without waiting for earlier ones
# (each still --max-time 0.5, so at most 500/N in flight) and takes the first acknowledgement:
# granularity N ms, at the price of a curl process every N ms on the machine. Ours polls every
# 50 ms after a failed attempt, each with a 2 s timeout.
# Times come from `date +%s%N` (the system clock, not strictly monotonic; over a few seconds on
# an NTP-disciplined clock that is negligible). etcd's randomised election timeout lies in
# [ELECTION_MS, 2 × ELECTION_MS) and runs from the last heartbeat a follower got, up to one
# HEARTBEAT_MS before the kill, so expect figures from about ELECTION_MS − HEARTBEAT_MS to
# 2 × ELECTION_MS, plus the time a vote and the first put take.
#
# Installs etcd-server and etcd-client with apt-get if missing. Every etcd it starts, it stops
# (kill -9 on exit), and it removes its temporary dir. At most 60 rounds; every wait is bounded.
set -euo pipefail

rounds=${1:-10}
election=${2:-1000}
heartbeat=${3:-100}
stagger=${4:-0}
for v in "$rounds" "$election" "$heartbeat" "$stagger"; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "usage: $0 [ROUNDS=10] [ELECTION_MS=1000] [HEARTBEAT_MS=100] [STAGGER_MS=0] (integers)" >&2; exit 2; }
done
if ((stagger != 0 && (stagger < 5 || stagger > 500))); then echo "STAGGER_MS must be 0 or 5..500" >&2; exit 2; fi
if ((rounds < 1 || rounds > 60)); then echo "ROUNDS must be 1..60 (got $rounds)" >&2; exit 2; fi
if ((heartbeat < 1 || election > 50000 || election < 5 * heartbeat)); then
  echo "need 1 <= HEARTBEAT_MS, 5 × HEARTBEAT_MS <= ELECTION_MS <= 50000 (etcd's own rule)" >&2; exit 2
fi

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v curl >/dev/null 2>&1 || need+=(curl)
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
version=$(etcd --version 2>/dev/null | awk '/etcd Version/ {split($3, v, "."); print v[1] "." v[2]}')

work=$(mktemp -d)
pids=(0 0 0)      # the live process of each member
started=()        # every etcd process this script started
subshells=()      # the subshell that waits for each of them
cleanup() {
  for p in "${started[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${subshells[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

client_port() { echo $((12370 + $1)); }
peer_port() { echo $((12380 + $1)); }
for i in 0 1 2; do
  for port in "$(client_port $i)" "$(peer_port $i)"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port on 127.0.0.1 is already in use" >&2; exit 1
    fi
  done
done
cluster="e1=http://127.0.0.1:$(peer_port 0),e2=http://127.0.0.1:$(peer_port 1),e3=http://127.0.0.1:$(peer_port 2)"

start_member() { # index, initial-cluster-state
  # etcd runs under a subshell that waits for it, so that its kill -9 is not reported as a
  # killed job on stderr; the subshell writes etcd's own pid, which is what gets killed.
  local i=$1 deadline
  rm -f "$work/pid$i"
  (
  etcd --name "e$((i + 1))" --data-dir "$work/etcd$i" \
    --listen-client-urls "http://127.0.0.1:$(client_port "$i")" \
    --advertise-client-urls "http://127.0.0.1:$(client_port "$i")" \
    --listen-peer-urls "http://127.0.0.1:$(peer_port "$i")" \
    --initial-advertise-peer-urls "http://127.0.0.1:$(peer_port "$i")" \
    --initial-cluster "$cluster" --initial-cluster-state "$2" \
    --election-timeout "$election" --heartbeat-interval "$heartbeat" \
    >> "$work/etcd$i.log" 2>&1 &
  echo $! > "$work/pid$i.tmp" && mv "$work/pid$i.tmp" "$work/pid$i"
  wait $! 2>/dev/null || true
  ) &
  subshells+=($!)
  deadline=$(($(now_ms) + 5000))
  until [ -s "$work/pid$i" ]; do
    (($(now_ms) < deadline)) || { echo "etcd e$((i + 1)) did not start" >&2; exit 1; }
    sleep 0.01
  done
  pids[i]=$(cat "$work/pid$i")
  started+=("${pids[i]}")
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

wait_healthy() { # all three members answer /health with "true", at most 30 s
  local deadline=$(($(now_ms) + 30000)) i ok
  while :; do
    ok=0
    for i in 0 1 2; do
      curl -s --max-time 1 "http://127.0.0.1:$(client_port $i)/health" 2>/dev/null | grep -q '"health":"true"' && ok=$((ok + 1))
    done
    ((ok == 3)) && return 0
    for i in 0 1 2; do
      if ! kill -0 "${pids[i]}" 2>/dev/null; then
        echo "etcd e$((i + 1)) exited; last log lines:" >&2; tail -n 5 "$work/etcd$i.log" >&2; exit 1
      fi
    done
    if (($(now_ms) > deadline)); then
      echo "etcd members not all healthy after 30 s; last log lines:" >&2
      for i in 0 1 2; do tail -n 5 "$work/etcd$i.log" >&2; done
      exit 1
    fi
    sleep 0.1
  done
}

find_leader() { # prints the index of the member that reports itself leader, at most 30 s
  local deadline=$(($(now_ms) + 30000)) i body me leader
  while :; do
    for i in 0 1 2; do
      body=$(curl -s --max-time 1 -X POST "http://127.0.0.1:$(client_port $i)/v3/maintenance/status" -d '{}' 2>/dev/null) || continue
      me=$(sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p' <<<"$body")
      leader=$(sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p' <<<"$body")
      if [[ -n $me && $me == "$leader" ]]; then echo "$i"; return 0; fi
    done
    if (($(now_ms) > deadline)); then echo "no etcd leader found within 30 s" >&2; exit 1; fi
    sleep 0.1
  done
}

put_ok() { # url key → exit 0 if the put was acknowledged
  local out code body
  out=$(curl -s --max-time 0.5 -w '\n%{http_code}' -X POST "$1" -d "{\"key\":\"$2\",\"value\":\"eA==\"}" 2>/dev/null) || return 1
  code=${out##*$'\n'}
  body=${out%$'\n'*}
  [[ $code == 200 && $body == *'"header"'* && $body != *'"error"'* ]]
}

sequential_puts() { # sets ms, sent, attempt; uses round, url, t0
  local deadline=$((t0 + 30000000000)) ts t1 key
  attempt=0
  while :; do
    attempt=$((attempt + 1))
    key=$(printf 'failover/%d/%d' "$round" "$attempt" | base64 -w0)
    ts=$(date +%s%N)
    if put_ok "$url" "$key"; then
      t1=$(date +%s%N)
      ms=$(((t1 - t0) / 1000000)); sent=$(((ts - t0) / 1000000))
      return 0
    fi
    if (($(date +%s%N) > deadline)); then
      echo "round $round: no acknowledged put through member e$((survivor + 1)) within 30 s" >&2
      exit 1
    fi
    sleep 0.005
  done
}

staggered_puts() { # the same, but a new attempt every $stagger ms, not waiting for earlier ones
  local deadline=$((t0 + 30000000000)) next=$t0 now key f best="" line
  local -a inflight=()
  local dir="$work/round$round"
  mkdir -p "$dir"
  attempt=0
  while :; do
    now=$(date +%s%N)
    if ((now >= next)); then
      attempt=$((attempt + 1))
      key=$(printf 'failover/%d/%d' "$round" "$attempt" | base64 -w0)
      ( ts=$(date +%s%N)
        if put_ok "$url" "$key"; then echo "$(date +%s%N) $ts" > "$dir/ok.$attempt"; fi ) &
      inflight+=($!)
      next=$((now + stagger * 1000000))
    fi
    for f in "$dir"/ok.*; do
      [ -e "$f" ] || continue
      read -r line < "$f" || continue
      [[ $line =~ ^[0-9]+\ [0-9]+$ ]] || continue  # still being written
      if [[ -z $best || ${line%% *} -lt ${best%% *} ]]; then best=$line; fi
    done
    if [[ -n $best ]]; then
      for f in "${inflight[@]}"; do wait "$f" 2>/dev/null || true; done  # each ends within 0.5 s
      for f in "$dir"/ok.*; do  # one that finished meanwhile may have been earlier still
        read -r line < "$f" || continue
        if ((${line%% *} < ${best%% *})); then best=$line; fi
      done
      ms=$(((${best%% *} - t0) / 1000000)); sent=$(((${best##* } - t0) / 1000000))
      return 0
    fi
    if ((now > deadline)); then
      for f in "${inflight[@]}"; do wait "$f" 2>/dev/null || true; done
      echo "round $round: no acknowledged put through member e$((survivor + 1)) within 30 s" >&2
      exit 1
    fi
    sleep 0.002
  done
}

echo "== etcd $version, 3 members on 127.0.0.1, election $election ms, heartbeat $heartbeat ms, $rounds rounds, $( ((stagger == 0)) && echo "one attempt at a time" || echo "a new attempt every $stagger ms")" >&2
echo "   load average at start: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
for i in 0 1 2; do start_member "$i" new; done
wait_healthy

took=()
for round in $(seq 1 "$rounds"); do
  leader=$(find_leader)
  survivor=$(((leader + 1) % 3))
  url="http://127.0.0.1:$(client_port "$survivor")/v3/kv/put"
  kill -9 "${pids[leader]}"
  t0=$(date +%s%N)
  if ((stagger == 0)); then sequential_puts; else staggered_puts; fi
  took+=("$ms")
  echo "round $round: $ms ms (kill -9 of e$((leader + 1)), put through e$((survivor + 1)), acknowledged put sent at $sent ms, $attempt attempts)"
  deadline=$(($(now_ms) + 10000))
  while kill -0 "${pids[leader]}" 2>/dev/null; do  # reaped by its subshell once gone
    (($(now_ms) < deadline)) || { echo "killed etcd e$((leader + 1)) still there after 10 s" >&2; exit 1; }
    sleep 0.01
  done
  start_member "$leader" existing
  wait_healthy
  sleep 1
done

mapfile -t sorted < <(printf '%s\n' "${took[@]}" | sort -n)
n=${#sorted[@]}
median=${sorted[n / 2]}
min=${sorted[0]}
max=${sorted[n - 1]}
how="" ; ((stagger == 0)) || how=", overlapping attempts every $stagger ms"
echo "etcd failover: rounds $n, election $election ms, heartbeat $heartbeat ms$how: median $median ms (min $min, max $max)"
echo "| etcd $version (election $election ms, heartbeat $heartbeat ms$how) | $n rounds | median $median ms | min $min | max $max |"
