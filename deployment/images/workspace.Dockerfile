# syntax=docker/dockerfile:1
# Production workspace image: Debian slim with Python 3 (and /opt/venv), Node.js, git,
# the Claude Code CLI and the workspace agent; runs as uid 1000 with a read-only root
# (the runtime mounts tmpfs on /tmp, /home/appuser, /run and /workspace).
#
# Build from the repository root (needs a registry for the base images):
#   docker build -f deployment/images/workspace.Dockerfile -t agent-workspace:latest .
# Offline (tests, quick start) the minimal image comes from build-offline.sh instead.

ARG RUST_IMAGE=rust:1.85-slim-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p agent --bin workspace-agent \
 && install -m 0755 target/release/workspace-agent /workspace-agent

FROM ${BASE_IMAGE}
# The CLI's version is pinned in one place, claude-code.version (also read by the
# offline builder): a workspace image is a reproducible artefact. As in the offline
# image, the CLI is the native binary of its platform package (npm pack checks the
# registry's integrity hash); it needs no Node.js (the npm package's installer wants
# Node >= 22, bookworm has 18). Node.js and npm stay for the agent's own work.
COPY deployment/images/claude-code.version /tmp/claude-code.version

ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates git python3 python3-venv python3-pip nodejs npm \
      procps less file unzip xz-utils jq ripgrep \
 && cd /tmp \
 && npm pack --silent "@anthropic-ai/claude-code-linux-$(dpkg --print-architecture | sed 's/amd64/x64/')@$(tr -d '[:space:]' </tmp/claude-code.version)" \
 && tar -xzf anthropic-ai-claude-code-linux-*.tgz package/claude \
 && install -m 0755 package/claude /usr/local/bin/claude \
 && rm -rf package anthropic-ai-claude-code-linux-*.tgz \
 && cd / \
 && npm cache clean --force \
 && python3 -m venv --system-site-packages /opt/venv \
 && groupadd --gid 1000 appuser \
 && useradd --uid 1000 --gid 1000 --home-dir /home/appuser --create-home --shell /bin/bash appuser \
 && mkdir -p /workspace /run/workspace \
 && chown 1000:1000 /workspace /home/appuser \
 && rm -rf /var/lib/apt/lists/* /root/.npm /tmp/claude-code.version

COPY --from=build /workspace-agent /usr/local/bin/workspace-agent

# Package installs go to the user's tmpfs home (the root is read-only):
# pip --user into ~/.local, npm -g into ~/.npm-global.
ENV PATH=/home/appuser/.local/bin:/home/appuser/.npm-global/bin:/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    HOME=/home/appuser \
    PIP_USER=1 \
    PYTHONUSERBASE=/home/appuser/.local \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    npm_config_prefix=/home/appuser/.npm-global \
    DISABLE_AUTOUPDATER=1 \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
    WORKSPACE_AGENT_CLAUDE_PATH=/usr/local/bin/claude

USER 1000:1000
WORKDIR /workspace
CMD ["/usr/local/bin/workspace-agent"]
