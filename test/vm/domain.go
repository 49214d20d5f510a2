package vm

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NIC is one <interface type='ethernet'> of a domain.
type NIC struct {
	MAC string // "52:54:00:00:00:01"
	Tap string // <target dev>: the tap libvirt creates in the namespace
	// Port holds the attributes of the NIC's <vsw:port> in the domain's
	// metadata other than mac, as written in the XML (`vlan="100"
	// pcp="5"`); empty: no <vsw:port> for this NIC.
	Port string
}

// DomainSpec describes a test guest.
type DomainSpec struct {
	Name      string
	Image     Image
	MemoryMiB int // default 160
	// IP is eth0's address with its prefix length ("10.0.0.1/24"); the
	// guest configures it at boot. Empty: no address.
	IP string
	// TTL powers the guest off after that long, whatever happens to the
	// test (default 10 minutes).
	TTL  time.Duration
	NICs []NIC
}

// XML returns the domain XML: TCG (type='qemu', the nested KVM of CI
// machines does not run guests), one vCPU, direct kernel boot of the image
// with the console on the first serial port, the serial port on a Unix
// socket (consoleSock, for commands) and logged to consoleLog, the NICs
// with their option ROMs off (iPXE would only slow the boot), and the
// vswitch metadata that the hook reads.
func (s DomainSpec) XML(consoleSock, consoleLog string) string {
	mem := s.MemoryMiB
	if mem == 0 {
		mem = 160
	}
	ttl := s.TTL
	if ttl == 0 {
		ttl = 10 * time.Minute
	}
	cmdline := fmt.Sprintf("console=ttyS0 quiet panic=-1 vsw.ttl=%d", int(ttl.Seconds()))
	if s.IP != "" {
		cmdline += " vsw.ip=" + s.IP
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<domain type='qemu'>\n  <name>%s</name>\n  <memory unit='MiB'>%d</memory>\n  <vcpu>1</vcpu>\n", esc(s.Name), mem)
	fmt.Fprintf(&b, "  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n    <kernel>%s</kernel>\n    <initrd>%s</initrd>\n    <cmdline>%s</cmdline>\n  </os>\n",
		esc(s.Image.Kernel), esc(s.Image.Initrd), esc(cmdline))
	b.WriteString("  <features><acpi/></features>\n  <clock offset='utc'/>\n")
	b.WriteString("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n  <on_crash>destroy</on_crash>\n")
	if ports := PortsXML(s.NICs); ports != "" {
		b.WriteString("  <metadata>\n    " + ports + "\n  </metadata>\n")
	}
	b.WriteString("  <devices>\n")
	for _, n := range s.NICs {
		b.WriteString("    " + n.XML() + "\n")
	}
	fmt.Fprintf(&b, "    <serial type='unix'>\n      <source mode='bind' path='%s'/>\n      <log file='%s' append='off'/>\n      <target port='0'/>\n    </serial>\n",
		esc(consoleSock), esc(consoleLog))
	b.WriteString("    <memballoon model='none'/>\n  </devices>\n</domain>\n")
	return b.String()
}

// XML is the NIC's <interface> element (on one line): type='ethernet'
// (libvirt creates the tap and leaves it alone), virtio, no option ROM
// (iPXE would only slow the boot).
func (n NIC) XML() string {
	return fmt.Sprintf("<interface type='ethernet'><mac address='%s'/><target dev='%s'/><model type='virtio'/><rom enabled='no'/></interface>",
		esc(n.MAC), esc(n.Tap))
}

// PortsXML is the vswitch metadata of nics (on one line): a <vsw:ports>
// element with a <vsw:port> for each NIC that has Port attributes; "" when
// none has.
func PortsXML(nics []NIC) string {
	p := portElements(nics, "vsw:")
	if p == "" {
		return ""
	}
	return `<vsw:ports xmlns:vsw="urn:vswitch:libvirt:1">` + p + `</vsw:ports>`
}

// portElements are the <port> elements of nics, their names prefixed.
func portElements(nics []NIC, prefix string) string {
	var ports strings.Builder
	for _, n := range nics {
		if n.Port != "" {
			fmt.Fprintf(&ports, "<%sport mac=\"%s\" %s/>", prefix, esc(n.MAC), n.Port)
		}
	}
	return ports.String()
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Domain is a guest defined on a Libvirtd.
type Domain struct {
	Spec DomainSpec
	// Started is when Start ran `virsh start`.
	Started time.Time

	l    *Libvirtd
	sock string // serial console socket
	log  string // serial console log

	mu   sync.Mutex
	conn net.Conn
	seq  int
}

// Define defines (persistently) the domain spec describes. At Cleanup it
// is destroyed and undefined (and its console log shown if the test
// failed).
func (l *Libvirtd) Define(spec DomainSpec) (*Domain, error) {
	d := &Domain{Spec: spec, l: l,
		sock: filepath.Join(l.Dir, "console-"+spec.Name+".sock"),
		log:  filepath.Join(l.Dir, "console-"+spec.Name+".log")}
	xmlPath := filepath.Join(l.Dir, spec.Name+".xml")
	if err := os.WriteFile(xmlPath, []byte(spec.XML(d.sock, d.log)), 0o644); err != nil {
		return nil, fmt.Errorf("domain %s: %w", spec.Name, err)
	}
	// --validate: against libvirt's schema, which define alone does not check.
	if _, err := l.Virsh("define", "--validate", xmlPath); err != nil {
		return nil, fmt.Errorf("domain %s: %w", spec.Name, err)
	}
	l.tp.Defer("remove domain "+spec.Name, func() error {
		d.mu.Lock()
		if d.conn != nil {
			d.conn.Close()
		}
		d.mu.Unlock()
		if l.tp.Failed() {
			l.tp.Logf("serial console of %s:\n%s", spec.Name, tail(d.ConsoleLog(), 60))
		}
		if st, _ := d.State(); st != "shut off" {
			if err := d.Destroy(); err != nil {
				return l.explain(err)
			}
		}
		_, err := l.Virsh("undefine", spec.Name)
		return l.explain(err)
	})
	return d, nil
}

// Start starts the domain (`virsh start`): libvirt creates the taps, runs
// the hook's "prepare begin" and "start begin", launches QEMU and lets
// the vCPU run. The guest boots in the background (WaitReady).
func (d *Domain) Start() error {
	d.Started = time.Now()
	if _, err := d.l.Virsh("start", d.Spec.Name); err != nil {
		return fmt.Errorf("domain %s: %w", d.Spec.Name, err)
	}
	return nil
}

// Destroy stops the domain at once (`virsh destroy`): QEMU is killed,
// the taps go, the hook's "stopped end" and "release end" run.
func (d *Domain) Destroy() error {
	if _, err := d.l.Virsh("destroy", d.Spec.Name); err != nil {
		return fmt.Errorf("domain %s: %w", d.Spec.Name, err)
	}
	return nil
}

// MigrateTo moves the running domain live to dst (`virsh migrate --live`,
// managed by the client: virsh talks to both daemons), its memory going
// over migrateURI (tcp://ADDR, an address of dst's namespace that d's QEMU
// reaches). The destination's serial console gets a socket and a log of
// its own (the migratable XML with those paths, passed with --xml: both
// QEMUs run at once), so the returned Domain talks to the guest where it
// runs then; d stays for the source's side. It returns how long virsh
// migrate took. At Cleanup the destination's domain is destroyed.
func (d *Domain) MigrateTo(dst *Libvirtd, migrateURI string) (*Domain, time.Duration, error) {
	name := d.Spec.Name
	x, err := d.l.Virsh("dumpxml", "--migratable", name)
	if err != nil {
		return nil, 0, fmt.Errorf("domain %s: %w", name, err)
	}
	nd := &Domain{Spec: d.Spec, Started: d.Started, l: dst,
		sock: filepath.Join(dst.Dir, "console-"+name+".sock"),
		log:  filepath.Join(dst.Dir, "console-"+name+".log")}
	if !strings.Contains(x, esc(d.sock)) || !strings.Contains(x, esc(d.log)) {
		return nil, 0, fmt.Errorf("domain %s: the migratable XML does not name the console socket and log:\n%s", name, x)
	}
	x = strings.ReplaceAll(strings.ReplaceAll(x, esc(d.sock), esc(nd.sock)), esc(d.log), esc(nd.log))
	xmlPath := filepath.Join(dst.Dir, name+"-incoming.xml")
	if err := os.WriteFile(xmlPath, []byte(x), 0o644); err != nil {
		return nil, 0, fmt.Errorf("domain %s: %w", name, err)
	}
	dst.tp.Defer("destroy migrated domain "+name, func() error {
		nd.mu.Lock()
		if nd.conn != nil {
			nd.conn.Close()
		}
		nd.mu.Unlock()
		if dst.tp.Failed() {
			dst.tp.Logf("serial console of %s on the destination:\n%s", name, tail(nd.ConsoleLog(), 60))
		}
		if st, err := nd.State(); err == nil && st != "shut off" {
			return nd.Destroy()
		}
		return nil
	})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := d.l.virsh(ctx, "migrate", "--live", "--xml", xmlPath, name, dst.URI, migrateURI); err != nil {
		return nil, time.Since(start), fmt.Errorf("domain %s: %w", name, err)
	}
	took := time.Since(start)
	d.mu.Lock()
	if d.conn != nil { // the source's QEMU is gone
		d.conn.Close()
		d.conn = nil
	}
	d.mu.Unlock()
	return nd, took, nil
}

// UUID returns the domain's UUID (`virsh domuuid`): the owner of the ports
// vswitch adds for it.
func (d *Domain) UUID() (string, error) {
	return d.l.Virsh("domuuid", d.Spec.Name)
}

// AttachNIC hot-plugs NIC n into the running guest (`virsh attach-device
// --live`): libvirt creates its tap, QEMU adds a virtio NIC on the PCI
// bus, the guest's kernel finds it (eth1, eth2, ...). The hook does not
// run; vswitchd --libvirt hears libvirt's device-added event.
func (d *Domain) AttachNIC(n NIC) error {
	return d.device("attach-device", n)
}

// DetachNIC unplugs NIC n (`virsh detach-device --live`): the guest
// releases it, libvirt deletes its tap and sends device-removed.
func (d *Domain) DetachNIC(n NIC) error {
	return d.device("detach-device", n)
}

func (d *Domain) device(cmd string, n NIC) error {
	f, err := os.CreateTemp(d.l.Dir, "nic-*.xml")
	if err != nil {
		return fmt.Errorf("domain %s: %w", d.Spec.Name, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(n.XML()); err != nil {
		f.Close()
		return fmt.Errorf("domain %s: %w", d.Spec.Name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("domain %s: %w", d.Spec.Name, err)
	}
	if _, err := d.l.Virsh(cmd, d.Spec.Name, f.Name(), "--live"); err != nil {
		return fmt.Errorf("domain %s: %w", d.Spec.Name, err)
	}
	return nil
}

// SetPorts replaces the running domain's vswitch metadata with the
// <vsw:port> elements of nics (`virsh metadata --live`, as docs/libvirt.md
// tells operators): libvirt sends a metadata-change event. virsh takes the
// element without its prefix (a prefixed one is refused with "failed to
// create a new XML namespace") and puts it and its children into the
// namespace of --uri under the prefix of --key.
func (d *Domain) SetPorts(nics []NIC) error {
	x := "<ports>" + portElements(nics, "") + "</ports>"
	_, err := d.l.Virsh("metadata", d.Spec.Name, "--live", "--uri", "urn:vswitch:libvirt:1", "--key", "vsw", "--set", x)
	if err != nil {
		return fmt.Errorf("domain %s: %w", d.Spec.Name, err)
	}
	return nil
}

// State returns `virsh domstate`: "running", "shut off", ...
func (d *Domain) State() (string, error) {
	return d.l.Virsh("domstate", d.Spec.Name)
}

// PID returns the QEMU process id from libvirt's pid file.
func (d *Domain) PID() (int, error) {
	b, err := os.ReadFile(filepath.Join(d.l.Dir, "run", "qemu", d.Spec.Name+".pid"))
	if err != nil {
		return 0, fmt.Errorf("domain %s: %w", d.Spec.Name, err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// ConsoleLog returns everything the guest wrote on its serial console
// since it started, with \r\n turned into \n.
func (d *Domain) ConsoleLog() string {
	b, _ := os.ReadFile(d.log)
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

// readyRE matches the guest's "ready" line (guest/init.sh).
var readyRE = regexp.MustCompile(`(?m)^vsw: ready (.*)$`)

// WaitReady waits until the guest says it is ready (its NIC configured,
// commands accepted) and returns the time since Start and the ready line.
func (d *Domain) WaitReady(timeout time.Duration) (time.Duration, string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if m := readyRE.FindStringSubmatch(d.ConsoleLog()); m != nil {
			return time.Since(d.Started), m[1], nil
		}
		if time.Now().After(deadline) {
			st, _ := d.State()
			return 0, "", fmt.Errorf("domain %s (state %q) not ready %v after start; console:\n%s", d.Spec.Name, st, timeout, tail(d.ConsoleLog(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// markerRE matches the line Run appends to each command's output.
var markerRE = regexp.MustCompile(`@@vsw (\d+) rc=(\d+)`)

// Run runs a shell command line in the guest through its serial console
// and returns what it printed and its exit status. Commands run one at a
// time (the guest reads the next line when the last one is done); cmd
// must be one line that ends (give ping a count).
func (d *Domain) Run(cmd string, timeout time.Duration) (string, int, error) {
	if strings.ContainsAny(cmd, "\n\r") {
		return "", 0, fmt.Errorf("domain %s: command must be one line: %q", d.Spec.Name, cmd)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	id := d.seq
	start := len(d.ConsoleLog())
	line := fmt.Sprintf("%s; echo \"@@vsw %d rc=$?\"\n", cmd, id)
	if err := d.write([]byte(line)); err != nil {
		return "", 0, err
	}
	deadline := time.Now().Add(timeout)
	for {
		log := d.ConsoleLog()
		if start > len(log) {
			start = 0 // the guest restarted: its log was truncated
		}
		out := log[start:]
		for _, m := range markerRE.FindAllStringSubmatchIndex(out, -1) {
			if n, _ := strconv.Atoi(out[m[2]:m[3]]); n == id {
				rc, _ := strconv.Atoi(out[m[4]:m[5]])
				return out[:m[0]], rc, nil
			}
		}
		if time.Now().After(deadline) {
			return out, 0, fmt.Errorf("domain %s: %q did not finish within %v; console since:\n%s", d.Spec.Name, cmd, timeout, tail(out, 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// write sends b to the serial console, connecting (again) when needed:
// QEMU listens on the socket for as long as it runs.
func (d *Domain) write(b []byte) error {
	var err error
	for try := 0; try < 2; try++ {
		if d.conn == nil {
			d.conn, err = net.DialTimeout("unix", d.sock, 5*time.Second)
			if err != nil {
				d.conn = nil
				return fmt.Errorf("domain %s: console: %w", d.Spec.Name, err)
			}
			// QEMU sends the console's output to the socket too: read
			// it (the log file has it all), or once the socket buffer
			// is full QEMU stalls the guest's serial port.
			go func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }(d.conn)
		}
		_ = d.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err = d.conn.Write(b); err == nil {
			return nil
		}
		d.conn.Close()
		d.conn = nil
	}
	return fmt.Errorf("domain %s: console: %w", d.Spec.Name, err)
}

// PingResult is what the guest's `ping -c N` reported.
type PingResult struct {
	Sent, Received int
	Output         string
}

var pingRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) packets received`)

// ErrNoPingSummary means ping's output had no statistics line.
var ErrNoPingSummary = errors.New("no ping statistics in the output")

// Ping runs busybox `ping -c count -W wait dst` in the guest (an echo
// request a second, waiting `wait` seconds after the last) and returns
// the counts from its statistics.
func (d *Domain) Ping(dst string, count, wait int) (PingResult, error) {
	timeout := time.Duration(count+wait+10) * time.Second
	out, _, err := d.Run(fmt.Sprintf("ping -c %d -W %d %s", count, wait, dst), timeout)
	r := PingResult{Output: out}
	if err != nil {
		return r, err
	}
	m := pingRE.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("domain %s: ping %s: %w: %q", d.Spec.Name, dst, ErrNoPingSummary, out)
	}
	r.Sent, _ = strconv.Atoi(m[1])
	r.Received, _ = strconv.Atoi(m[2])
	return r, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
