#!/usr/bin/env bash
# Installs what vswitch's tests, demo and benchmarks need on a fresh Debian
# machine (run as root). Idempotent; quiet when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v ip >/dev/null || need+=(iproute2)         # ip netns exec (tests, demo, bench)
command -v ethtool >/dev/null || need+=(ethtool)      # txvlan off on the test switch's ports
command -v git >/dev/null || need+=(git)
command -v lldpad >/dev/null || need+=(lldpad)        # EVB interop test: lldpad as the bridge
# VM tests (test/vm): TCG guests under a private libvirtd. The libvirt daemon
# and its QEMU driver without libvirt-daemon-system, which would bring systemd.
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v libvirtd >/dev/null || need+=(libvirt-daemon libvirt-daemon-driver-qemu)
command -v virsh >/dev/null || need+=(libvirt-clients)
dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static) # the guest's userland
command -v xmllint >/dev/null || need+=(libxml2-utils) # validates the libvirt metadata examples against docs/vsw-port.rng
command -v systemd-analyze >/dev/null || need+=(systemd) # systemd-analyze verify of contrib/systemd/vswitchd.service (not started)
command -v setpriv >/dev/null || need+=(util-linux)   # vswitchd with exactly the unit's capabilities
# promtool checks contrib/prometheus/alerts.yml and the dashboard's queries (about 19 MB; on a host
# that runs systemd the package also enables a Prometheus server on :9090).
command -v promtool >/dev/null || need+=(prometheus)
command -v lintian >/dev/null || need+=(lintian)      # test/dist: make deb's package must pass lintian
command -v groff >/dev/null || need+=(groff-base)     # internal/manpage: the pages must format without a warning
if [ "${WITH_BENCH:-0}" = 1 ]; then
  command -v ovs-vswitchd >/dev/null || need+=(openvswitch-switch)   # OVS rows of make bench
fi
# The guest kernel is fetched with apt-get download (test/vm/cmd/vmimage):
# apt's lists must be there for it too.
vmcache="${VSWITCH_VM_CACHE:-/var/cache/vswitch-vm}"
kernel=0
compgen -G "$vmcache/kernel/*/vmlinuz" >/dev/null && kernel=1
if [ ${#need[@]} -gt 0 ] || [ $kernel = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# libvirt's QEMU driver looks this user up when it starts even though the
# tests' qemu.conf runs QEMU as root; libvirt-daemon-system would create it.
getent passwd libvirt-qemu >/dev/null ||
  useradd --system --user-group --no-create-home --home-dir /var/lib/libvirt \
    --shell /usr/sbin/nologin --comment "Libvirt Qemu" libvirt-qemu
command -v go >/dev/null || { echo "install Go 1.26 (https://go.dev/doc/install) and put it on PATH" >&2; exit 1; }
go mod download
# The VM tests' guest: Debian's cloud kernel (unpacked, not installed) and a
# busybox initramfs, cached in $vmcache; prints nothing when cached.
go run ./test/vm/cmd/vmimage -cache "$vmcache"
