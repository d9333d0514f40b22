# shellcheck shell=bash
# Sourced by the checks that need one fresh node (.ci/schemathesis, .ci/lighthouse):
#   start_single_node < CONFIG_TOML
# builds the debug binary, starts it on 127.0.0.1 with that config and an empty data
# directory, stops it and removes everything on exit, and sets bin, work (the folder holding
# config.toml) and base (the node's URL).
start_single_node() {
  cargo build --quiet --locked --bin pizza-orders
  bin=target/debug/pizza-orders
  work=$(mktemp -d)
  cat > "$work/config.toml"
  "$bin" serve --config "$work/config.toml" --data-dir "$work/data" > "$work/out" 2> "$work/err" &
  node_pid=$!
  trap 'kill "$node_pid" 2>/dev/null; wait "$node_pid" 2>/dev/null; rm -rf "$work"' EXIT
  for _ in $(seq 1 100); do
    grep -q "listening on" "$work/out" 2>/dev/null && break
    sleep 0.1
  done
  base=$(sed -n 's/^pizza-orders listening on //p' "$work/out")
  [ -n "$base" ] || { echo "the node did not start:"; cat "$work/err"; exit 1; }
}
