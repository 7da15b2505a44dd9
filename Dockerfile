# vpc-flow-exporter image: a cargo build stage, then a slim runtime with only
# the binary and CA certificates (for the AWS endpoints).
#
#   docker build -t vpc-flow-exporter .
#   docker run --rm -p 10190:10190 vpc-flow-exporter            # demo mode
#   docker run --rm -p 10190:10190 -v "$PWD/config.yml:/etc/vpc-flow-exporter/config.yml:ro" \
#     -e AWS_REGION vpc-flow-exporter --config.file=/etc/vpc-flow-exporter/config.yml
#
# Plain Dockerfile syntax only: it builds the same with BuildKit (docker build,
# docker compose v2) and with the classic builder (docker-compose 1.x,
# DOCKER_BUILDKIT=0). No `RUN --mount` cache: the dependencies are built in a
# layer of their own instead, which both builders cache.
# scripts/check-deploy.sh lints this file (hadolint) and checks those rules.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# aws-lc-sys (TLS for the AWS SDK) compiles C code with the cc crate: a C
# toolchain is enough, no cmake (on x86_64 and aarch64 Linux).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# 1. The dependencies, from the manifest and lock file alone, over stub
#    sources: this layer is rebuilt only when Cargo.toml or Cargo.lock change.
#    benches/ is copied because Cargo.toml names its targets.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin vpc-flow-exporter \
 && rm -rf src

# 2. The crate itself. COPY keeps the files' own modification times, which can
#    be older than the stub build: touch them so that cargo rebuilds the crate.
COPY src ./src
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin vpc-flow-exporter \
 && install -D -m 0755 target/release/vpc-flow-exporter /out/vpc-flow-exporter \
 && /out/vpc-flow-exporter --version

FROM debian:${DEBIAN_RELEASE}-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/vpc-flow-exporter /etc/vpc-flow-exporter \
 && chown 65534:65534 /var/lib/vpc-flow-exporter
COPY --from=build /out/vpc-flow-exporter /usr/local/bin/vpc-flow-exporter
USER 65534:65534
EXPOSE 10190
ENTRYPOINT ["/usr/local/bin/vpc-flow-exporter"]
CMD ["demo"]
