package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/internal/version"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/api/apitest"
)

type result struct {
	code           int
	stdout, stderr string
}

func vswctl(t *testing.T, sock string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	if sock != "" {
		args = append([]string{"--socket", sock}, args...)
	}
	code := run(args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// expect checks the exit code and that stderr is exactly one line
// containing want (or empty when want is "").
func (r result) expect(t *testing.T, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d (stderr %q)", r.code, code, r.stderr)
	}
	if want == "" {
		if r.stderr != "" {
			t.Errorf("unexpected stderr %q", r.stderr)
		}
		return
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q does not contain %q", r.stderr, want)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr is not exactly one line: %q", r.stderr)
	}
}

func daemon(t *testing.T) (*apitest.Fake, string) {
	t.Helper()
	fake := apitest.NewFake()
	return fake, apitest.Serve(t, fake)
}

func TestBadValuesExit1BeforeContactingDaemon(t *testing.T) {
	fake, sock := daemon(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"add-port", "vnet1", "--vlan", "0", "--trunk", "10"}, "use either --vlan VID (access port) or --trunk VIDS (trunk port), not both"},
		{[]string{"add-port", "vnet1", "--vlan", "0", "--native-vlan", "5"}, "--native-vlan only applies to trunk ports"},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--vsi-group", "-1"}, "invalid VSI group -1: must be 1-4294967295, or 0 for none"},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--vsi-group", "lots"}, `invalid VSI group "lots": must be a number`},
		{[]string{"set-port", "vnet1", "--vsi-group", "4294967296"}, "invalid VSI group 4294967296"},
		{[]string{"add-port", "vnet1", "--trunk", "1-100", "--vsi-group", "7"}, "port vnet1: VDP would register 100 filter entries per VSI (100 VIDs), more than the 81 of format group+VID"},
		{[]string{"add-port", "vnet1", "--vlan", "4095"}, "invalid VLAN 4095: must be 1-4094"},
		{[]string{"add-port", "vnet1", "--vlan", "5000"}, "invalid VLAN 5000: must be 1-4094"},
		{[]string{"add-port", "vnet1", "--vlan", "ten"}, `invalid VLAN "ten": must be a number 1-4094`},
		{[]string{"add-port", "vnet1", "--vlan", "-3"}, "invalid VLAN -3: must be 1-4094"},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--mac", "zz"}, `invalid MAC "zz": use the form 52:54:00:12:34:56`},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--mac", "52:54:00:12:34:56:78:9a"}, `invalid MAC "52:54:00:12:34:56:78:9a": use the form`},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--mac", "01:00:5e:00:00:01"}, "must be unicast"},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--mac", "00:00:00:00:00:00"}, "all zeros"},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--pcp", "8"}, "invalid PCP 8: must be 0-7"},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--pcp", "x"}, `invalid PCP "x": must be a number 0-7`},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--svid", "4095"}, "invalid S-VLAN 4095: must be 1-4094, or 0 for none"},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--trunk", "20"}, "use either --vlan VID (access port) or --trunk VIDS (trunk port), not both"},
		{[]string{"add-port", "vnet1"}, "add-port vnet1 needs --vlan VID (access port) or --trunk VIDS (trunk port)"},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--native-vlan", "5"}, "--native-vlan only applies to trunk ports"},
		{[]string{"add-port", "vnet1", "--trunk", "10,5000"}, `invalid trunk "10,5000": VLAN 5000 is out of range`},
		{[]string{"add-port", "vnet1", "--trunk", "0"}, `invalid trunk "0": VLAN 0 is out of range`},
		{[]string{"add-port", "vnet1", "--trunk", "30-20"}, "range 30-20 is backwards"},
		{[]string{"add-port", "vnet1", "--trunk", "a,b"}, `"a" is not a VLAN ID`},
		{[]string{"add-port", "vnet1", "--trunk", "10", "--native-vlan", "4095"}, "invalid native VLAN 4095"},
		{[]string{"add-port", "this-name-is-too-long", "--vlan", "10"}, `invalid interface name "this-name-is-too-long"`},
		{[]string{"add-port", "a/b", "--vlan", "10"}, `invalid interface name "a/b"`},
		{[]string{"set-port", "vnet1", "--vlan", "4095"}, "invalid VLAN 4095: must be 1-4094"},
		{[]string{"set-port", "vnet1", "--mac", "zz"}, `invalid MAC "zz"`},
		{[]string{"set-port", "vnet1"}, "nothing to change"},
		{[]string{"set-port", "vnet1", "--mac", "52:54:00:12:34:56", "--clear-macs"}, "either --mac or --clear-macs"},
		{[]string{"fdb", "--vlan", "5000"}, "invalid VLAN 5000: must be 1-4094"},
		{[]string{"fdb", "--vlan", "0"}, "invalid VLAN 0: must be 1-4094"},
		{[]string{"-o", "yaml", "status"}, `invalid output format "yaml": use -o table or -o json`},
		// The rules of package port, the daemon's own, checked before sending.
		{[]string{"add-port", "vnet:1", "--vlan", "10"}, `invalid interface name "vnet:1"`},
		{[]string{"add-port", "..", "--vlan", "10"}, `invalid interface name ".."`},
		{[]string{"add-port", "vnet1", "--trunk", ""}, `invalid trunk "": use VLAN IDs 1-4094 and ranges, e.g. 10,20-30`},
		{[]string{"add-port", "vnet1", "--trunk", "10,,20"}, `invalid trunk "10,,20": empty element`},
		{[]string{"set-port", "vnet1", "--trunk", ""}, `invalid trunk ""`},
		{[]string{"set-port", "vnet1", "--svid", "-1"}, "invalid S-VLAN -1: must be 1-4094, or 0 for none"},
		{[]string{"set-port", "vnet1", "--mac", "01:00:5e:00:00:01"}, "must be unicast"},
		{[]string{"set-port", "vnet1", "--native-vlan", "4095"}, "invalid native VLAN 4095"},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--max-macs", "-1"}, "invalid MAC limit -1: must be 0-1048576"},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--max-macs", "default"}, `invalid MAC limit "default": must be a number 0-1048576`},
		{[]string{"set-port", "vnet1", "--max-macs", "lots"}, `invalid MAC limit "lots"`},
		{[]string{"set-port", "vnet1", "--max-macs", "2000000"}, "invalid MAC limit 2000000"},
		{[]string{"del-port", "vnet1:0"}, `invalid interface name "vnet1:0"`},
		{[]string{"stats", "a b"}, `invalid interface name "a b"`},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--vsi-type", "16777216"}, "invalid VSI type 16777216: must be 0-16777215"},
		{[]string{"add-port", "vnet1", "--vlan", "10", "--vsi-type", "x"}, `invalid VSI type "x": must be a number 0-16777215`},
		{[]string{"set-port", "vnet1", "--vsi-type-version", "256"}, "invalid VSI type version 256: must be 0-255"},
		{[]string{"set-port", "vnet1", "--vsi-manager", "256"}, `invalid VSI manager "256": a numeric manager ID is one byte: use 0-255`},
		{[]string{"set-port", "vnet1", "--instance-id", "web1"}, `invalid instance ID "web1": use a UUID such as 4dea22b3-1d52-d8f3-2516-782e98ab3fa0`},
		{[]string{"set-port", "vnet1", "--migration", "away"}, `invalid migration "away": use incoming, outgoing or none`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			vswctl(t, sock, tc.args...).expect(t, 1, tc.want)
		})
	}
	for m, n := range fake.Calls {
		if m != "Status" && n != 0 {
			t.Errorf("daemon was contacted (%s called %d times) for a value vswctl should have rejected", m, n)
		}
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	_, sock := daemon(t)
	cases := []struct {
		args []string
		want string
	}{
		{nil, "missing command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"list-port"}, `did you mean list-ports`},
		{[]string{"add-port", "vnet1", "--vlna", "10"}, "unknown flag: --vlna (see vswctl add-port --help)"},
		{[]string{"add-port", "--vlan", "10"}, "add-port needs one interface name (IF)"},
		{[]string{"add-port", "vnet1", "vnet2", "--vlan", "10"}, `got extra argument "vnet2"`},
		{[]string{"del-port"}, "del-port needs one interface name (IF)"},
		{[]string{"list-ports", "x"}, `got extra argument "x"`},
		{[]string{"stats", "a", "b"}, `got extra argument "b"`},
		{[]string{"add-port", "vnet1", "--vlan"}, "flag needs an argument: --vlan"},
		{[]string{"--bogus", "status"}, "unknown flag: --bogus"},
		{[]string{"capture", "vnet1"}, "capture needs -w FILE (- for stdout)"},
		{[]string{"capture", "vnet1", "-w", "f", "-c", "many"}, `invalid argument "many"`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			vswctl(t, sock, tc.args...).expect(t, 2, tc.want)
		})
	}
}

func TestDaemonNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nobody-here.sock")
	for _, args := range [][]string{
		{"status"}, {"list-ports"}, {"add-port", "vnet1", "--vlan", "10"}, {"del-port", "vnet1"},
		{"set-port", "vnet1", "--pcp", "1"}, {"stats"}, {"stats", "vnet1"}, {"fdb"}, {"-o", "json", "status"},
	} {
		r := vswctl(t, sock, args...)
		r.expect(t, 1, "cannot reach vswitchd at "+sock+": is vswitchd running? (start it, or set --socket / VSWITCHD_SOCKET)")
		if r.stdout != "" {
			t.Errorf("%v: stdout %q", args, r.stdout)
		}
	}
}

func TestSocketFromEnvironment(t *testing.T) {
	_, sock := daemon(t)
	t.Setenv("VSWITCHD_SOCKET", sock)
	r := vswctl(t, "", "status")
	r.expect(t, 0, "")
	if !strings.Contains(r.stdout, "eth0") {
		t.Fatalf("status via VSWITCHD_SOCKET: %q", r.stdout)
	}
	// --socket beats the environment.
	other := filepath.Join(t.TempDir(), "other.sock")
	vswctl(t, other, "status").expect(t, 1, "cannot reach vswitchd at "+other)
}

func TestServerErrors(t *testing.T) {
	_, sock := daemon(t)
	vswctl(t, sock, "add-port", "vnet1", "--vlan", "10").expect(t, 0, "")
	vswctl(t, sock, "add-port", "vnet1", "--vlan", "20").
		expect(t, 1, "port vnet1 already exists (use vswctl set-port to change it)")
	for _, args := range [][]string{
		{"set-port", "vnet9", "--vlan", "5"}, {"del-port", "vnet9"}, {"stats", "vnet9"},
		{"-o", "json", "del-port", "vnet9"},
	} {
		vswctl(t, sock, args...).expect(t, 1, "port vnet9 not found (see vswctl list-ports)")
	}
}

// What vswctl cannot check alone (it depends on the port's current
// configuration) the fake refuses as the daemon does: the CLI's tests run
// against the production rules.
func TestDaemonSideRules(t *testing.T) {
	_, sock := daemon(t)
	vswctl(t, sock, "add-port", "vnet1", "--vlan", "10").expect(t, 0, "")
	vswctl(t, sock, "set-port", "vnet1", "--native-vlan", "20").
		expect(t, 1, "port vnet1: a native VLAN needs a trunk port")
	vswctl(t, sock, "set-port", "vnet1", "--trunk", "20-30", "--native-vlan", "20").expect(t, 0, "")
	r := vswctl(t, sock, "set-port", "vnet1", "--vlan", "40")
	r.expect(t, 0, "")
	if r.stdout != "updated port vnet1: vlan 40, state absent\n" {
		t.Errorf("trunk -> access drops the native VLAN: %q", r.stdout)
	}
}

// failing wraps the fake with a daemon-side validation error the CLI does
// not check itself; its message must come through as one line.
type failing struct{ *apitest.Fake }

func (failing) AddPort(context.Context, api.PortSpec) (api.Port, error) {
	return api.Port{}, api.NewError(api.CodeInvalidVLAN, "VLAN 100 is reserved by the uplink's S-channel:\nchoose another VLAN")
}

func TestDaemonMessagePrintedAsOneLine(t *testing.T) {
	sock := apitest.Serve(t, failing{apitest.NewFake()})
	vswctl(t, sock, "add-port", "vnet1", "--vlan", "100").
		expect(t, 1, "vswctl: VLAN 100 is reserved by the uplink's S-channel: choose another VLAN")
}

func TestPortLifecycleAndTable(t *testing.T) {
	fake, sock := daemon(t)
	r := vswctl(t, sock, "add-port", "vnet1", "--vlan", "100", "--mac", "52:54:00:12:34:56",
		"--mac", "52:54:00:AB:CD:EF", "--pcp", "3", "--svid", "7")
	r.expect(t, 0, "")
	if want := "added port vnet1: vlan 100, svid 7, pcp 3, macs 52:54:00:12:34:56,52:54:00:ab:cd:ef, state absent\n"; r.stdout != want {
		t.Fatalf("add-port stdout %q, want %q", r.stdout, want)
	}
	vswctl(t, sock, "add-port", "vnet2", "--trunk", "10,20-30,11", "--native-vlan", "10", "--flood").expect(t, 0, "")
	p, _ := fake.GetPort(context.Background(), "vnet2")
	if len(p.Trunk) != 13 || p.NativeVLAN != 10 || !p.Flood || p.VLAN != 0 {
		t.Fatalf("trunk port in daemon = %+v", p)
	}
	fake.SetCounters("vnet1", "up", 1234, 99999, 5678, 88888, map[string]uint64{"spoofed_src": 4, "tagged_on_access": 1})

	r = vswctl(t, sock, "list-ports")
	r.expect(t, 0, "")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("list-ports printed %d lines:\n%s", len(lines), r.stdout)
	}
	header := strings.Fields(lines[0])
	if want := []string{"NAME", "VLAN/TRUNK", "SVID", "PCP", "MACS", "STATE", "RX", "TX", "DROPS", "LEARNED", "MAX_MACS"}; !reflect.DeepEqual(header, want) {
		t.Fatalf("header %q, want %q", header, want)
	}
	row1 := strings.Fields(lines[1])
	if want := []string{"vnet1", "100", "7", "3", "52:54:00:12:34:56,52:54:00:ab:cd:ef", "up", "1234", "5678", "5", "0", "default"}; !reflect.DeepEqual(row1, want) {
		t.Fatalf("vnet1 row %q, want %q", row1, want)
	}
	if !strings.HasPrefix(lines[2], "vnet2") || !strings.Contains(lines[2], "trunk 10-11,20-30 native 10") {
		t.Fatalf("vnet2 row %q", lines[2])
	}
	// Columns are aligned: every column starts at the same offset.
	for _, col := range []string{"STATE", "DROPS"} {
		off := strings.Index(lines[0], col)
		if lines[1][off-2:off] != "  " || lines[1][off] == ' ' {
			t.Errorf("column %s not aligned:\n%s", col, r.stdout)
		}
	}

	// set-port: access -> trunk -> access, flags not given stay.
	r = vswctl(t, sock, "set-port", "vnet1", "--trunk", "40-41")
	r.expect(t, 0, "")
	p, _ = fake.GetPort(context.Background(), "vnet1")
	if p.VLAN != 0 || !reflect.DeepEqual(p.Trunk, []int{40, 41}) || p.PCP != 3 || len(p.MACs) != 2 {
		t.Fatalf("after set-port --trunk: %+v", p)
	}
	vswctl(t, sock, "set-port", "vnet1", "--vlan", "200", "--clear-macs", "--flood=false").expect(t, 0, "")
	p, _ = fake.GetPort(context.Background(), "vnet1")
	if p.VLAN != 200 || len(p.Trunk) != 0 || len(p.MACs) != 0 || p.PCP != 3 {
		t.Fatalf("after set-port --vlan --clear-macs: %+v", p)
	}
	if got := vswctl(t, sock, "set-port", "vnet1", "--pcp", "0").stdout; got != "updated port vnet1: vlan 200, svid 7, state up\n" {
		t.Errorf("set-port summary %q", got)
	}
	// The learned-MAC limit: set, shown, back to the daemon's default.
	if got := vswctl(t, sock, "set-port", "vnet1", "--max-macs", "0").stdout; got != "updated port vnet1: vlan 200, svid 7, max macs 0, state up\n" {
		t.Errorf("set-port --max-macs 0 summary %q", got)
	}
	if p, _ = fake.GetPort(context.Background(), "vnet1"); p.MaxMACs == nil || *p.MaxMACs != 0 {
		t.Fatalf("after set-port --max-macs 0: %+v", p.MaxMACs)
	}
	if r = vswctl(t, sock, "list-ports"); !strings.HasSuffix(strings.Split(r.stdout, "\n")[1], " 0") {
		t.Errorf("list-ports does not show the limit 0:\n%s", r.stdout)
	}
	vswctl(t, sock, "set-port", "vnet1", "--max-macs", "default").expect(t, 0, "")
	if p, _ = fake.GetPort(context.Background(), "vnet1"); p.MaxMACs != nil {
		t.Fatalf("after set-port --max-macs default: %d", *p.MaxMACs)
	}

	r = vswctl(t, sock, "stats")
	r.expect(t, 0, "")
	for _, want := range []string{"PORT", "RX_PACKETS", "vnet1", "1234", "99999", "5678", "88888",
		"eth0 (uplink)", "DROPPED AT", "spoofed_src", "tagged_on_access", "control frames"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stats output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "BACKEND COUNTERS") {
		t.Errorf("stats prints backend counters while there are none:\n%s", r.stdout)
	}
	r = vswctl(t, sock, "stats", "vnet1")
	r.expect(t, 0, "")
	for _, want := range []string{"port:", "vnet1", "rx packets:", "1234", "drops:", "5", "spoofed_src:", "4"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stats vnet1 output lacks %q:\n%s", want, r.stdout)
		}
	}
	// Backend counters: a line per port (and the uplink) with any that is
	// not zero, zeros left out.
	before := r.stdout
	fake.SetBackend("vnet1", map[string]uint64{"gso_segments": 120, "gso_frames": 3, "ring_freezes": 0})
	fake.SetUplinkBackend(map[string]uint64{"xsk_rx_ring_full": 2})
	r = vswctl(t, sock, "stats")
	r.expect(t, 0, "")
	lines = strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if n := len(lines); n < 3 || !reflect.DeepEqual(strings.Fields(lines[n-3]), []string{"COUNTED", "AT", "BACKEND", "COUNTERS"}) ||
		!reflect.DeepEqual(strings.Fields(lines[n-2]), []string{"vnet1", "gso_frames=3", "gso_segments=120"}) ||
		!reflect.DeepEqual(strings.Fields(lines[n-1]), []string{"eth0", "(uplink)", "xsk_rx_ring_full=2"}) {
		t.Errorf("stats with backend counters:\n%s", r.stdout)
	}
	r = vswctl(t, sock, "stats", "vnet1")
	r.expect(t, 0, "")
	if want := before + "backend:"; !strings.HasPrefix(r.stdout, want) || !strings.HasSuffix(r.stdout, "gso_frames=3 gso_segments=120\n") {
		t.Errorf("stats vnet1 with backend counters:\n%s\nwant the output before plus a backend line", r.stdout)
	}
	r = vswctl(t, sock, "-o", "json", "stats")
	r.expect(t, 0, "")
	var js api.Stats
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil {
		t.Fatal(err)
	}
	if got := js.Ports[0].Backend; got["gso_segments"] != 120 || js.Uplink.Backend["xsk_rx_ring_full"] != 2 {
		t.Errorf("json stats: port backend %v, uplink backend %v", got, js.Uplink.Backend)
	}

	r = vswctl(t, sock, "del-port", "vnet1")
	r.expect(t, 0, "")
	if r.stdout != "deleted port vnet1\n" {
		t.Errorf("del-port stdout %q", r.stdout)
	}
	if _, err := fake.GetPort(context.Background(), "vnet1"); api.CodeOf(err) != api.CodeNotFound {
		t.Fatalf("vnet1 still exists after del-port: %v", err)
	}
}

func TestStatusAndFDBTables(t *testing.T) {
	fake, sock := daemon(t)
	fake.StatusV.Relay = &api.RelayStatus{State: "granted", Peer: "00:11:22:33:44:55"}
	fake.StatusV.UptimeSeconds = 3725
	fake.StatusV.CDCP = &api.CDCPStatus{Mode: "auto", Bridge: "02:00:00:00:00:01", ChnCap: 8,
		Wanted: []api.SChannel{{SCID: 1, SVID: 1}, {SCID: 2, SVID: 10}, {SCID: 3, SVID: 20}}, Granted: []api.SChannel{{SCID: 1, SVID: 1}, {SCID: 2, SVID: 10}}}
	fake.StatusV.Libvirt = &api.LibvirtStatus{URI: "qemu:///system", State: "disconnected", Since: "2026-11-27T08:00:00Z",
		Error: "dial unix /run/libvirt/libvirt-sock:\n no such file", Events: 7, Reconciled: "2026-11-27T07:00:00Z", Domains: 3, Reconciles: 2}
	fake.FDBV = []api.FDBEntry{
		{VLAN: 200, MAC: "52:54:00:00:00:02", Port: "vnet2", AgeSec: 12},
		{VLAN: 100, MAC: "52:54:00:00:00:01", Port: "vnet1", Static: true},
	}
	r := vswctl(t, sock, "status")
	r.expect(t, 0, "")
	for _, want := range []string{"uplink:", "eth0 (up)", "mode:", "vepa", "datapath:", "afpacket",
		"reflective relay:", "granted by 00:11:22:33:44:55", "uptime:", "1h2m5s",
		"s-channels (cdcp auto):", "asked 10 20, granted 10 by 02:00:00:00:00:01 (chncap 8)",
		"libvirt:", "disconnected from qemu:///system since 2026-11-27T08:00:00Z, reconciled at 2026-11-27T07:00:00Z (3 domains running; 2 reconciles), 7 events: dial unix /run/libvirt/libvirt-sock: no such file"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	// A bridge that numbers the S-channels its own way (clause 42: the
	// station follows it): the SCID it gave shows.
	fake.StatusV.CDCP.Granted = []api.SChannel{{SCID: 1, SVID: 1}, {SCID: 2, SVID: 20}, {SCID: 3, SVID: 10}}
	r = vswctl(t, sock, "status")
	if want := "asked 10 20, granted 20 (bridge SCID 2) 10 (bridge SCID 3) by 02:00:00:00:00:01"; !strings.Contains(r.stdout, want) {
		t.Errorf("status lacks %q:\n%s", want, r.stdout)
	}
	r = vswctl(t, sock, "fdb")
	r.expect(t, 0, "")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !reflect.DeepEqual(strings.Fields(lines[0]), []string{"VLAN", "MAC", "PORT", "TYPE", "AGE"}) {
		t.Fatalf("fdb:\n%s", r.stdout)
	}
	if got := strings.Fields(lines[1]); !reflect.DeepEqual(got, []string{"100", "52:54:00:00:00:01", "vnet1", "static", "-"}) {
		t.Errorf("fdb row 1 %q", got)
	}
	if got := strings.Fields(lines[2]); !reflect.DeepEqual(got, []string{"200", "52:54:00:00:00:02", "vnet2", "learned", "12s"}) {
		t.Errorf("fdb row 2 %q", got)
	}
	r = vswctl(t, sock, "fdb", "--vlan", "200")
	if strings.Contains(r.stdout, "vnet1") || !strings.Contains(r.stdout, "vnet2") {
		t.Errorf("fdb --vlan 200 not filtered:\n%s", r.stdout)
	}
}

func TestJSONOutputIsTheAPIAnswer(t *testing.T) {
	fake, sock := daemon(t)
	fake.FDBV = []api.FDBEntry{{VLAN: 100, MAC: "52:54:00:00:00:01", Port: "vnet1", Static: true}}
	r := vswctl(t, sock, "-o", "json", "add-port", "vnet1", "--vlan", "100", "--mac", "52:54:00:00:00:01")
	r.expect(t, 0, "")
	var added api.Port
	if err := json.Unmarshal([]byte(r.stdout), &added); err != nil || added.Name != "vnet1" || added.VLAN != 100 {
		t.Fatalf("add-port -o json: %v %q", err, r.stdout)
	}
	c := api.NewClient(sock)
	defer c.Close()
	for _, tc := range []struct {
		args []string
		path string
	}{
		{[]string{"status"}, "/v1/status"},
		{[]string{"list-ports"}, "/v1/ports"},
		{[]string{"stats"}, "/v1/stats"},
		{[]string{"stats", "vnet1"}, "/v1/ports/vnet1"},
		{[]string{"fdb"}, "/v1/fdb"},
		{[]string{"fdb", "--vlan", "100"}, "/v1/fdb?vlan=100"},
		{[]string{"set-port", "vnet1", "--pcp", "2"}, "/v1/ports/vnet1"},
	} {
		r := vswctl(t, sock, append([]string{"--output=json"}, tc.args...)...)
		r.expect(t, 0, "")
		var raw json.RawMessage
		if err := c.Do(context.Background(), "GET", tc.path, nil, &raw); err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		json.Indent(&want, raw, "", "  ")
		want.WriteByte('\n')
		if r.stdout != want.String() {
			t.Errorf("vswctl -o json %v:\n%s\nwant the API answer:\n%s", tc.args, r.stdout, want.String())
		}
		if !json.Valid([]byte(r.stdout)) {
			t.Errorf("-o json %v is not valid JSON", tc.args)
		}
	}
	var ports []api.Port
	r = vswctl(t, sock, "-o", "json", "list-ports")
	if err := json.Unmarshal([]byte(r.stdout), &ports); err != nil || len(ports) != 1 || ports[0].PCP != 2 {
		t.Fatalf("list-ports -o json decoded to %+v, %v", ports, err)
	}
	r = vswctl(t, sock, "-o", "json", "del-port", "vnet1")
	r.expect(t, 0, "")
	if r.stdout != "" {
		t.Errorf("del-port -o json printed %q", r.stdout)
	}
}

func TestHelpAndStubs(t *testing.T) {
	r := vswctl(t, "", "--help")
	r.expect(t, 0, "")
	for _, want := range []string{"add-port", "set-port", "del-port", "list-ports", "stats", "fdb", "vsis", "status",
		"capture", "libvirt-hook", "--socket", "--output", "VSWITCHD_SOCKET"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if strings.Contains(r.stdout, "vswctl [flags]") {
		t.Error("help advertises a bare 'vswctl [flags]' usage")
	}
	r = vswctl(t, "", "add-port", "--help")
	r.expect(t, 0, "")
	for _, want := range []string{"--vlan VID", "--trunk VIDS", "--native-vlan VID", "--mac MAC", "--pcp N", "--svid VID", "--flood"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("add-port help lacks %q", want)
		}
	}
	// Calls the hook ignores succeed without reading stdin; a start needs
	// the domain XML; too few arguments are a usage error.
	vswctl(t, "", "libvirt-hook", "guest", "release", "begin", "-").expect(t, 0, "")
	var out, errb bytes.Buffer
	if code := runIO([]string{"libvirt-hook", "guest", "start", "begin", "-"}, strings.NewReader(""), &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "no domain XML on stdin") {
		t.Errorf("start without XML: exit %d, stderr %q", code, errb.String())
	}
	vswctl(t, "", "libvirt-hook", "guest").expect(t, 2, "want DOMAIN OPERATION SUBOP")
}

// The control frames the EVB station refused are listed on the control
// frames line, zeros left out; with none refused the line is as before.
func TestStatsShowsRefusedControlFrames(t *testing.T) {
	st := api.Stats{Uplink: api.UplinkStats{Name: "eth0", Control: 12,
		ControlRejected: map[string]uint64{"lldp_tagged": 3, "lldp_foreign_peer": 0, "ecp_foreign_peer": 2}}}
	var b strings.Builder
	if err := writeStats(&b, st); err != nil {
		t.Fatal(err)
	}
	if want := "uplink control frames (LLDP/ECP/VDP): 12, refused: ecp_foreign_peer=2 lldp_tagged=3\n"; !strings.Contains(b.String(), want) {
		t.Errorf("stats output lacks %q:\n%s", want, b.String())
	}
	st.Uplink.ControlRejected = map[string]uint64{"lldp_tagged": 0}
	b.Reset()
	if err := writeStats(&b, st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "uplink control frames (LLDP/ECP/VDP): 12\n") {
		t.Errorf("stats output with nothing refused:\n%s", b.String())
	}
}

// hookXML is a live domain XML: name, UUID, one vswitch NIC per tap:mac
// pair (a pair without a tap is a <vsw:port> whose NIC libvirt dropped).
func hookXML(name, uuid string, nics ...[2]string) string {
	x := `<domain type='kvm'><name>` + name + `</name><uuid>` + uuid + `</uuid><metadata><vsw:ports xmlns:vsw="urn:vswitch:libvirt:1">`
	for _, n := range nics {
		x += `<vsw:port mac="` + n[1] + `" vlan="100"/>`
	}
	x += `</vsw:ports></metadata><devices>`
	for _, n := range nics {
		if n[0] != "" {
			x += `<interface type='ethernet'><mac address='` + n[1] + `'/><target dev='` + n[0] + `'/></interface>`
		}
	}
	return x + `</devices></domain>`
}

func hook(t *testing.T, sock, xml string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := runIO(append([]string{"--socket", sock, "libvirt-hook"}, args...), strings.NewReader(xml), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// The hook records the domain's UUID as the owner of the ports it adds and
// at "stopped end" removes a port only when both the owner and a MAC are
// the domain's: domain B whose metadata lists VM A's MAC leaves A's port
// alone (it used to delete it), and so it does a port added by vswctl with
// that MAC. At reconnect an ownerless port that matches gets the owner.
func TestHookRemovesOnlyOwnPorts(t *testing.T) {
	fake, sock := daemon(t)
	const (
		uuidA, uuidB, uuidC = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0", "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d", "11111111-2222-4333-8444-555555555555"
		macA, macB, macC    = "52:54:00:00:00:0a", "52:54:00:00:00:0b", "52:54:00:00:00:0c"
	)
	ctx := context.Background()
	if r := hook(t, sock, hookXML("a", uuidA, [2]string{"vnetA", macA}), "a", "start", "begin", "-"); r.code != 0 || !strings.Contains(r.stdout, "owner "+uuidA) {
		t.Fatalf("start of A: %+v", r)
	}
	if p, err := fake.GetPort(ctx, "vnetA"); err != nil || p.Owner != uuidA {
		t.Fatalf("A's port %+v, %v: want owner %s", p, err, uuidA)
	}
	hook(t, sock, hookXML("b", uuidB, [2]string{"vnetB", macB}), "b", "start", "begin", "-").expect(t, 0, "")
	vswctl(t, sock, "add-port", "manual", "--vlan", "5", "--mac", macA).expect(t, 0, "")

	// B stops; its metadata (wrongly, or maliciously) lists A's MAC too.
	r := hook(t, sock, hookXML("b", uuidB, [2]string{"", macB}, [2]string{"", macA}), "b", "stopped", "end", "-")
	if r.code != 0 || r.stdout != "domain b: port vnetB deleted\n" {
		t.Errorf("stop of B: %+v, want only vnetB deleted", r)
	}
	for _, name := range []string{"vnetA", "manual"} {
		if _, err := fake.GetPort(ctx, name); err != nil {
			t.Errorf("port %s gone after B stopped: %v", name, err)
		}
	}
	// A stops: its own port goes, the manual one with its MAC stays.
	if r := hook(t, sock, hookXML("a", uuidA, [2]string{"", macA}), "a", "stopped", "end", "-"); r.code != 0 || r.stdout != "domain a: port vnetA deleted\n" {
		t.Errorf("stop of A: %+v", r)
	}
	if ps, _ := fake.ListPorts(ctx); len(ps) != 1 || ps[0].Name != "manual" {
		t.Errorf("ports after both stopped: %+v, want only manual", ps)
	}

	// A port from before owners (none recorded) is adopted at reconnect
	// when it matches the description, then removed at the stop.
	vswctl(t, sock, "add-port", "vnetC", "--vlan", "100", "--mac", macC).expect(t, 0, "")
	xmlC := hookXML("c", uuidC, [2]string{"vnetC", macC})
	hook(t, sock, xmlC, "c", "reconnect", "begin", "-").expect(t, 0, "")
	if p, _ := fake.GetPort(ctx, "vnetC"); p.Owner != uuidC {
		t.Errorf("reconnect did not record the owner: %+v", p)
	}
	// Another domain's port at reconnect is reported, not taken over.
	if r := hook(t, sock, hookXML("d", uuidB, [2]string{"vnetC", macC}), "d", "reconnect", "begin", "-"); r.code != 0 ||
		!strings.Contains(r.stderr, "differs from the domain's description") {
		t.Errorf("reconnect of another domain's port: %+v", r)
	}
	if p, _ := fake.GetPort(ctx, "vnetC"); p.Owner != uuidC {
		t.Errorf("another domain's reconnect changed the owner: %+v", p)
	}
	hook(t, sock, xmlC, "c", "stopped", "end", "-").expect(t, 0, "")
	if _, err := fake.GetPort(ctx, "vnetC"); err == nil {
		t.Error("vnetC left after C stopped")
	}
}

// A domain XML over 4 MiB fails the start as such (it used to fail as
// "unexpected EOF"); at a stop the failure is only reported.
func TestHookTooLargeXML(t *testing.T) {
	_, sock := daemon(t)
	big := hookXML("big", "4dea22b3-1d52-d8f3-2516-782e98ab3fa0", [2]string{"vnet1", "52:54:00:00:00:01"})
	big = strings.Replace(big, "<devices>", "<description>"+strings.Repeat("x", 5<<20)+"</description><devices>", 1)
	hook(t, sock, big, "big", "start", "begin", "-").expect(t, 1, "domain XML larger than 4 MiB")
	hook(t, sock, big, "big", "stopped", "end", "-").expect(t, 0, "domain XML larger than 4 MiB (ignored: libvirt stopped end)")
}

// The VSI identity and migration flags reach the daemon in canonical form,
// show in the one-line summary, and set-port changes them; vsis shows the
// type, version, manager and the bridge's reason.
func TestVSIFlagsAndTable(t *testing.T) {
	fake, sock := daemon(t)
	r := vswctl(t, sock, "add-port", "vnet1", "--vlan", "100", "--mac", "52:54:00:12:34:56", "--vsi-type", "1193047",
		"--vsi-type-version", "2", "--vsi-manager", "012", "--instance-id", "0B6D9A3C-5E55-4F4E-9F11-2F0D5A6B7C8D", "--migration", "incoming")
	r.expect(t, 0, "")
	for _, want := range []string{"vsi type 1193047 version 2", "vsi manager 12", "instance 0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d", "migration incoming"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("add-port said %q, without %q", r.stdout, want)
		}
	}
	p, _ := fake.GetPort(context.Background(), "vnet1")
	if p.VSIType != 1193047 || p.VSITypeVersion != 2 || p.VSIManager != "12" || p.InstanceID != "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d" || p.Migration != "incoming" {
		t.Fatalf("port %+v", p)
	}
	vswctl(t, sock, "set-port", "vnet1", "--migration", "none", "--vsi-manager", "vswitchd", "--instance-id", "").expect(t, 0, "")
	if p, _ = fake.GetPort(context.Background(), "vnet1"); p.Migration != "" || p.VSIManager != "vswitchd" || p.InstanceID != "" {
		t.Fatalf("after set-port: %+v", p)
	}
	vswctl(t, sock, "set-port", "vnet1", "--migration", "incoming").expect(t, 1, "only when it is added")
	fake.VSIsV = []api.VSI{{Port: "vnet1", UUID: "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d", State: "failed", MgrID: "12", TypeID: 1193047, TypeVer: 2,
		VLAN: 100, MAC: "52:54:00:12:34:56", Reason: "insufficient resources", Migrated: true}}
	r = vswctl(t, sock, "vsis")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "PORT MAC VLAN STATE VSIID MANAGER TYPE VERSION MIGRATED REASON" ||
		strings.Join(strings.Fields(lines[1]), " ") != "vnet1 52:54:00:12:34:56 100 failed 0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d 12 1193047 2 yes insufficient resources" {
		t.Errorf("vsis:\n%s", r.stdout)
	}
}

// --vlan 0 asks the bridge for the VLAN (vlan_from_bridge, the API's
// explicit marker), on add-port and set-port; --vsi-group reaches the
// daemon; list-ports shows the VID the bridge assigned, or why the port
// waits; vsis shows the assignment, the S-channel and the group.
func TestVLANFromBridgeFlags(t *testing.T) {
	fake, sock := daemon(t)
	r := vswctl(t, sock, "add-port", "vnet1", "--vlan", "0", "--mac", "52:54:00:12:34:56", "--vsi-group", "4000000000")
	r.expect(t, 0, "")
	if !strings.Contains(r.stdout, "vlan from the bridge") || !strings.Contains(r.stdout, "vsi group 4000000000") {
		t.Errorf("add-port said %q", r.stdout)
	}
	p, _ := fake.GetPort(context.Background(), "vnet1")
	if !p.VLANFromBridge || p.VLAN != 0 || p.VSIGroup != 4000000000 {
		t.Fatalf("port %+v", p)
	}
	vswctl(t, sock, "add-port", "vnet2", "--vlan", "100").expect(t, 0, "")
	vswctl(t, sock, "set-port", "vnet2", "--vlan", " 0").expect(t, 0, "")
	if p, _ := fake.GetPort(context.Background(), "vnet2"); !p.VLANFromBridge || p.VLAN != 0 {
		t.Fatalf("set-port --vlan 0: %+v", p)
	}
	vswctl(t, sock, "set-port", "vnet2", "--vlan", "300").expect(t, 0, "")
	if p, _ := fake.GetPort(context.Background(), "vnet2"); p.VLANFromBridge || p.VLAN != 300 {
		t.Fatalf("set-port --vlan 300: %+v", p)
	}

	// What the table shows of a port the bridge gave VLAN 200 and of one
	// still waiting.
	var out bytes.Buffer
	if err := writePorts(&out, []api.Port{
		{Name: "vnet1", VLANFromBridge: true, AssignedVLAN: 200, State: "up"},
		{Name: "vnet3", VLANFromBridge: true, State: "waiting", Problem: "VDP asked the bridge for the VLAN (VID 0); no answer yet"},
		{Name: "vnet4", Trunk: []int{1, 2}, State: "up", VDPError: "port vnet4: VDP would register ..."},
	}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 || !strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "vnet1 200 (bridge) - 0 - up") ||
		!strings.HasPrefix(strings.Join(strings.Fields(lines[2]), " "), "vnet3 - (bridge) - 0 - waiting") ||
		lines[4] != "vnet3: VDP asked the bridge for the VLAN (VID 0); no answer yet" ||
		lines[5] != "vnet4: no VSI registered: port vnet4: VDP would register ..." {
		t.Errorf("list-ports:\n%s", out.String())
	}
	fake.VSIsV = []api.VSI{
		{Port: "vnet1", UUID: "u1", State: "associated", MgrID: "vswitchd", VLAN: 0, AssignedVLAN: 200, MAC: "52:54:00:12:34:56", SVID: 10, Group: 7},
		{Port: "vnet4", UUID: "u2", State: "associating", MgrID: "vswitchd", VLAN: 1, VLANs: []int{1, 2, 3, 10}},
	}
	r = vswctl(t, sock, "vsis")
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "PORT MAC VLAN STATE VSIID MANAGER TYPE VERSION MIGRATED SVID GROUP REASON" ||
		strings.Join(strings.Fields(lines[1]), " ") != "vnet1 52:54:00:12:34:56 0 -> 200 associated u1 vswitchd 0 0 - 10 7 -" ||
		strings.Join(strings.Fields(lines[2]), " ") != "vnet4 - 1-3,10 associating u2 vswitchd 0 0 - - - -" {
		t.Errorf("vsis:\n%s", r.stdout)
	}
}

// --version prints vswctl's build; version adds the daemon's, from its
// status; a daemon that cannot be reached leaves vswctl's line, one line
// on stderr and exit 1 (--client does not ask).
func TestVersions(t *testing.T) {
	fake, sock := daemon(t)
	fake.StatusV.Version, fake.StatusV.Commit, fake.StatusV.BuildDate, fake.StatusV.GoVersion = "v1.2.3", "0123456789abcdef0123", "2026-11-27T09:00:00Z", "go1.26.0"
	client := version.Program("vswctl")
	r := vswctl(t, "", "--version")
	r.expect(t, 0, "")
	if r.stdout != client+"\n" {
		t.Errorf("--version: %q, want %q", r.stdout, client)
	}
	r = vswctl(t, sock, "version")
	r.expect(t, 0, "")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != client ||
		strings.Join(strings.Fields(lines[1]), " ") != "vswitchd v1.2.3 (commit 0123456789ab, built 2026-11-27T09:00:00Z, go1.26.0)" {
		t.Errorf("version:\n%s", r.stdout)
	}
	r = vswctl(t, sock, "-o", "json", "version")
	r.expect(t, 0, "")
	var v struct {
		Client, Daemon *version.Info
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Client == nil || *v.Client != version.Get() ||
		v.Daemon == nil || v.Daemon.Commit != "0123456789abcdef0123" || v.Daemon.BuildDate != "2026-11-27T09:00:00Z" {
		t.Errorf("-o json version: %v %q", err, r.stdout)
	}

	down := filepath.Join(t.TempDir(), "down.sock")
	r = vswctl(t, down, "version")
	r.expect(t, 1, "cannot reach vswitchd at "+down+": is vswitchd running?")
	if strings.Join(strings.Fields(r.stdout), " ") != client {
		t.Errorf("version with the daemon down: stdout %q, want vswctl's line", r.stdout)
	}
	r = vswctl(t, down, "-o", "json", "version")
	r.expect(t, 1, "cannot reach vswitchd")
	v.Client, v.Daemon = nil, nil
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Daemon != nil || v.Client == nil {
		t.Errorf("-o json version, daemon down: %v %q", err, r.stdout)
	}
	r = vswctl(t, down, "version", "--client")
	r.expect(t, 0, "")
	if strings.Join(strings.Fields(r.stdout), " ") != client {
		t.Errorf("version --client: %q", r.stdout)
	}
	vswctl(t, sock, "version", "extra").expect(t, 2, "version takes no arguments")

	// status shows the build; an older daemon's status without commit
	// and date shows only its version.
	r = vswctl(t, sock, "status")
	for _, want := range []string{"version:", "v1.2.3", "commit:", "0123456789abcdef0123", "build date:", "2026-11-27T09:00:00Z"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	fake.StatusV.Commit, fake.StatusV.BuildDate, fake.StatusV.GoVersion = "", "", ""
	r = vswctl(t, sock, "status")
	if strings.Contains(r.stdout, "commit:") || strings.Contains(r.stdout, "build date:") {
		t.Errorf("status of an older daemon:\n%s", r.stdout)
	}
	r = vswctl(t, sock, "version")
	if !strings.Contains(r.stdout, "vswitchd  v1.2.3\n") {
		t.Errorf("version of an older daemon:\n%s", r.stdout)
	}
}
