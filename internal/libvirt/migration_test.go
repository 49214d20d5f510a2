package libvirt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/port"
)

// The VSI identity attributes become the port's VSI fields, checked by the
// port rules like every other attribute.
func TestPortVSIAttributes(t *testing.T) {
	dom := func(attrs string) string {
		return `<domain><name>d</name><uuid>` + testUUID + `</uuid><metadata><vsw:port xmlns:vsw="urn:vswitch:libvirt:1" mac="52:54:00:00:00:01" vlan="100" ` + attrs + `/></metadata>` +
			`<devices><interface type='ethernet'><mac address='52:54:00:00:00:01'/><target dev='vnet1'/></interface></devices></domain>`
	}
	d, err := ParseDomain(strings.NewReader(dom(`vsi-type="1193047" vsi-type-version="2" vsi-manager="12" instance-id="0B6D9A3C-5E55-4F4E-9F11-2F0D5A6B7C8D"`)))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := d.Bindings()
	if err != nil {
		t.Fatal(err)
	}
	c, err := bs[0].Spec().Apply(port.Config{})
	if err != nil || c.VSIType != 1193047 || c.VSITypeVersion != 2 || c.VSIManager != "12" || c.InstanceID != "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d" || c.Owner != testUUID {
		t.Fatalf("port %+v, %v", c, err)
	}
	for attrs, want := range map[string]string{
		`vsi-type="16777216"`:      "invalid VSI type 16777216: must be 0-16777215",
		`vsi-type="x"`:             `<vsw:port vsi-type="x">: not a number`,
		`vsi-type-version="256"`:   "invalid VSI type version 256",
		`vsi-manager="300"`:        `invalid VSI manager "300"`,
		`instance-id="not-a-uuid"`: `invalid instance ID "not-a-uuid"`,
		`vsi-typ="1"`:              "unknown attribute (mac, vlan, trunk, native-vlan, pcp, svid, vsi-type, vsi-type-version, vsi-manager, instance-id, vsi-group)",
		`instance-id="00000000000000000000000000000000"`: "nil UUID",
	} {
		d, err := ParseDomain(strings.NewReader(dom(attrs)))
		if err == nil {
			_, err = d.Bindings()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", attrs, err, want)
		}
	}
}

func TestHookCallMigration(t *testing.T) {
	for args, want := range map[string]Action{
		"d migrate begin -": Incoming, "d prepare begin -": Prepare, "d started begin -": Confirm, "d restore begin -": Ignore,
		"d prepare end -": Ignore, "d started end -": Ignore,
	} {
		c, _ := ParseHookArgs(strings.Fields(args))
		if got := c.Action(); got != want {
			t.Errorf("%s: action %d, want %d", args, got, want)
		}
	}
	for args, want := range map[string]bool{
		"d stopped end migrated": true, "d release end migrated": true, "d stopped end -": false, "d start begin migrated": false,
	} {
		c, _ := ParseHookArgs(strings.Fields(args))
		if c.Migrated() != want {
			t.Errorf("%s: Migrated %v", args, !want)
		}
	}
}

// A status file as libvirt 9.0 writes it for a domain whose outgoing
// migration is confirmed (trimmed; the job line is libvirt's
// qemuDomainObjPrivateXMLFormatJob).
const statusMigratedOut = `<domstatus state='paused' reason='migration' pid='4242'>
  <taint flag='high-privileges'/>
  <monitor path='/var/lib/libvirt/qemu/domain-3-web1/monitor.sock' type='unix'/>
  <job type='none' async='migration out' phase='confirm3' flags='0x1'>
    <migParams/>
  </job>
  <domain type='qemu' id='3'><name>web1</name><uuid>` + testUUID + `</uuid></domain>
</domstatus>`

func TestMigratedOut(t *testing.T) {
	dir := t.TempDir()
	write := func(name, xml string) {
		if err := os.WriteFile(filepath.Join(dir, name+".xml"), []byte(xml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("web1", statusMigratedOut)
	write("shutdown", `<domstatus state='shutoff' reason='shutdown' pid='1'><domain/></domstatus>`)
	write("cancelled", strings.Replace(statusMigratedOut, "phase='confirm3'", "phase='confirm3_cancelled'", 1))
	write("incoming", strings.Replace(statusMigratedOut, "migration out", "migration in", 1))
	write("bad", `<domstatus`)
	write("network", `<network/>`)
	for name, want := range map[string]bool{"web1": true, "shutdown": false, "cancelled": false, "incoming": false, "gone": false} {
		got, err := MigratedOut(dir, name)
		if err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", name, got, err, want)
		}
	}
	for _, name := range []string{"bad", "network", "../etc/passwd", "", ".."} {
		if got, err := MigratedOut(dir, name); err == nil || got {
			t.Errorf("%q: %v, %v; want an error", name, got, err)
		}
	}
	st, err := ParseStatus(strings.NewReader(statusMigratedOut))
	if err != nil || st != (Status{State: "paused", Reason: "migration", Async: "migration out", Phase: "confirm3"}) {
		t.Errorf("ParseStatus = %+v, %v", st, err)
	}
	if _, err := ParseStatus(strings.NewReader("<domstatus>" + strings.Repeat(" ", maxXML) + "</domstatus>")); err == nil {
		t.Error("a status over 4 MiB was read")
	}
}

func TestIncomingMarks(t *testing.T) {
	m := IncomingMarks{Dir: filepath.Join(t.TempDir(), "incoming"), TTL: time.Minute}
	if ok, err := m.Take(testUUID); ok || err != nil {
		t.Fatalf("Take before Mark: %v, %v", ok, err)
	}
	if ok, err := m.Prepare(testUUID); ok || err != nil {
		t.Fatalf("Prepare before Mark: %v, %v", ok, err)
	}
	if err := m.Mark(strings.ToUpper(testUUID)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(m.Dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir: %v %v", fi.Mode(), err)
	}
	if ok, err := m.Prepare(testUUID); !ok || err != nil {
		t.Fatalf("Prepare after Mark: %v, %v", ok, err)
	}
	if ok, err := m.Take(testUUID); !ok || err != nil {
		t.Fatalf("Take after Mark and Prepare: %v, %v", ok, err)
	}
	if ok, _ := m.Take(testUUID); ok {
		t.Error("taken twice")
	}
	// "start begin" takes only a note that "prepare begin" moved on, and
	// a second "prepare begin" (a later start) finds none.
	_ = m.Mark(testUUID)
	if ok, _ := m.Take(testUUID); ok {
		t.Error("a note of migrate begin alone was taken by start begin")
	}
	_ = m.Mark(testUUID)
	_, _ = m.Prepare(testUUID)
	if ok, _ := m.Prepare(testUUID); ok {
		t.Error("prepared twice")
	}
	if ok, _ := m.Take(testUUID); ok {
		t.Error("a note prepared twice was taken")
	}
	// Expired notes do not count at either step, and the next Mark
	// removes them.
	old := time.Now().Add(-2 * time.Minute)
	_ = m.Mark(testUUID)
	_ = os.Chtimes(filepath.Join(m.Dir, testUUID), old, old)
	if ok, _ := m.Prepare(testUUID); ok {
		t.Error("an expired note of migrate begin was prepared")
	}
	_ = m.Mark(testUUID)
	_, _ = m.Prepare(testUUID)
	_ = os.Chtimes(filepath.Join(m.Dir, testUUID), old, old)
	if ok, _ := m.Take(testUUID); ok {
		t.Error("an expired prepared note counted")
	}
	_ = m.Mark(testUUID)
	other := "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d"
	_ = m.Mark(other)
	_ = os.Chtimes(filepath.Join(m.Dir, testUUID), old, old)
	_ = os.Chtimes(filepath.Join(m.Dir, other), old, old)
	_ = m.Mark("11111111-2222-3333-4444-555555555555")
	if es, _ := os.ReadDir(m.Dir); len(es) != 1 {
		t.Errorf("notes left: %v", es)
	}
	// A damaged note (other content) does not count.
	if err := os.WriteFile(filepath.Join(m.Dir, testUUID), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.Prepare(testUUID); ok {
		t.Error("a damaged note was prepared")
	}
	if err := m.Drop("11111111-2222-3333-4444-555555555555"); err != nil {
		t.Fatal(err)
	}
	if err := m.Drop("11111111-2222-3333-4444-555555555555"); err != nil {
		t.Errorf("Drop of none: %v", err)
	}
	for _, bad := range []string{"../x", "", "web1"} {
		if err := m.Mark(bad); err == nil {
			t.Errorf("Mark(%q) accepted", bad)
		}
		if _, err := m.Prepare(bad); err == nil {
			t.Errorf("Prepare(%q) accepted", bad)
		}
	}
}

// At "started begin" libvirt 9.0's status file of a domain migrating in
// shows its job "migration in" (phase "prepare"); a plain start has none.
func TestMigratingIn(t *testing.T) {
	dir := t.TempDir()
	write := func(name, xml string) {
		if err := os.WriteFile(filepath.Join(dir, name+".xml"), []byte(xml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("in", strings.Replace(strings.Replace(statusMigratedOut, "migration out", "migration in", 1), "confirm3", "prepare", 1))
	write("plain", `<domstatus state='paused' reason='starting up' pid='1'><domain/></domstatus>`)
	write("out", statusMigratedOut)
	write("bad", `<domstatus`)
	for name, want := range map[string][2]bool{"in": {true, true}, "plain": {false, true}, "out": {false, true}, "gone": {false, false}} {
		in, known, err := MigratingIn(dir, name)
		if err != nil || in != want[0] || known != want[1] {
			t.Errorf("%s: in %v known %v, %v; want %v", name, in, known, err, want)
		}
	}
	for _, name := range []string{"bad", "../x", ""} {
		if in, _, err := MigratingIn(dir, name); err == nil || in {
			t.Errorf("%q: %v, %v; want an error", name, in, err)
		}
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(statusMigratedOut))
	f.Add([]byte(`<domstatus state='running'><job async='none'/></domstatus>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStatus(strings.NewReader(string(b)))
		if err == nil && len(st.Async)+len(st.Phase)+len(st.State)+len(st.Reason) > len(b) {
			t.Fatalf("status %+v longer than its input", st)
		}
	})
}
