#!/usr/bin/env bash
# Build raleph's microVM runtime for reference-style Python programs (PROGRAM messages whose code is a zip of a
# directory holding an ASGI `app`, or an executable serving HTTP on :8080).
#
#   scripts/build-python-runtime.sh [OUT_DIR]
#
# Everything comes from Debian packages through apt's configured sources. The artifacts are:
#   vmlinuz          Debian cloud kernel (bzImage)
#   initrd.gz        busybox-static + the virtio/squashfs/overlay/loop modules + runtimes/python/initramfs-init.sh
#   rootfs.squashfs  bookworm with python3, fastapi, uvicorn, aiohttp, msgpack, unzip, iproute2 and our guest init
#   manifest.json    names, sizes, sha256, kernel version, package versions, kernel command line, build time
#
# OUT_DIR defaults to ${RALEPH_RUNTIME_DIR:-$HOME/.cache/raleph/runtimes}/python-<key>; <key> is a short hash of the
# candidate versions of the packages that go into the image plus the guest sources and this script, so a change of
# either rebuilds. When OUT_DIR already holds a manifest with the same key nothing is done. The last line printed on
# stdout is always OUT_DIR. Progress goes to stderr. Needs root (apt-get, mmdebstrap --mode=root, mknod in a chroot).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC="$REPO/runtimes/python"
SUITE=bookworm
# Inputs of the image; a change to any of them changes the key.
GUEST_FILES=(init.py init0.sh initramfs-init.sh)
ROOTFS_PACKAGES=(mount python3 python3-msgpack python3-fastapi python3-uvicorn python3-aiohttp unzip iproute2
                 ca-certificates procps)
HOST_PACKAGES=(qemu-system-x86 mmdebstrap squashfs-tools busybox-static kmod cpio gzip zstd python3-msgpack)
# Modules the initramfs loads (their dependencies are added and ordered automatically).
MODULES=(virtio_mmio virtio_blk virtio_net virtio_console virtio-rng squashfs overlay loop)
KERNEL_META=linux-image-cloud-amd64

log() { printf '[build-python-runtime] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (apt-get, mmdebstrap --mode=root)"
for f in "${GUEST_FILES[@]}"; do [ -f "$SRC/$f" ] || die "missing $SRC/$f"; done

# --- host tools ----------------------------------------------------------------------------------------------------
apt_updated=0
apt_update_once() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        nice -n 10 apt-get update -qq >&2
        apt_updated=1
    fi
}
missing=()
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${HOST_PACKAGES[@]}" 2>/dev/null || true)
for p in "${HOST_PACKAGES[@]}"; do
    grep -q "^$p install ok installed" <<< "$installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt_update_once
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive nice -n 10 apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'; }
# The package lists may be missing on a fresh machine: then the candidates are empty and we update once.
meta=$(candidate "$KERNEL_META")
if [ -z "$meta" ] || [ "$meta" = "(none)" ]; then apt_update_once; fi
KERNEL_PKG=$(apt-cache depends "$KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$KERNEL_PKG" ] || die "cannot resolve $KERNEL_META to a kernel image package"
KVER=${KERNEL_PKG#linux-image-}

# --- key -----------------------------------------------------------------------------------------------------------
# One apt-cache call for all of them (one per package costs seconds).
versions=$(apt-cache policy "$KERNEL_PKG" busybox-static "${ROOTFS_PACKAGES[@]}" 2>/dev/null |
           awk '/^[^ ]/ {sub(":$", "", $1); p = $1} /^  Candidate:/ {print p "=" $2}')$'\n'
for p in "$KERNEL_PKG" busybox-static "${ROOTFS_PACKAGES[@]}"; do
    grep -q "^$p=[^(]" <<< "$versions" || die "no candidate version for $p"
done
KEY=$( { printf '%s' "$versions"; printf 'modules=%s\n' "${MODULES[*]}";
         for f in "${GUEST_FILES[@]}"; do sha256sum "$SRC/$f" | sed "s|  .*/|  |"; done;
         sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1; } | sha256sum | cut -c1-12)

OUT=${1:-"${RALEPH_RUNTIME_DIR:-$HOME/.cache/raleph/runtimes}/python-$KEY"}
if [ -f "$OUT/manifest.json" ] && grep -q "\"key\": \"$KEY\"" "$OUT/manifest.json" \
   && [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.gz" ] && [ -f "$OUT/rootfs.squashfs" ]; then
    log "up to date (key $KEY)"
    echo "$OUT"
    exit 0
fi

mkdir -p "$(dirname "$OUT")"
exec 9>"$OUT.lock"
flock 9
START=$(date +%s.%N)
WORK=$(mktemp -d "$(dirname "$OUT")/.build-python-XXXXXX")
cleanup() { rm -rf "$WORK"; rm -f "$OUT.lock"; }
trap cleanup EXIT
log "building key $KEY ($KERNEL_PKG) in $WORK"

# apt-get download refuses to drop privileges into a root-owned folder: let the sandbox user write there.
dl() { (cd "$1" && nice -n 10 apt-get download -qq -o APT::Sandbox::User=root "$2" >&2); }

# --- kernel --------------------------------------------------------------------------------------------------------
mkdir -p "$WORK/deb" "$WORK/kernel" "$WORK/bb"
dl "$WORK/deb" "$KERNEL_PKG"
dpkg-deb -x "$WORK"/deb/linux-image-*.deb "$WORK/kernel"
cp "$WORK/kernel/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
depmod -b "$WORK/kernel" "$KVER"

# --- initramfs -----------------------------------------------------------------------------------------------------
dl "$WORK/deb" busybox-static
dpkg-deb -x "$WORK"/deb/busybox-static_*.deb "$WORK/bb"
IRD="$WORK/initramfs"
mkdir -p "$IRD"/{bin,dev,proc,sys,newroot,ro,rw,etc,lib/modules/"$KVER"}
cp "$WORK/bb/bin/busybox" "$IRD/bin/busybox"
ln -s busybox "$IRD/bin/sh"
cp "$SRC/initramfs-init.sh" "$IRD/init"
chmod 755 "$IRD/init"
# Resolve the modules and their dependencies from modules.dep, dependencies first, each once.
python3 - "$WORK/kernel/lib/modules/$KVER" "${MODULES[@]}" > "$IRD/etc/modules.order" <<'EOF'
import sys
root, wanted = sys.argv[1], sys.argv[2:]
deps, by_name = {}, {}
for line in open(f"{root}/modules.dep"):
    path, _, rest = line.partition(":")
    deps[path] = rest.split()
    by_name[path.rsplit("/", 1)[-1][:-3].replace("-", "_")] = path
order = []
def visit(path):
    if path in order:
        return
    for dep in deps[path]:
        visit(dep)
    order.append(path)
for name in wanted:
    path = by_name.get(name.replace("-", "_"))
    if path is None:
        sys.exit(f"module {name} not found (built in?)")
    visit(path)
print("\n".join(order))
EOF
while read -r m; do
    mkdir -p "$IRD/lib/modules/$KVER/$(dirname "$m")"
    cp "$WORK/kernel/lib/modules/$KVER/$m" "$IRD/lib/modules/$KVER/$m"
done < "$IRD/etc/modules.order"
log "initramfs modules: $(tr '\n' ' ' < "$IRD/etc/modules.order" | sed 's|kernel/[^ ]*/||g')"
(cd "$IRD" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --reproducible) | gzip -6 -n > "$WORK/initrd.gz"

# --- root filesystem -----------------------------------------------------------------------------------------------
# apt's configured sources, as they are, and the Acquire options of the host (e.g. snapshot date checks).
mirrors=()
[ -s /etc/apt/sources.list ] && grep -q '^[[:space:]]*deb' /etc/apt/sources.list && mirrors+=(/etc/apt/sources.list)
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do [ -s "$f" ] && mirrors+=("$f"); done
[ "${#mirrors[@]}" -gt 0 ] || die "no apt sources configured"
aptopts=()
for f in /etc/apt/apt.conf.d/*; do grep -q '^[[:space:]]*Acquire::' "$f" 2>/dev/null && aptopts+=("--aptopt=$f"); done
# The Debian tree depends only on the package versions: it is cached beside the outputs, so a change of the guest
# sources costs a copy and a mksquashfs rather than a fresh mmdebstrap.
PKGKEY=$(printf '%s' "$versions" | sha256sum | cut -c1-12)
BASE="$(dirname "$OUT")/.base-python-$PKGKEY"
if [ ! -f "$BASE/packages.txt" ]; then
    rm -rf "$BASE" "$BASE.tmp"
    mkdir -p "$BASE.tmp"
    include=$(IFS=,; echo "${ROOTFS_PACKAGES[*]}")
    log "mmdebstrap $SUITE (+$include)"
    nice -n 10 mmdebstrap --mode=root --variant=essential --quiet \
        --include="$include" "${aptopts[@]}" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        "$SUITE" "$BASE.tmp/rootfs" "${mirrors[@]}" >&2
    # Record what really went in, then drop what a read-only runtime never uses.
    chroot "$BASE.tmp/rootfs" dpkg-query -W -f='${Package}=${Version}\n' > "$BASE.tmp/packages.txt.new"
    rm -rf "$BASE.tmp/rootfs"/var/lib/apt/lists/* "$BASE.tmp/rootfs"/var/cache/apt/* "$BASE.tmp/rootfs"/var/log/*
    # Byte-compile what Python will import: under TCG, compiling at import time costs seconds.
    nice -n 10 chroot "$BASE.tmp/rootfs" python3 -m compileall -q -j 2 /usr/lib/python3 /usr/lib/python3.11 >&2 || true
    mv "$BASE.tmp/packages.txt.new" "$BASE.tmp/packages.txt"
    mv "$BASE.tmp" "$BASE"
    # Older bases (other package versions) are of no further use.
    for old in "$(dirname "$OUT")"/.base-python-*; do [ "$old" = "$BASE" ] || rm -rf "$old"; done
else
    log "reusing $BASE"
fi
cp "$BASE/packages.txt" "$WORK/packages.txt"
ROOT="$WORK/rootfs"
cp -a "$BASE/rootfs" "$ROOT"
install -d -m 755 "$ROOT/usr/lib/raleph" "$ROOT/opt" "$ROOT/data"
install -m 755 "$SRC/init0.sh" "$ROOT/usr/lib/raleph/init0"
install -m 644 "$SRC/init.py" "$ROOT/usr/lib/raleph/raleph_init.py"
printf '%s\n' "$KEY" > "$ROOT/usr/lib/raleph/runtime-key"
echo raleph > "$ROOT/etc/hostname"
# Without /etc/hosts, a lookup of 127.0.0.1 or localhost (http.server does one when it binds) goes to DNS, which
# with internet off times out after 10 s. The guest init adds the program's host name at configuration.
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"
: > "$ROOT/etc/resolv.conf"
# Byte-compile everything Python will import: under TCG, compiling at import time costs seconds.
chroot "$ROOT" python3 -m compileall -q /usr/lib/raleph >&2
nice -n 10 mksquashfs "$ROOT" "$WORK/rootfs.squashfs" -comp zstd -noappend -quiet -no-progress >&2

# --- manifest ------------------------------------------------------------------------------------------------------
END=$(date +%s.%N)
python3 - "$WORK" "$KEY" "$KVER" "$KERNEL_PKG" "$START" "$END" <<'EOF'
import hashlib, json, os, sys
work, key, kver, kpkg, start, end = sys.argv[1:]
def entry(name):
    path = os.path.join(work, name)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"name": name, "size": os.path.getsize(path), "sha256": h.hexdigest()}
packages = dict(line.strip().split("=", 1) for line in open(os.path.join(work, "packages.txt")) if "=" in line)
manifest = {
    "format": 1,
    "runtime": "raleph-python",
    "key": key,
    "suite": "bookworm",
    "kernel": {**entry("vmlinuz"), "version": kver, "package": kpkg},
    "initrd": entry("initrd.gz"),
    "rootfs": {**entry("rootfs.squashfs"), "fstype": "squashfs", "device": "vda"},
    # {tsc_khz}: the host TSC frequency in kHz (see PROTOCOL.md); required under TCG on a loaded host.
    "cmdline": "console=ttyS0 quiet loglevel=4 panic=-1 random.trust_cpu=on tsc_early_khz={tsc_khz}",
    "control_port": "org.raleph.control",
    # What the guest expects from the VM; the device order must be the same for a snapshot and its restores.
    "qemu": {
        "machine": "microvm,acpi=on",
        "devices": ["virtio-blk-device (rootfs.squashfs, read-only)", "virtio-net-device (user net)",
                    "virtio-serial-device + virtserialport name=org.raleph.control", "virtio-rng-device"],
        "memory_mib_min": 128,
        "guest_network": {"ip": "10.0.2.15/24", "route": "10.0.2.2", "dns_servers": ["10.0.2.3"]},
        "guest_api": "http://10.0.2.100 (guestfwd tcp:10.0.2.100:80 to the node API)",
    },
    "protocol": "raleph-framed-msgpack/1 (runtimes/python/PROTOCOL.md)",
    "python": packages.get("python3", ""),
    "packages": {p: packages[p] for p in sorted(packages)},
    "build_seconds": round(float(end) - float(start), 1),
}
with open(os.path.join(work, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
    f.write("\n")
EOF
rm -rf "$OUT.old"
[ -e "$OUT" ] && mv "$OUT" "$OUT.old"
mkdir -p "$OUT"
for f in vmlinuz initrd.gz rootfs.squashfs manifest.json; do mv "$WORK/$f" "$OUT/$f"; done
rm -rf "$OUT.old"
log "done in $(python3 -c "print(round($END - $START, 1))") s: $(du -sh "$OUT" | cut -f1)"
echo "$OUT"
