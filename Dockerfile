# syntax=docker/dockerfile:1
# vpc-flow-exporter image: a cargo build stage, then a slim runtime with only
# the binary and CA certificates (for the AWS endpoints).
#
#   docker build -t vpc-flow-exporter .
#   docker run --rm -p 10190:10190 vpc-flow-exporter            # demo mode
#   docker run --rm -p 10190:10190 -v $PWD/config.yml:/etc/vpc-flow-exporter/config.yml:ro \
#     -e AWS_REGION vpc-flow-exporter --config.file=/etc/vpc-flow-exporter/config.yml

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# aws-lc-sys (TLS for the AWS SDK) builds C code; cmake for its fallback build.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin vpc-flow-exporter \
 && install -D -m 0755 target/release/vpc-flow-exporter /out/vpc-flow-exporter

FROM debian:${DEBIAN_RELEASE}-slim
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
