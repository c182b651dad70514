# syntax=docker/dockerfile:1
# mqtt-sentinel: static OpenSSL (Paho's vendored-ssl), distroless runtime, non-root, no shell,
# nothing written at run time (read-only root filesystem friendly).
#
#   docker build -t mqtt-sentinel --build-arg MQTT_SENTINEL_REVISION=$(git rev-parse --short=12 HEAD) .
#   docker run --rm -p 10883:10883 -e MQTT_SENTINEL_CONFIG=/etc/mqtt-sentinel/sentinel.yaml \
#     -v $PWD/examples/config:/etc/mqtt-sentinel:ro mqtt-sentinel
#
# scripts/build-release.sh builds the same binary the same way without Docker; CI runs it.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake make perl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ARG MQTT_SENTINEL_REVISION=unknown
ENV MQTT_SENTINEL_REVISION=${MQTT_SENTINEL_REVISION}
RUN cargo build --release --locked --features vendored-ssl \
    && install -m 0755 target/release/mqtt-sentinel /mqtt-sentinel

# scripts/build-image.sh builds this stage without Docker or a registry (buildah from scratch
# with the same contents and settings); tests/it/container.rs fails when the two disagree.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG MQTT_SENTINEL_REVISION=unknown
LABEL org.opencontainers.image.title="mqtt-sentinel" \
      org.opencontainers.image.description="Watches MQTT brokers and exports their health as Prometheus metrics" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${MQTT_SENTINEL_REVISION}"
COPY --from=build /mqtt-sentinel /usr/local/bin/mqtt-sentinel
USER nonroot:nonroot
EXPOSE 10883
# Set MQTT_SENTINEL_CONFIG (not --config) so the healthcheck reads the same listen address.
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
    CMD ["/usr/local/bin/mqtt-sentinel", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/mqtt-sentinel"]
