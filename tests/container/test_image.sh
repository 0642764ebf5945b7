#!/usr/bin/env bash
# Builds the prep image offline with podman and runs the real binary inside
# the image's root filesystem against the SageMaker layout (/opt/ml/...).
#
#   tests/container/test_image.sh PATH/TO/prep
#
# What works on sandboxed CI machines (no registry, no cgroups for `podman run`):
#  - the base image is a minimal Debian bookworm made with debootstrap and
#    loaded with `podman import` (cached in $PREP_BASE_CACHE);
#  - `podman build --isolation chroot --target prebuilt` packs the host-built
#    binary into the same runtime stage users get;
#  - `podman create` + `podman mount` expose the image's rootfs, and `chroot`
#    into it (as the image's non-root user) runs prep there.
set -euo pipefail
BIN="$(realpath "${1:?usage: test_image.sh PATH/TO/prep}")"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${PREP_BASE_CACHE:-$HOME/.cache/prep-base}"
mkdir -p "$CACHE"
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot

if ! podman image exists localhost/prep-base:bookworm; then
  if [ ! -f "$CACHE/bookworm.tar" ]; then
    rm -rf "$CACHE/rootfs"
    # A mirror hiccup ("Couldn't find these debs") is retried once.
    debootstrap --variant=minbase --include=ca-certificates,passwd bookworm "$CACHE/rootfs" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 \
      || { rm -rf "$CACHE/rootfs"; sleep 5; debootstrap --variant=minbase --include=ca-certificates,passwd bookworm "$CACHE/rootfs" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1; } \
      || { tail -20 "$CACHE/debootstrap.log"; exit 1; }
    rm -rf "$CACHE/rootfs/var/cache/apt/archives"/*.deb "$CACHE/rootfs/var/lib/apt/lists"/*
    tar -C "$CACHE/rootfs" -cf "$CACHE/bookworm.tar" .
    rm -rf "$CACHE/rootfs"
  fi
  podman import "$CACHE/bookworm.tar" localhost/prep-base:bookworm >/dev/null
fi

CTX="$(mktemp -d)"
# Images this run makes (the test image and its build stages, ~1 GB each
# run) are removed on exit; left behind, a day of test runs filled 34 GB.
podman images -q --no-trunc | sort -u >"$CTX/images.before"
cleanup() {
  if [ -n "${CID:-}" ]; then
    podman umount "$CID" >/dev/null 2>&1 || true
    podman rm -f "$CID" >/dev/null 2>&1 || true
  fi
  podman images -q --no-trunc | sort -u | comm -13 "$CTX/images.before" - \
    | xargs -r podman rmi -f >/dev/null 2>&1 || true
  rm -rf "$CTX"
}
trap cleanup EXIT
cp "$REPO/Dockerfile" "$CTX/"
mkdir -p "$CTX/target/release" && cp "$BIN" "$CTX/target/release/prep"
podman build --isolation chroot --target prebuilt \
  --build-arg RUNTIME_IMAGE=localhost/prep-base:bookworm \
  -t localhost/prep:test "$CTX" >"$CTX/build.log" 2>&1 || { cat "$CTX/build.log"; exit 1; }

# The image's metadata: exec-form entrypoint, non-root user.
[ "$(podman image inspect localhost/prep:test --format '{{json .Config.Entrypoint}}')" = '["prep"]' ]
[ "$(podman image inspect localhost/prep:test --format '{{.Config.User}}')" = '10001:10001' ]

CID="$(podman create localhost/prep:test)"
ROOT="$(podman mount "$CID")"
# The SageMaker Processing layout, as the job would mount it.
mkdir -p "$ROOT/opt/ml/config" "$ROOT/opt/ml/processing/input/code" "$ROOT/opt/ml/processing/input/data" "$ROOT/opt/ml/processing/output"
cp "$REPO/sample_data/reviews.csv" "$ROOT/opt/ml/processing/input/data/"
cat >"$ROOT/opt/ml/processing/input/code/pipeline.toml" <<'TOML'
name = "sm"
[input]
uri = "/opt/ml/processing/input/data/"
[scale]
exclude = ["review_id", "label"]
[output]
uri = "/opt/ml/processing/output/sentiment/"
format = "jsonl"
TOML
echo '{"current_host": "algo-1", "hosts": ["algo-1"]}' >"$ROOT/opt/ml/config/resourceconfig.json"
chown -R 10001:10001 "$ROOT/opt/ml"
run_in_image() { chroot --userspec=10001:10001 "$ROOT" /usr/local/bin/prep "$@"; }

run_in_image run /opt/ml/processing/input/code/pipeline.toml --worker auto --quiet
test -f "$ROOT/opt/ml/processing/output/sentiment/_SUCCESS"
test -f "$ROOT/opt/ml/processing/output/sentiment/part-w0000-00000.jsonl"
grep -q '"n_samples_seen": 2396' "$ROOT/opt/ml/processing/output/sentiment/scaler.json"

# A failure writes the SageMaker exit message.
printf 'id,x\n1,2\n3\n' >"$ROOT/opt/ml/processing/input/data/bad.csv"
chown 10001:10001 "$ROOT/opt/ml/processing/input/data/bad.csv"
rm -f "$ROOT/opt/ml/output/message"
set +e
run_in_image run /opt/ml/processing/input/code/pipeline.toml --worker auto --overwrite --quiet 2>/dev/null
code=$?
set -e
[ "$code" = 3 ] || { echo "expected exit 3, got $code"; exit 1; }
grep -q "bad.csv, line 3" "$ROOT/opt/ml/output/message"
echo "container image OK: $(du -sh "$ROOT" | cut -f1) rootfs"
