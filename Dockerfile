# Multi-stage build: compile in the official Rust image, run from a slim Debian with only the
# binary and CA certificates, as an unprivileged user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin pizza-orders

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/pizza-orders pizza \
    && mkdir -p /var/lib/pizza-orders /etc/pizza-orders \
    && chown pizza /var/lib/pizza-orders
COPY --from=build /src/target/release/pizza-orders /usr/local/bin/pizza-orders
USER 10001
ENV PIZZA_ORDERS_LISTEN=0.0.0.0:8080 \
    PIZZA_ORDERS_DATA_DIR=/var/lib/pizza-orders \
    PIZZA_ORDERS_LOG__FORMAT=json
EXPOSE 8080
VOLUME ["/var/lib/pizza-orders"]
ENTRYPOINT ["pizza-orders"]
CMD ["serve", "--config", "/etc/pizza-orders/node.toml"]
