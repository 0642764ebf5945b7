# prep container image: multi-stage, small runtime, non-root, exec-form entrypoint.
#
#   docker build -t prep .                       # builder: rust image, runtime: debian slim
#   docker run --rm -v $PWD:/w -w /w prep run pipelines/sentiment.toml
#
# Base images are build arguments so users get the ordinary public bases
# and the offline test (tests/container/test_image.sh) a local one. The
# `prebuilt` target packs a binary built on the host instead of compiling
# in the image (same runtime layout).
ARG BUILDER_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin prep && strip target/release/prep

FROM ${RUNTIME_IMAGE} AS runtime-base
# CA roots for HTTPS to S3/GCS/Azure; skipped when the base already has them.
RUN if [ ! -e /etc/ssl/certs/ca-certificates.crt ]; then \
      apt-get update && apt-get install -y --no-install-recommends ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && (getent passwd prep >/dev/null || useradd --system --uid 10001 --home-dir /home/prep --create-home prep) \
    && mkdir -p /opt/ml/processing /opt/ml/output && chown -R 10001:10001 /opt/ml
WORKDIR /home/prep

FROM runtime-base AS prebuilt
COPY target/release/prep /usr/local/bin/prep
USER 10001:10001
ENTRYPOINT ["prep"]

FROM runtime-base AS runtime
COPY --from=build /src/target/release/prep /usr/local/bin/prep
USER 10001:10001
ENTRYPOINT ["prep"]
