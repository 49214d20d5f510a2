#!/bin/busybox sh
# /init of the vswitch test guest (test/vm): busybox-static, the virtio
# modules listed in /etc/modules, no disk. It configures eth0 from the
# kernel command line, says "vsw: ready ..." on the serial console, then
# runs every line it reads from the console as a shell command. The test
# host appends `; echo "@@vsw ID rc=$?"` to know where the output ends.
#
# Kernel command line: vsw.ip=ADDR/LEN (eth0's address; none: no address),
# vsw.ttl=SECONDS (power off after that long: a guest whose test died does
# not run forever; default 900).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /etc/modules); do
	insmod "/lib/modules/$m.ko" || echo "vsw: insmod $m failed"
done
ip=
ttl=900
for a in $(cat /proc/cmdline); do
	case $a in
	vsw.ip=*) ip=${a#vsw.ip=} ;;
	vsw.ttl=*) ttl=${a#vsw.ttl=} ;;
	esac
done
(sleep "$ttl"; echo "vsw: ttl of ${ttl}s reached, powering off"; poweroff -f) &
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ -e /sys/class/net/eth0 ]; then
	ip link set eth0 up
	[ -n "$ip" ] && ip addr add "$ip" dev eth0
	echo "vsw: ready ip=$ip mac=$(cat /sys/class/net/eth0/address) uptime=$(cut -d' ' -f1 /proc/uptime)"
else
	echo "vsw: ready ip=none mac=none: no eth0 (virtio_net did not bind)"
fi
stty -echo
while :; do
	IFS= read -r line || { sleep 1; continue; }
	eval "$line"
done
