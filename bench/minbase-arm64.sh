# Sourced by the benchmarks that walk a real Debian arm64 root file system: makes it once (the
# minbase package set, unpacked with `mmdebstrap --variant=extract`: no emulation needed) into
# target/bench/rootfs-arm64, builds the release binary, and sets ROOTFS and B.
ROOTFS=target/bench/rootfs-arm64
if [ ! -d "$ROOTFS/usr" ]; then
  command -v mmdebstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >&2
  rm -rf "$ROOTFS"; mkdir -p "$(dirname "$ROOTFS")"
  mmdebstrap --variant=extract --arch=arm64 --include='?priority(required)' --include=apt bookworm "$ROOTFS" >&2
fi
cargo build --release --quiet
B=target/release/binfmtctl
