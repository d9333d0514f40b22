#!/usr/bin/env bash
# Build the base image of deploy/container/Containerfile.runtime without a container registry:
# a Debian bookworm minbase root file system made by mmdebstrap (with ca-certificates),
# imported into podman's local storage with `podman import`.
#
#   bash deploy/container/build-base.sh              # skip if the image already exists
#   bash deploy/container/build-base.sh --rebuild    # make it again (fresh security updates)
#
# Needs root (or mmdebstrap's unshare mode with uidmap), mmdebstrap, podman and a reachable
# Debian mirror (deb.debian.org, or MIRROR=...). Environment:
#   BASE_IMAGE  the tag to create          (default localhost/pizza-orders-base:bookworm)
#   MIRROR      the Debian mirror          (default http://deb.debian.org/debian)
#   SECURITY_MIRROR                        (default http://deb.debian.org/debian-security)
#   PODMAN      the podman command         (default "podman")
set -euo pipefail

image=${BASE_IMAGE:-localhost/pizza-orders-base:bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
security_mirror=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
read -r -a podman <<< "${PODMAN:-podman}"

rebuild=false
case "${1:-}" in
  "") ;;
  --rebuild) rebuild=true ;;
  -h | --help)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: $0 [--rebuild]" >&2
    exit 2
    ;;
esac

for tool in mmdebstrap "${podman[0]}"; do
  if ! command -v "$tool" > /dev/null 2>&1; then
    echo "error: $tool is not installed (Debian: apt-get install mmdebstrap podman)" >&2
    exit 2
  fi
done

if ! $rebuild && "${podman[@]}" image exists "$image"; then
  echo "base image $image exists; not rebuilt (--rebuild to make it again)"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

start=$(date +%s.%N)
# minbase: essential + apt, nothing else; ca-certificates for outgoing HTTPS (like the
# Dockerfile's debian:bookworm-slim stage). The image's apt sources include the updates and
# security suites, so a --rebuild picks up security fixes. Documentation, manual pages and
# translations are left out (the image only runs one binary).
mmdebstrap --variant=minbase --include=ca-certificates --format=tar \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --quiet \
  bookworm "$work/rootfs.tar" \
  "deb $mirror bookworm main" \
  "deb $mirror bookworm-updates main" \
  "deb $security_mirror bookworm-security main"
made=$(date +%s.%N)

"${podman[@]}" import \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'LABEL org.opencontainers.image.description="Debian bookworm minbase + ca-certificates (mmdebstrap), base of pizza-orders"' \
  --message "mmdebstrap bookworm minbase + ca-certificates" --quiet \
  "$work/rootfs.tar" "$image" > /dev/null
done_at=$(date +%s.%N)

size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
awk -v img="$image" -v a="$start" -v b="$made" -v c="$done_at" -v size="$size" 'BEGIN {
  printf "base image %s built: mmdebstrap %.1f s, podman import %.1f s, %d MB\n", img, b - a, c - b, size / 1000000 }'
