package port_test

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

func trunk(t testing.TB, s string) vlan.VIDSet {
	t.Helper()
	set, err := vlan.ParseVIDSet(s)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// The one rule set. Rows marked "was" are values one of the four
// validators that came before accepted while another refused.
func TestValidate(t *testing.T) {
	var all vlan.VIDSet
	all.Add(0)
	macs := func(n int) []net.HardwareAddr {
		out := make([]net.HardwareAddr, n)
		for i := range out {
			out[i] = net.HardwareAddr{0x52, 0x54, 0, 0, byte(i >> 8), byte(i)}
		}
		return out
	}
	limit := func(n int) *int { return &n }
	tests := []struct {
		name  string
		c     port.Config
		field port.Field // 0: valid
		msg   string
	}{
		{"access", port.Config{Name: "vnet1", VLAN: 100, PCP: 7, MACs: []net.HardwareAddr{mac("52:54:00:12:34:56")}}, 0, ""},
		{"trunk", port.Config{Name: "vnet1", Trunk: trunk(t, "10,20-30"), NativeVLAN: 10}, 0, ""},
		{"s-channel", port.Config{Name: "vnet1", VLAN: 100, SVID: 20}, 0, ""},
		{"15-byte name", port.Config{Name: "123456789012345", VLAN: 1}, 0, ""},
		{"dot inside name", port.Config{Name: "vnet1.100", VLAN: 1}, 0, ""},
		{"utf-8 name", port.Config{Name: "vnét", VLAN: 1}, 0, ""},
		{"vlan 4094", port.Config{Name: "vnet1", VLAN: 4094, SVID: 4094, PCP: 0}, 0, ""},

		{"empty name", port.Config{VLAN: 10}, port.FieldName, `invalid interface name ""`},
		{"16-byte name", port.Config{Name: "0123456789abcdef", VLAN: 10}, port.FieldName, `invalid interface name "0123456789abcdef": use a Linux interface name of 1-15 characters`},
		{"slash", port.Config{Name: "a/b", VLAN: 10}, port.FieldName, `invalid interface name "a/b"`},
		{"colon (was: daemon accepted)", port.Config{Name: "vnet1:0", VLAN: 10}, port.FieldName, `invalid interface name "vnet1:0"`},
		{"dot (was: daemon accepted)", port.Config{Name: ".", VLAN: 10}, port.FieldName, `invalid interface name "."`},
		{"dot dot (was: daemon accepted)", port.Config{Name: "..", VLAN: 10}, port.FieldName, `invalid interface name ".."`},
		{"space", port.Config{Name: "a b", VLAN: 10}, port.FieldName, "interface name"},
		{"tab", port.Config{Name: "a\tb", VLAN: 10}, port.FieldName, "interface name"},
		{"vertical tab (was: every validator accepted)", port.Config{Name: "a\vb", VLAN: 10}, port.FieldName, "interface name"},
		{"0xa0, a space to the kernel", port.Config{Name: "a\xa0b", VLAN: 10}, port.FieldName, "interface name"},
		{"not UTF-8", port.Config{Name: "vnet\xff", VLAN: 10}, port.FieldName, "not valid UTF-8"},
		{"NUL", port.Config{Name: "a\x00b", VLAN: 10}, port.FieldName, "interface name"},

		{"neither vlan nor trunk", port.Config{Name: "vnet1"}, port.FieldVLAN, "port vnet1: needs a VLAN (--vlan VID) or a trunk (--trunk 10,20-30)"},
		{"vlan 4095", port.Config{Name: "vnet1", VLAN: 4095}, port.FieldVLAN, "invalid VLAN 4095: must be 1-4094"},
		{"vlan and trunk", port.Config{Name: "vnet1", VLAN: 10, Trunk: trunk(t, "20")}, port.FieldVLAN, "port vnet1: use either a VLAN (access port) or a trunk, not both"},
		{"native on access", port.Config{Name: "vnet1", VLAN: 10, NativeVLAN: 20}, port.FieldNativeVLAN, "port vnet1: a native VLAN needs a trunk port"},
		{"native 4095", port.Config{Name: "vnet1", Trunk: trunk(t, "20"), NativeVLAN: 4095}, port.FieldNativeVLAN, "invalid native VLAN 4095: must be 1-4094, or 0 for none"},
		{"trunk holds VID 0", port.Config{Name: "vnet1", Trunk: all}, port.FieldTrunk, "reserved"},
		{"svid 4095", port.Config{Name: "vnet1", VLAN: 10, SVID: 4095}, port.FieldSVID, "invalid S-VLAN 4095: must be 1-4094, or 0 for none"},
		{"pcp 8", port.Config{Name: "vnet1", VLAN: 10, PCP: 8}, port.FieldPCP, "invalid PCP 8: must be 0-7"},
		{"multicast mac (was: apitest accepted)", port.Config{Name: "vnet1", VLAN: 10, MACs: []net.HardwareAddr{mac("01:00:5e:00:00:01")}}, port.FieldMAC, "must be unicast"},
		{"broadcast mac", port.Config{Name: "vnet1", VLAN: 10, MACs: []net.HardwareAddr{mac("ff:ff:ff:ff:ff:ff")}}, port.FieldMAC, "must be unicast"},
		{"zero mac", port.Config{Name: "vnet1", VLAN: 10, MACs: []net.HardwareAddr{make(net.HardwareAddr, 6)}}, port.FieldMAC, "all zeros"},
		{"8-byte mac", port.Config{Name: "vnet1", VLAN: 10, MACs: []net.HardwareAddr{mac("52:54:00:12:34:56:78:9a")}}, port.FieldMAC, "use the form 52:54:00:12:34:56"},
		{"mac twice", port.Config{Name: "vnet1", VLAN: 10, MACs: []net.HardwareAddr{mac("52:54:00:12:34:56"), mac("52:54:00:12:34:56")}}, port.FieldMAC, "listed twice"},
		{"256 macs on a full trunk", port.Config{Name: "vnet1", Trunk: trunk(t, "1-4094"), MACs: macs(port.MaxRegisteredMACs)}, 0, ""},
		{"257 macs", port.Config{Name: "vnet1", VLAN: 10, MACs: macs(port.MaxRegisteredMACs + 1)}, port.FieldMAC, "port vnet1: too many MACs (257): a port registers at most 256"},
		{"20000 macs on a full trunk", port.Config{Name: "vnet1", Trunk: trunk(t, "1-4094"), MACs: macs(20000)}, port.FieldMAC, "at most 256"},
		{"max macs 0", port.Config{Name: "vnet1", VLAN: 10, MaxMACs: limit(0)}, 0, ""},
		{"max macs at the bound", port.Config{Name: "vnet1", VLAN: 10, MaxMACs: limit(port.MaxLearnedMACs)}, 0, ""},
		{"max macs -1", port.Config{Name: "vnet1", VLAN: 10, MaxMACs: limit(-1)}, port.FieldMaxMACs, "invalid MAC limit -1: must be 0-1048576 (0: learn no MACs)"},
		{"max macs over the bound", port.Config{Name: "vnet1", VLAN: 10, MaxMACs: limit(port.MaxLearnedMACs + 1)}, port.FieldMaxMACs, "must be 0-1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if tt.field == 0 {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			var pe *port.Error
			if !errors.As(err, &pe) {
				t.Fatalf("Validate = %v, want a *port.Error on %v", err, tt.field)
			}
			if pe.Field != tt.field || pe.Port != tt.c.Name {
				t.Errorf("error on field %v of port %q, want %v of %q (%v)", pe.Field, pe.Port, tt.field, tt.c.Name, err)
			}
			if !strings.Contains(err.Error(), tt.msg) || strings.Contains(err.Error(), "\n") {
				t.Errorf("message %q, want one line containing %q", err, tt.msg)
			}
		})
	}
}

func TestHasVID(t *testing.T) {
	acc := port.Config{Name: "a", VLAN: 100}
	tr := port.Config{Name: "t", Trunk: trunk(t, "10,20-30"), NativeVLAN: 40}
	for _, tc := range []struct {
		c    *port.Config
		vid  uint16
		want bool
	}{
		{&acc, 100, true}, {&acc, 10, false}, {&acc, 0, false},
		{&tr, 10, true}, {&tr, 25, true}, {&tr, 40, true}, {&tr, 11, false}, {&tr, 100, false}, {&tr, 0, false},
	} {
		if got := tc.c.HasVID(tc.vid); got != tc.want {
			t.Errorf("%s.HasVID(%d) = %v", tc.c.Name, tc.vid, got)
		}
	}
	if acc.IsTrunk() || !tr.IsTrunk() {
		t.Error("IsTrunk wrong")
	}
}

// The text parsers give vswctl's messages (its tests check them too).
func TestParseNumber(t *testing.T) {
	tests := []struct {
		f    port.Field
		in   string
		want int
		msg  string
	}{
		{port.FieldVLAN, "100", 100, ""},
		{port.FieldVLAN, " 4094 ", 4094, ""},
		{port.FieldVLAN, "0", 0, "invalid VLAN 0: must be 1-4094"},
		{port.FieldVLAN, "4095", 0, "invalid VLAN 4095: must be 1-4094"},
		{port.FieldVLAN, "-3", 0, "invalid VLAN -3: must be 1-4094"},
		{port.FieldVLAN, "ten", 0, `invalid VLAN "ten": must be a number 1-4094`},
		{port.FieldNativeVLAN, "0", 0, ""},
		{port.FieldNativeVLAN, "4095", 0, "invalid native VLAN 4095: must be 1-4094, or 0 for none"},
		{port.FieldSVID, "7", 7, ""},
		{port.FieldSVID, "x", 0, `invalid S-VLAN "x": must be a number 1-4094, or 0 for none`},
		{port.FieldPCP, "7", 7, ""},
		{port.FieldPCP, "8", 0, "invalid PCP 8: must be 0-7"},
		{port.FieldPCP, "x", 0, `invalid PCP "x": must be a number 0-7`},
		{port.FieldPCP, "99999999999999999999", 0, `invalid PCP "99999999999999999999": must be a number 0-7`},
	}
	for _, tt := range tests {
		got, err := port.ParseNumber(tt.f, tt.in)
		if tt.msg == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseNumber(%v, %q) = %d, %v; want %d", tt.f, tt.in, got, err, tt.want)
			}
			continue
		}
		var pe *port.Error
		if !errors.As(err, &pe) || pe.Field != tt.f || err.Error() != tt.msg {
			t.Errorf("ParseNumber(%v, %q) = %v, want %q on %v", tt.f, tt.in, err, tt.msg, tt.f)
		}
	}
	if _, err := port.ParseNumber(port.FieldMAC, "1"); err == nil {
		t.Error("ParseNumber of a MAC accepted")
	}
	if err := port.CheckNumber(port.FieldTrunk, 1); err == nil {
		t.Error("CheckNumber of a trunk accepted")
	}
}

func TestParseTrunk(t *testing.T) {
	for in, msg := range map[string]string{
		"10,5000": `invalid trunk "10,5000": VLAN 5000 is out of range; use VLAN IDs 1-4094 and ranges, e.g. 10,20-30`,
		"0":       `invalid trunk "0": VLAN 0 is out of range`,
		"30-20":   `invalid trunk "30-20": range 30-20 is backwards; write it 20-30`,
		"a,b":     `invalid trunk "a,b": "a" is not a VLAN ID`,
		"10,,20":  `invalid trunk "10,,20": empty element`,
		"":        `invalid trunk "": use VLAN IDs 1-4094 and ranges, e.g. 10,20-30`,
		" ":       `invalid trunk " ": use VLAN IDs 1-4094 and ranges`,
	} {
		_, err := port.ParseTrunk(in)
		var pe *port.Error
		if !errors.As(err, &pe) || pe.Field != port.FieldTrunk || !strings.HasPrefix(err.Error(), msg) {
			t.Errorf("ParseTrunk(%q) = %v, want %q", in, err, msg)
		}
	}
	set, err := port.ParseTrunk("30,10,11,12")
	if err != nil || set.String() != "10-12,30" {
		t.Fatalf("ParseTrunk = %s, %v", set.String(), err)
	}
}

func TestParseMACs(t *testing.T) {
	got, err := port.ParseMACs([]string{" 52:54:00:AB:CD:EF", "52:54:00:12:34:56", "52-54-00-ab-cd-ef"})
	if err != nil || len(got) != 2 || got[0].String() != "52:54:00:ab:cd:ef" || got[1].String() != "52:54:00:12:34:56" {
		t.Fatalf("ParseMACs = %v, %v: want normalised, in order, without the repeat", got, err)
	}
	if got, err := port.ParseMACs(nil); got != nil || err != nil {
		t.Fatalf("ParseMACs(nil) = %v, %v", got, err)
	}
	for in, msg := range map[string]string{
		"zz":                      `invalid MAC "zz": use the form 52:54:00:12:34:56`,
		"52:54:00:12:34:56:78:9a": `invalid MAC "52:54:00:12:34:56:78:9a": use the form 52:54:00:12:34:56`,
		"01:00:5e:00:00:01":       `invalid MAC "01:00:5e:00:00:01": it is a multicast address; a VM's MAC must be unicast, e.g. 52:54:00:12:34:56`,
		"00:00:00:00:00:00":       `invalid MAC "00:00:00:00:00:00": all zeros; use the VM's address, e.g. 52:54:00:12:34:56`,
	} {
		_, err := port.ParseMACs([]string{"52:54:00:12:34:56", in})
		var pe *port.Error
		if !errors.As(err, &pe) || pe.Field != port.FieldMAC || err.Error() != msg {
			t.Errorf("ParseMACs(%q) = %v, want %q", in, err, msg)
		}
	}
}

func TestLookupErrors(t *testing.T) {
	nf, ex := port.NotFound("vnet1"), port.Exists("vnet1")
	if !errors.Is(nf, port.ErrNotFound) || errors.Is(nf, port.ErrExists) || nf.Error() != "port vnet1 not found (see vswctl list-ports)" {
		t.Errorf("NotFound = %v", nf)
	}
	if !errors.Is(ex, port.ErrExists) || errors.Is(ex, port.ErrNotFound) || ex.Error() != "port vnet1 already exists (use vswctl set-port to change it)" {
		t.Errorf("Exists = %v", ex)
	}
}

// FuzzParseTrunk: a trunk parses exactly when pkg/vlan parses it to a
// non-empty set, to the same set (this was vswctl's parseTrunk against
// vlan.ParseVIDSet, two parsers that had to agree; now there is one).
func FuzzParseTrunk(f *testing.F) {
	for _, s := range []string{"10", "10,20-30", "1-4094", "0", "4095", "30-20", "10,,20", " 10 - 20 ", "+5", "a", "1-2-3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := port.ParseTrunk(s)
		want, werr := vlan.ParseVIDSet(s)
		if (err == nil) != (werr == nil && want.Len() > 0) {
			t.Fatalf("ParseTrunk(%q) err=%v, vlan.ParseVIDSet err=%v len %d", s, err, werr, want.Len())
		}
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if got != want {
			t.Fatalf("ParseTrunk(%q) = %q, vlan says %q", s, got.String(), want.String())
		}
	})
}
