#!/bin/sh
# raleph initramfs /init (busybox sh). Loads the modules listed in /etc/modules.order, mounts the read-only squashfs
# runtime (/dev/vda) under a tmpfs overlay and hands over to /usr/lib/raleph/init0 in it.
export PATH=/bin
bb=/bin/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
say() { echo "raleph-initramfs: $*" > /dev/console; }
fail() { say "FATAL: $*"; $bb sleep 1; echo o > /proc/sysrq-trigger; $bb sleep 10; exit 1; }

kver=$($bb uname -r)
while read -r m; do
    $bb insmod "/lib/modules/$kver/$m" || say "insmod $m failed"
done < /etc/modules.order

# The root disk appears asynchronously once virtio_mmio has probed the ACPI devices.
i=0
while [ ! -b /dev/vda ]; do
    i=$((i + 1)); [ "$i" -gt 500 ] && fail "no /dev/vda"
    $bb usleep 10000
done
$bb mount -t squashfs -o ro /dev/vda /ro || fail "cannot mount /dev/vda"
$bb mount -t tmpfs -o mode=0755 tmpfs /rw || fail "tmpfs"
$bb mkdir -p /rw/upper /rw/work
$bb mount -t overlay overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "overlay"
# The API filesystems and lo are set up here with the static busybox: under TCG every exec of a dynamically linked
# tool in the runtime costs about 0.1 s.
n=/newroot
$bb mount --move /dev $n/dev
$bb mkdir -p $n/dev/pts $n/dev/shm
$bb mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $n/dev/pts
$bb mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $n/dev/shm
$bb mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs $n/run
$bb mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $n/tmp
$bb ip link set lo up
read -r up _ < /proc/uptime
say "root ready at ${up}s; switch_root"
$bb umount /sys
$bb mount --move /proc $n/proc
$bb mount -t sysfs sysfs $n/sys
exec $bb switch_root /newroot /usr/lib/raleph/init0
