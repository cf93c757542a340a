#!/bin/sh
# raleph runtime PID 1 (dash). The initramfs already mounted /proc, /sys, /dev (+pts, shm), /run and /tmp and brought
# lo up. This runs the guest init (init.py) as a child, so that this shell reaps orphaned processes. When init.py
# exits (after a `halt` or on a fatal error) the VM powers off; with QEMU's -no-reboot the QEMU process then exits.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
read -r up _ < /proc/uptime
echo "raleph-init0: starting python at ${up}s" > /dev/console
# Imported as a module (not run as a script) so that its byte-compiled form is used.
/usr/bin/python3 -c 'import sys; sys.path.insert(0, "/usr/lib/raleph"); import raleph_init; raleph_init.main()' < /dev/null
status=$?
echo "raleph-init0: init.py exited with status $status; powering off" > /dev/console
sync
echo o > /proc/sysrq-trigger
# Only shell builtins from here: the power-off detaches the root disk, so an exec could fail and PID 1 exit.
while :; do :; done
