#!/usr/bin/env bash
# Build pizza-orders as released at TAG (default: the first word of tests/fixtures/upgrade-from,
# the release the rolling-upgrade test starts from) and print the binary's path:
#   target/releases/TAG/pizza-orders
# A build of the same commit is reused. Exit 3: TAG is not in this clone (fetch the tags).
set -euo pipefail
cd "$(dirname "$0")/.."
# tests/fixtures/upgrade-from: "TAG COMMIT"; the commit is used where the tag was not cloned.
read -r default_tag default_commit < tests/fixtures/upgrade-from
tag=${1:-$default_tag}
if ! commit=$(git rev-parse --verify --quiet "$tag^{commit}"); then
  if [ "$tag" = "$default_tag" ] && commit=$(git rev-parse --verify --quiet "$default_commit^{commit}"); then
    :
  else
    echo "error: release $tag is not in this clone; run 'git fetch --tags' and try again" >&2
    exit 3
  fi
fi
out=target/releases/$tag
if [[ -x $out/pizza-orders && "$(cat "$out/commit" 2>/dev/null)" == "$commit" ]]; then
  echo "$out/pizza-orders"
  exit 0
fi
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git archive "$commit" | tar -x -C "$src"
echo "building pizza-orders $tag ($commit) ..." >&2
# One target directory for every old release: their dependencies are mostly the same.
cargo build --locked --quiet --bin pizza-orders --manifest-path "$src/Cargo.toml" \
  --target-dir target/releases/build >&2
mkdir -p "$out"
cp target/releases/build/debug/pizza-orders "$out/pizza-orders.tmp"
mv "$out/pizza-orders.tmp" "$out/pizza-orders"
echo "$commit" > "$out/commit"
echo "$out/pizza-orders"
