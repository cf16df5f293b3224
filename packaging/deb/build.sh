#!/usr/bin/env bash
# Builds the binfmtctl Debian package with dpkg-deb, from this source tree:
#
#   packaging/deb/build.sh [OUTDIR]     (default target/deb; prints the .deb's path)
#
# What goes in: the static release binary (/usr/bin/binfmtctl), the boot unit from systemd/
# (/usr/lib/systemd/system, pointed at /usr/bin), the man pages and bash/zsh/fish completions
# generated from the command-line definitions (`binfmtctl __generate`), the example config,
# the documentation, a machine-readable copyright file and changelog.Debian.gz.
# The version is the one of packaging/deb/changelog, whose upstream part must match
# Cargo.toml's; file dates are the changelog entry's (SOURCE_DATE_EPOCH).
#
# Needs cargo and dpkg-dev (scripts/deps.sh installs it); no root (files are owned by root in
# the package through dpkg-deb --root-owner-group).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
OUT=${1:-target/deb}
HERE=packaging/deb
PKG=binfmtctl
TARGET=x86_64-unknown-linux-gnu
ARCH=amd64

log() { printf '[deb] %s\n' "$*" >&2; }
die() { printf '[deb] error: %s\n' "$*" >&2; exit 1; }

VERSION=$(dpkg-parsechangelog -l "$HERE/changelog" -S Version)
UPSTREAM=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
[ "${VERSION%-*}" = "$UPSTREAM" ] ||
  die "packaging/deb/changelog is at $VERSION but Cargo.toml at $UPSTREAM: add a changelog entry (dch -c packaging/deb/changelog -v $UPSTREAM-1)"
MAINTAINER=$(dpkg-parsechangelog -l "$HERE/changelog" -S Maintainer)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(dpkg-parsechangelog -l "$HERE/changelog" -S Timestamp)}
DATE=$(date -u -d "@$SOURCE_DATE_EPOCH" +%F)
YEAR=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)

# The same flags as container/build.sh and integration-vm/, so the three share one build.
log "building the static release binary"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --quiet --target "$TARGET"
BIN=target/$TARGET/release/$PKG
"$BIN" inspect "$BIN" | grep '; static;' >/dev/null || die "$BIN is not static"

mkdir -p "$OUT"
ROOT=$(mktemp -d "$OUT/root.XXXXXX")
GEN=$(mktemp -d "$OUT/gen.XXXXXX")
trap 'rm -rf "$ROOT" "$GEN"' EXIT
umask 022
chmod 0755 "$ROOT"
DOC=$ROOT/usr/share/doc/$PKG

# The binary, stripped as dh_strip does.
install -D -m 0755 "$BIN" "$ROOT/usr/bin/$PKG"
strip --remove-section=.comment --remove-section=.note "$ROOT/usr/bin/$PKG"

# The unit: the packaged binary is /usr/bin/binfmtctl; the man pages are installed too.
install -d "$ROOT/usr/lib/systemd/system"
sed -e "s|/usr/local/bin/$PKG|/usr/bin/$PKG|g" \
    -e 's|^# Install: .*|# Installed by the binfmtctl package, not enabled: systemctl enable binfmtctl.service|' \
    -e "s|^Documentation=\(.*\)|Documentation=man:binfmtctl(1) man:binfmtctl.toml(5) \1|" \
    systemd/$PKG.service > "$ROOT/usr/lib/systemd/system/$PKG.service"
grep -qx "ExecStart=/usr/bin/$PKG apply" "$ROOT/usr/lib/systemd/system/$PKG.service" ||
  die "systemd/$PKG.service: no ExecStart=/usr/local/bin/$PKG apply to point at /usr/bin"

# Man pages and completions, generated from the command-line definitions.
"$BIN" __generate man "$GEN/man" --date "$DATE" >/dev/null
"$BIN" __generate completions "$GEN/completions" >/dev/null
for page in "$GEN"/man/*; do
  section=${page##*.}
  install -D -m 0644 "$page" "$ROOT/usr/share/man/man$section/${page##*/}"
  gzip -9n "$ROOT/usr/share/man/man$section/${page##*/}"
done
install -D -m 0644 "$GEN/completions/$PKG.bash" "$ROOT/usr/share/bash-completion/completions/$PKG"
install -D -m 0644 "$GEN/completions/_$PKG" "$ROOT/usr/share/zsh/vendor-completions/_$PKG"
install -D -m 0644 "$GEN/completions/$PKG.fish" "$ROOT/usr/share/fish/vendor_completions.d/$PKG.fish"

# Documentation: compressed when larger than 4 KiB (Debian policy 12.3, as dh_compress does).
install -D -m 0644 packaging/examples/config.toml "$DOC/examples/config.toml"
install -m 0644 README.md docs/*.md "$HERE/README.Debian" "$DOC/"
for f in "$DOC"/*; do
  [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 4096 ] && gzip -9n "$f"
done
install -m 0644 "$HERE/changelog" "$DOC/changelog.Debian"
gzip -9n "$DOC/changelog.Debian"
# The crates linked into the binary (proc-macros run at build time only), with their licenses.
crates=$(cargo tree --locked -e normal --prefix none -f '{p} {l}' --target "$TARGET" |
  grep -v -e "^$PKG " -e '(proc-macro)' | sed 's/ (\*)$//' | sort -u |
  awk '{ name = $1; ver = $2; $1 = ""; $2 = ""; sub(/^ +/, ""); printf " %s %s (%s)\n", name, ver, $0 }')
[ -n "$crates" ] || die "cargo tree listed no crates"
awk -v crates="$crates" -v year="$YEAR" \
  '{ gsub(/@YEAR@/, year) } /^@CRATES@$/ { print crates; next } { print }' \
  "$HERE/copyright.in" > "$DOC/copyright"
chmod 0644 "$DOC/copyright"

# lintian overrides, each explained in the file.
install -D -m 0644 "$HERE/lintian-overrides" "$ROOT/usr/share/lintian/overrides/$PKG"

# Control area.
install -d -m 0755 "$ROOT/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "$HERE/$s" "$ROOT/DEBIAN/$s"; done
glibc=$(dpkg-query -W -f='${source:Package} (= ${source:Version})' libc6-dev)
size=$(du -s -k --apparent-size --exclude=DEBIAN "$ROOT" | cut -f1)
sed -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$ARCH|" -e "s|@MAINTAINER@|$MAINTAINER|" \
    -e "s|@SIZE@|$size|" -e "s|@BUILT_USING@|$glibc|" "$HERE/control.in" > "$ROOT/DEBIAN/control"
( cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum ) > "$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/md5sums"

# Reproducible: every date is the changelog's.
find "$ROOT" -depth -exec touch --no-dereference -d "@$SOURCE_DATE_EPOCH" {} +
DEB=$OUT/${PKG}_${VERSION}_$ARCH.deb
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >/dev/null
log "built $DEB"
echo "$DEB"
