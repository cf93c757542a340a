#!/bin/sh
# raleph runtime PID 1 (dash). Mounts the API filesystems, brings up lo and runs the guest init (init.py) as a child,
# so that this shell reaps orphaned processes. When init.py exits (after a `halt` or on a fatal error) the VM powers
# off; with QEMU's -no-reboot the QEMU process then exits.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
ip link set lo up
/usr/bin/python3 /usr/lib/raleph/init.py < /dev/null
status=$?
echo "raleph-init0: init.py exited with status $status; powering off" > /dev/console
sync
echo o > /proc/sysrq-trigger
sleep 30
