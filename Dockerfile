# Multi-stage build: compile in the Rust image, run as a non-root user in a slim image.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
RUN cargo build --release --locked --bin rostergate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data rostergate \
 && mkdir -p /data && chown rostergate /data
COPY --from=build /src/target/release/rostergate /usr/local/bin/rostergate
COPY config /etc/rostergate/config
USER rostergate
WORKDIR /data
# SQLite lives on the /data volume by default; set ROSTERGATE_DATABASE_URL=postgres://… for
# PostgreSQL, and ROSTERGATE_SECRET_KEY (or _FILE) so that replicas share one signing key.
ENV ROSTERGATE_ENV=production \
    ROSTERGATE_BIND=0.0.0.0:8080 \
    ROSTERGATE_DATA_DIR=/data \
    ROSTERGATE_DATABASE_URL=sqlite:///data/rostergate.db
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["rostergate", "--config-dir", "/etc/rostergate/config"]
CMD ["serve"]
