// Package vm runs real QEMU guests under a real libvirtd for vswitch's
// end-to-end tests: what a hypervisor does, not veth pairs standing in for
// VMs and domain XML fed to the hook by hand.
//
// # The guest image
//
// A guest boots Debian's cloud kernel (KernelPackage, fetched with
// `apt-get download` and unpacked with `dpkg-deb -x`: nothing is installed
// on the host) with an initramfs of about 1.2 MB built here in pure Go: a
// newc cpio, gzip'd, holding busybox-static, the virtio_pci and virtio_net
// modules with their dependencies (read from each module's .modinfo, in
// load order) and guest/init.sh as /init. Both live in CacheDir
// (/var/cache/vswitch-vm): `make deps` runs cmd/vmimage, which fetches the
// kernel once (about 27 MB download, 14 MB kept); BuildImage makes the
// initramfs again, in about 0.3 s, whenever its inputs change (it is
// named by their hash).
//
// The guest's init loads the modules, gives eth0 the address on the kernel
// command line (vsw.ip=10.0.0.1/24; its MAC is the domain XML's), prints
// "vsw: ready ..." on the serial console and then runs each line it reads
// from the console as a shell command. (*Domain).Run sends one and reads
// its output and exit status back; (*Domain).Ping runs busybox ping and
// parses its statistics. A guest powers itself off after DomainSpec.TTL,
// should its test die without cleaning up.
//
//	img := vm.Require(t) // skips (fails under CI) when QEMU, libvirt or the image are missing
//	lv, _ := vm.StartLibvirtd(tp, hv, vm.HookScript(vswctl, sock))
//	d, _ := lv.Define(vm.DomainSpec{Name: tp.Name("vm1"), Image: img, IP: "10.0.0.1/24",
//		NICs: []vm.NIC{{MAC: "52:54:00:00:01:01", Tap: tp.Ifname("v1"), Port: `vlan="100"`}}})
//	_ = d.Start()
//	_, _, _ = d.WaitReady(2 * time.Minute)
//	r, _ := d.Ping("10.0.0.2", 3, 2) // r.Received
//
// # The private libvirtd
//
// StartLibvirtd runs root's libvirtd (the qemu:///system driver) inside a
// test's hypervisor namespace with directories of its own: libvirt has no
// option to move them when it runs as root, so an anchor process in that
// namespace bind-mounts private copies over /etc/libvirt, /run/libvirt,
// /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt in its mount
// namespace, and libvirtd runs there (nsenter). Its hooks directory holds
// the test's hook only, its taps are created in the test's namespace, its
// socket is reached through Libvirtd.URI, and it sees neither the host's
// libvirt (if any) nor another test's. qemu.conf runs QEMU as root with no
// security driver, cgroups or virtlogd. A restart (Stop, Start) reconnects
// to the running guests as a real one does.
//
// Domains are TCG guests (type='qemu', one vCPU, 160 MiB): /dev/kvm may
// exist on a CI machine that is itself a VM, but nested KVM does not run
// guests there. A guest is ready about 4-6 s after `virsh start`.
//
// Cleanup (through the test's topo.Topo) destroys and undefines the
// domains, stops libvirtd and the anchor, kills any QEMU left and removes
// the directories. A test process killed before that leaves QEMU processes
// behind (libvirt daemonizes them): the next StartLibvirtd reaps them
// (ReapStale), as topo.New reaps namespaces.
package vm
