# prep container image: multi-stage, small runtime, non-root, exec-form entrypoint.
#
#   docker build -t prep .                       # builder: rust image, runtime: debian slim
#   docker run --rm -v $PWD:/w -w /w prep run pipelines/sentiment.toml
#
# Base images are build arguments so users get the ordinary public bases
# and the offline test (tests/container/test_image.sh) a local one. The
# `prebuilt` target packs a binary built on the host instead of compiling
# in the image (same runtime layout, binary stripped likewise).
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

# The host binary keeps line tables (release profile: ~436 MB); strip it as
# the build stage strips its own (~39 MB). Stripping happens in a throwaway
# stage so the unstripped copy never becomes a layer of the image. binutils
# is installed there when the base lacks `strip`; an offline build that
# cannot install it warns and keeps the binary as it is.
FROM runtime-base AS prebuilt-strip
COPY target/release/prep /tmp/prep
RUN if ! command -v strip >/dev/null 2>&1; then \
      { timeout 300 apt-get update -o Acquire::Retries=0 \
        && timeout 300 apt-get install -y --no-install-recommends binutils; } >/dev/null 2>&1 || true; \
    fi; \
    if command -v strip >/dev/null 2>&1; then \
      strip /tmp/prep; \
    else \
      echo "WARNING: no strip and binutils could not be installed: the binary stays unstripped (run 'strip target/release/prep' on the host first)" >&2; \
    fi

FROM runtime-base AS prebuilt
COPY --from=prebuilt-strip /tmp/prep /usr/local/bin/prep
USER 10001:10001
ENTRYPOINT ["prep"]

FROM runtime-base AS runtime
COPY --from=build /src/target/release/prep /usr/local/bin/prep
USER 10001:10001
ENTRYPOINT ["prep"]
