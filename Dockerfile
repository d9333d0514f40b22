# syntax=docker/dockerfile:1
# Multi-stage build: compile in the official Rust image, run from a slim Debian with only the
# binary and CA certificates, as an unprivileged user.
#   docker build -t pizza-orders .
#   docker run --stop-timeout 40 -v /srv/node1.toml:/etc/pizza-orders/node.toml:ro \
#     -v pizza-orders-data:/var/lib/pizza-orders -p 8080:8080 pizza-orders
# --stop-timeout: Docker's default 10 s would SIGKILL a node still draining (drain ≤ 20 s).
# Without a registry (no rust/debian images to pull): the same final stage from an mmdebstrap
# base and the host's cargo build, deploy/container/Containerfile.runtime (its README.md).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# benches/ and tools/ only because Cargo.toml declares [[bench]] targets and a workspace member
# (tools/lincheck), and cargo checks they exist.
COPY benches ./benches
COPY tools ./tools
COPY src ./src
# Cache the registry and target dir between builds (BuildKit); the binary is copied out of
# the cache mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin pizza-orders \
    && install -D -m 0755 target/release/pizza-orders /out/pizza-orders

FROM debian:bookworm-slim
# ca-certificates is left unpinned on purpose: it should follow Debian's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pizza \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/pizza-orders pizza \
    && mkdir -p /var/lib/pizza-orders /etc/pizza-orders \
    && chown 10001:10001 /var/lib/pizza-orders \
    && chmod 0700 /var/lib/pizza-orders
COPY --from=build /out/pizza-orders /usr/local/bin/pizza-orders
USER 10001:10001
# Defaults for a container; /etc/pizza-orders/node.toml (mounted) and PIZZA_ORDERS_* override.
ENV PIZZA_ORDERS_LISTEN=0.0.0.0:8080 \
    PIZZA_ORDERS_DATA_DIR=/var/lib/pizza-orders \
    PIZZA_ORDERS_LOG__FORMAT=json
EXPOSE 8080
VOLUME ["/var/lib/pizza-orders"]
# No HEALTHCHECK: the image has no HTTP client; orchestrators probe /healthz and /readyz.
ENTRYPOINT ["pizza-orders"]
CMD ["serve", "--config", "/etc/pizza-orders/node.toml"]
