package vm

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpioEntry is one entry read back by readNewc.
type cpioEntry struct {
	name         string
	mode         uint32
	rdev         [2]uint32
	data         []byte
	nlink, mtime uint32
}

// readNewc parses a newc archive independently of cpioWriter (field by
// field, checking magic and alignment) up to TRAILER!!!.
func readNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	field := func(i int) uint32 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("header at %d field %d: %v", off, i, err)
		}
		return uint32(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if off%4 != 0 || off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at offset %d", off)
		}
		e := cpioEntry{mode: field(1), nlink: field(4), mtime: field(5), rdev: [2]uint32{field(9), field(10)}}
		size, namesize := int(field(6)), int(field(11))
		name := b[off+110 : off+110+namesize]
		if name[len(name)-1] != 0 {
			t.Fatalf("name at %d not NUL-terminated", off)
		}
		e.name = string(name[:len(name)-1])
		off = align(off + 110 + namesize)
		e.data = b[off : off+size]
		off = align(off + size)
		if e.name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, e)
	}
}

func TestCPIOWriter(t *testing.T) {
	var buf bytes.Buffer
	c := &cpioWriter{w: &buf}
	c.dir("dev")
	c.charDev("dev/console", 0o600, 5, 1)
	c.file("init", 0o755, []byte("#!/bin/sh\n"))
	c.file("etc/odd", 0o644, []byte("12345")) // data needing padding
	c.file("empty", 0o644, nil)
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	got := readNewc(t, buf.Bytes())
	want := []cpioEntry{
		{name: "dev", mode: syscall.S_IFDIR | 0o755, nlink: 2},
		{name: "dev/console", mode: syscall.S_IFCHR | 0o600, rdev: [2]uint32{5, 1}, nlink: 1},
		{name: "init", mode: syscall.S_IFREG | 0o755, data: []byte("#!/bin/sh\n"), nlink: 1},
		{name: "etc/odd", mode: syscall.S_IFREG | 0o644, data: []byte("12345"), nlink: 1},
		{name: "empty", mode: syscall.S_IFREG | 0o644, nlink: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.name != w.name || g.mode != w.mode || g.rdev != w.rdev || !bytes.Equal(g.data, w.data) || g.nlink != w.nlink || g.mtime != 0 {
			t.Errorf("entry %d: %+v, want %+v", i, g, w)
		}
	}
	// busybox, when here, reads the archive as the kernel would.
	if _, err := exec.LookPath("busybox"); err == nil {
		cmd := exec.Command("busybox", "cpio", "-t")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "dev/console") || !strings.Contains(string(out), "etc/odd") {
			t.Errorf("busybox cpio -t: %v: %s", err, out)
		}
	}
}

// cachedModules returns the module directory of the cached guest kernel,
// or skips.
func cachedModules(t *testing.T) string {
	t.Helper()
	kdir, _, err := FindKernel(CacheDir())
	if err != nil {
		t.Skipf("no cached guest kernel (make deps): %v", err)
	}
	return filepath.Join(kdir, "modules")
}

func TestModuleOrder(t *testing.T) {
	index, err := indexModules(cachedModules(t))
	if err != nil {
		t.Fatal(err)
	}
	order, err := moduleOrder(index, guestModules)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range append([]string{"virtio_ring", "virtio", "failover", "net_failover"}, guestModules...) {
		if !slices.Contains(order, m) {
			t.Errorf("load order %v lacks %s", order, m)
		}
	}
	// Every module comes after what it depends on.
	for i, m := range order {
		deps, err := moduleDepends(index[m])
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range deps {
			if j := slices.Index(order, d); j < 0 || j > i {
				t.Errorf("%s (at %d) depends on %s (at %d): %v", m, i, d, j, order)
			}
		}
	}
	// A missing dependency is named with the module that needs it.
	delete(index, "failover")
	if _, err := moduleOrder(index, guestModules); err == nil || !strings.Contains(err.Error(), "failover (needed by net_failover)") {
		t.Errorf("missing failover: %v", err)
	}
	if _, err := moduleOrder(index, []string{"no_such_module"}); err == nil || !strings.Contains(err.Error(), "no_such_module not found") {
		t.Errorf("missing root: %v", err)
	}
}

func TestCheckStatic(t *testing.T) {
	if err := checkStatic("/bin/sh"); err == nil || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("/bin/sh (dynamic): %v, want an error naming busybox-static", err)
	}
	if err := checkStatic("/etc/hostname"); err == nil {
		t.Error("a text file passed as a static executable")
	}
	if _, err := os.Stat(BusyboxPath); err == nil {
		if err := checkStatic(BusyboxPath); err != nil {
			t.Logf("%s: %v (the busybox package, not busybox-static?)", BusyboxPath, err)
		}
	}
}

// The domain XML is well-formed and says what the tests rely on: TCG, the
// NIC as an ethernet interface on the named tap with its MAC, the
// metadata the hook reads, the console socket and log; names are escaped.
func TestDomainXML(t *testing.T) {
	s := DomainSpec{Name: "a<b", Image: Image{Kernel: "/k", Initrd: "/i"}, IP: "10.0.0.1/24", TTL: time.Minute,
		NICs: []NIC{{MAC: "52:54:00:00:00:01", Tap: "vsabcdv1", Port: `vlan="100" pcp="5"`}, {MAC: "52:54:00:00:00:02", Tap: "vsabcdv2"}}}
	var dom struct {
		Type string `xml:"type,attr"`
		Name string `xml:"name"`
		VCPU int    `xml:"vcpu"`
		OS   struct {
			Kernel  string `xml:"kernel"`
			Initrd  string `xml:"initrd"`
			Cmdline string `xml:"cmdline"`
		} `xml:"os"`
		Ports []struct {
			MAC string `xml:"mac,attr"`
		} `xml:"metadata>ports>port"`
		Ifaces []struct {
			Type string `xml:"type,attr"`
			MAC  struct {
				Address string `xml:"address,attr"`
			} `xml:"mac"`
			Target struct {
				Dev string `xml:"dev,attr"`
			} `xml:"target"`
		} `xml:"devices>interface"`
		Serial struct {
			Type   string `xml:"type,attr"`
			Source struct {
				Path string `xml:"path,attr"`
			} `xml:"source"`
			Log struct {
				File string `xml:"file,attr"`
			} `xml:"log"`
		} `xml:"devices>serial"`
	}
	x := s.XML("/d/c.sock", "/d/c.log")
	if err := xml.Unmarshal([]byte(x), &dom); err != nil {
		t.Fatalf("%v\n%s", err, x)
	}
	if dom.Type != "qemu" || dom.Name != "a<b" || dom.VCPU != 1 || dom.OS.Kernel != "/k" || dom.OS.Initrd != "/i" {
		t.Errorf("domain: %+v", dom)
	}
	if !strings.Contains(dom.OS.Cmdline, "console=ttyS0") || !strings.Contains(dom.OS.Cmdline, "vsw.ip=10.0.0.1/24") || !strings.Contains(dom.OS.Cmdline, "vsw.ttl=60") {
		t.Errorf("cmdline %q", dom.OS.Cmdline)
	}
	if len(dom.Ifaces) != 2 || dom.Ifaces[0].Type != "ethernet" || dom.Ifaces[0].MAC.Address != "52:54:00:00:00:01" || dom.Ifaces[0].Target.Dev != "vsabcdv1" || dom.Ifaces[1].Target.Dev != "vsabcdv2" {
		t.Errorf("interfaces: %+v", dom.Ifaces)
	}
	// Only the NIC with a Port gets a <vsw:port>, in vswitch's namespace.
	if len(dom.Ports) != 1 || dom.Ports[0].MAC != "52:54:00:00:00:01" || !strings.Contains(x, `xmlns:vsw="urn:vswitch:libvirt:1"`) || !strings.Contains(x, `<vsw:port mac="52:54:00:00:00:01" vlan="100" pcp="5"/>`) {
		t.Errorf("metadata ports %+v in\n%s", dom.Ports, x)
	}
	if dom.Serial.Type != "unix" || dom.Serial.Source.Path != "/d/c.sock" || dom.Serial.Log.File != "/d/c.log" {
		t.Errorf("serial: %+v", dom.Serial)
	}
}

// The tests' hook is the installed one with their binary and socket, and
// what README.md and docs/libvirt.md show is its command.
func TestHookScript(t *testing.T) {
	got := HookScript("/tmp/x/vswctl", "/tmp/x/sock")
	exec := "exec /tmp/x/vswctl --socket /tmp/x/sock libvirt-hook \"$@\"\n"
	if !strings.HasPrefix(got, "#!/bin/sh\n") || !strings.HasSuffix(got, "\n"+exec) || strings.Count(got, "vswctl") < 2 {
		t.Errorf("HookScript = %q, want the template ending in %q", got, exec)
	}
	installed := "exec /usr/local/bin/vswctl --socket /run/vswitchd/vswitchd.sock libvirt-hook \"$@\""
	for _, doc := range []string{"../../README.md", "../../docs/libvirt.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), installed) {
			t.Errorf("%s does not show the installed hook's command %q", doc, installed)
		}
	}
	if want := "\n" + installed + "\n"; !strings.HasSuffix(HookScript("/usr/local/bin/vswctl", "/run/vswitchd/vswitchd.sock"), want) {
		t.Errorf("the template does not end in %q", want)
	}
}

// A record of a dead test process gets its processes killed and its
// directory removed; a live one's is left alone; a foreign record is an
// error, not a deletion.
func TestReapStale(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (/run/vswitch-vm)")
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	t.Cleanup(func() { _ = sleeper.Process.Kill() })

	mk := func(owner int) (dir, rec string) {
		d, err := os.MkdirTemp("", "vsvm-reaptest-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		if err := os.MkdirAll(ownerDir, 0o755); err != nil {
			t.Fatal(err)
		}
		rec = filepath.Join(ownerDir, filepath.Base(d))
		if err := os.WriteFile(rec, []byte(strconv.Itoa(owner)+" "+d+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(rec) })
		return d, rec
	}
	deadDir, deadRec := mk(dead.Process.Pid)
	if err := os.WriteFile(filepath.Join(deadDir, "anchor.pid"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	liveDir, liveRec := mk(os.Getpid())
	foreign := filepath.Join(ownerDir, "vsvm-reaptest-foreign")
	if err := os.WriteFile(foreign, []byte("1 /etc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(foreign) })

	err := ReapStale()
	if err == nil || !strings.Contains(err.Error(), "not a record of test/vm") {
		t.Errorf("ReapStale with a foreign record: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Error("the dead run's anchor (sleep) still runs")
	}
	for _, p := range []string{deadDir, deadRec} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s of the dead run still there", p)
		}
	}
	for _, p := range []string{liveDir, liveRec, "/etc"} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s of a live run (or foreign) removed: %v", p, err)
		}
	}
}
