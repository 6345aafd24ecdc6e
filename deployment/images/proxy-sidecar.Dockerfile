# syntax=docker/dockerfile:1
# Production egress-proxy sidecar image (the second container of every ECS workspace
# task; listens on 127.0.0.1:8080, admin on 127.0.0.1:9901). Build from the repo root:
#   docker build -f deployment/images/proxy-sidecar.Dockerfile -t proxy-sidecar:latest .
# TLS roots are compiled in (webpki-roots): the image needs no CA bundle or OpenSSL.

ARG RUST_IMAGE=rust:1.85-slim-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p proxy-sidecar --bin proxy-sidecar \
 && install -m 0755 target/release/proxy-sidecar /proxy-sidecar

FROM ${BASE_IMAGE}
RUN useradd --system --uid 65532 --home-dir /nonexistent --shell /usr/sbin/nologin proxy
COPY --from=build /proxy-sidecar /usr/local/bin/proxy-sidecar
# Runs with a read-only root, no capabilities; configuration from PROXY_* variables
# (PROXY_ALLOW, PROXY_INJECT with {"env": NAME} header values from ECS secrets,
# PROXY_BEDROCK_REGION, …; see docs/proxy.md) and AWS credentials from the chain.
USER 65532
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/usr/local/bin/proxy-sidecar", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/proxy-sidecar"]
