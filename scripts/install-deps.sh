#!/usr/bin/env bash
# Installs what vswitch's tests, demo and benchmarks need on a fresh Debian
# machine (run as root). Idempotent; quiet when everything is there.
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)         # ip netns exec (tests, demo, bench)
command -v ethtool >/dev/null || need+=(ethtool)      # txvlan off on the test switch's ports
command -v git >/dev/null || need+=(git)
command -v lldpad >/dev/null || need+=(lldpad)        # EVB interop test: lldpad as the bridge
if [ "${WITH_BENCH:-0}" = 1 ]; then
  command -v ovs-vswitchd >/dev/null || need+=(openvswitch-switch)   # OVS rows of make bench
fi
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
command -v go >/dev/null || { echo "install Go 1.26 (https://go.dev/doc/install) and put it on PATH" >&2; exit 1; }
go mod download
