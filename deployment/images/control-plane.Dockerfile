# syntax=docker/dockerfile:1
# Production control-plane image (ECS service, or a host with the Docker socket for
# the local runtime). Build from the repository root:
#   docker build -f deployment/images/control-plane.Dockerfile -t control-plane:latest .

ARG RUST_IMAGE=rust:1.85-slim-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p control-plane --bin control-plane \
 && install -m 0755 target/release/control-plane /control-plane

FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin controlplane \
 && install -d -o 10001 -g 10001 -m 0700 /var/spool/control-plane
# /var/spool/control-plane: the sync spool (CP_SYNC__SPOOL_DIR, TMPDIR). On ECS it is a task
# volume; Fargate gives a volume the ownership of the image's directory at that path.
COPY --from=build /control-plane /usr/local/bin/control-plane
# With runtime=docker the process needs the engine's socket (run it as a member of
# the socket's group, or as root on a dedicated host); with runtime=ecs it needs
# only its task role.
USER 10001
EXPOSE 8700
ENV CP_LISTEN=0.0.0.0:8700
# Liveness and readiness: GET /health/live and /health/ready (the ALB target group checks them).
CMD ["/usr/local/bin/control-plane"]
