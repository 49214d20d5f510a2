package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/api/apitest"
	"github.com/vswitch/vswitch/pkg/port"
)

// legacyPortConfig is the stored port record as the daemon validated it
// before port.Config (store.PortConfig, checked by daemon.toDatapath).
type legacyPortConfig struct {
	Name       string   `json:"name"`
	VLAN       int      `json:"vlan,omitempty"`
	Trunk      string   `json:"trunk,omitempty"`
	NativeVLAN int      `json:"native_vlan,omitempty"`
	SVID       int      `json:"svid,omitempty"`
	PCP        int      `json:"pcp,omitempty"`
	MACs       []string `json:"macs,omitempty"`
	Flood      bool     `json:"flood_unknown,omitempty"`
}

// The table of the daemon's former toDatapath test: a stored record is
// judged by the port rules when it is decoded, and each broken rule maps
// to the code the daemon used to answer with.
func TestStoredRecordCodes(t *testing.T) {
	tests := []struct {
		name string
		in   legacyPortConfig
		code string // "" = valid
	}{
		{"access", legacyPortConfig{Name: "vnet1", VLAN: 100, PCP: 7, MACs: []string{"52:54:00:12:34:56"}}, ""},
		{"trunk", legacyPortConfig{Name: "vnet1", Trunk: "10,20-30", NativeVLAN: 10}, ""},
		{"s-channel", legacyPortConfig{Name: "vnet1", VLAN: 100, SVID: 20}, ""},
		{"vlan 0 and no trunk", legacyPortConfig{Name: "vnet1"}, api.CodeInvalidVLAN},
		{"vlan 4095", legacyPortConfig{Name: "vnet1", VLAN: 4095}, api.CodeInvalidVLAN},
		{"vlan 5000", legacyPortConfig{Name: "vnet1", VLAN: 5000}, api.CodeInvalidVLAN},
		{"negative vlan", legacyPortConfig{Name: "vnet1", VLAN: -1}, api.CodeInvalidVLAN},
		{"vlan and trunk", legacyPortConfig{Name: "vnet1", VLAN: 10, Trunk: "20"}, api.CodeInvalidVLAN},
		{"native on access", legacyPortConfig{Name: "vnet1", VLAN: 10, NativeVLAN: 20}, api.CodeInvalidVLAN},
		{"bad trunk", legacyPortConfig{Name: "vnet1", Trunk: "10-"}, api.CodeInvalidVLAN},
		{"blank trunk", legacyPortConfig{Name: "vnet1", Trunk: " "}, api.CodeInvalidVLAN},
		{"bad svid", legacyPortConfig{Name: "vnet1", VLAN: 10, SVID: 4095}, api.CodeInvalidVLAN},
		{"bad pcp", legacyPortConfig{Name: "vnet1", VLAN: 10, PCP: 8}, api.CodeInvalidPCP},
		{"malformed mac", legacyPortConfig{Name: "vnet1", VLAN: 10, MACs: []string{"zz"}}, api.CodeInvalidMAC},
		{"multicast mac", legacyPortConfig{Name: "vnet1", VLAN: 10, MACs: []string{"01:00:5e:00:00:01"}}, api.CodeInvalidMAC},
		{"zero mac", legacyPortConfig{Name: "vnet1", VLAN: 10, MACs: []string{"00:00:00:00:00:00"}}, api.CodeInvalidMAC},
		{"empty name", legacyPortConfig{VLAN: 10}, api.CodeInvalidName},
		{"long name", legacyPortConfig{Name: "0123456789abcdef", VLAN: 10}, api.CodeInvalidName},
		{"slash in name", legacyPortConfig{Name: "a/b", VLAN: 10}, api.CodeInvalidName},
		{"colon in name (the daemon took it)", legacyPortConfig{Name: "a:b", VLAN: 10}, api.CodeInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			var c port.Config
			err = json.Unmarshal(rec, &c)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("valid record %s refused: %v", rec, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%s accepted, want %s", rec, tt.code)
			}
			if got := api.CodeOf(err); got != tt.code {
				t.Fatalf("code %s (%v), want %s", got, err, tt.code)
			}
		})
	}
}

// What a POST body becomes: the code of the first rule broken, or a port.
func TestApplyAdd(t *testing.T) {
	tests := []struct {
		name string
		spec api.PortSpec
		code string // "" = valid
		msg  string
	}{
		{"access", api.PortSpec{Name: "vnet1", VLAN: ptr(100), PCP: ptr(7), SVID: ptr(20), MACs: &[]string{"52:54:00:12:34:56"}}, "", ""},
		{"trunk", api.PortSpec{Name: "vnet1", Trunk: ptr("10,20-30"), NativeVLAN: ptr(10)}, "", ""},
		{"vlan and trunk: trunk wins, as it always did", api.PortSpec{Name: "vnet1", VLAN: ptr(10), Trunk: ptr("20")}, "", ""},
		{"vlan 0 with a trunk", api.PortSpec{Name: "vnet1", VLAN: ptr(0), Trunk: ptr("20")}, "", ""},
		{"no name", api.PortSpec{VLAN: ptr(10)}, api.CodeInvalidName, `invalid interface name ""`},
		{"colon in name", api.PortSpec{Name: "vnet1:1", VLAN: ptr(10)}, api.CodeInvalidName, `invalid interface name "vnet1:1"`},
		{"neither", api.PortSpec{Name: "vnet1"}, api.CodeInvalidVLAN, "port vnet1: needs a VLAN (--vlan VID) or a trunk (--trunk 10,20-30)"},
		{"vlan 0", api.PortSpec{Name: "vnet1", VLAN: ptr(0)}, api.CodeInvalidVLAN, "invalid VLAN 0: must be 1-4094"},
		{"vlan 0 and trunk empty", api.PortSpec{Name: "vnet1", VLAN: ptr(0), Trunk: ptr("")}, api.CodeInvalidVLAN, "invalid VLAN 0: must be 1-4094"},
		{"vlan 4095", api.PortSpec{Name: "vnet1", VLAN: ptr(4095)}, api.CodeInvalidVLAN, "invalid VLAN 4095: must be 1-4094"},
		{"vlan -3", api.PortSpec{Name: "vnet1", VLAN: ptr(-3)}, api.CodeInvalidVLAN, "invalid VLAN -3: must be 1-4094"},
		{"huge vlan", api.PortSpec{Name: "vnet1", VLAN: ptr(1 << 40)}, api.CodeInvalidVLAN, "must be 1-4094"},
		{"empty trunk", api.PortSpec{Name: "vnet1", Trunk: ptr("")}, api.CodeInvalidVLAN, "needs a VLAN"},
		{"blank trunk", api.PortSpec{Name: "vnet1", Trunk: ptr(" ")}, api.CodeInvalidVLAN, `invalid trunk " "`},
		{"backwards trunk", api.PortSpec{Name: "vnet1", Trunk: ptr("30-20")}, api.CodeInvalidVLAN, "range 30-20 is backwards; write it 20-30"},
		{"native on access", api.PortSpec{Name: "vnet1", VLAN: ptr(10), NativeVLAN: ptr(20)}, api.CodeInvalidVLAN, "port vnet1: a native VLAN needs a trunk port"},
		{"native 4095", api.PortSpec{Name: "vnet1", Trunk: ptr("10"), NativeVLAN: ptr(4095)}, api.CodeInvalidVLAN, "invalid native VLAN 4095: must be 1-4094, or 0 for none"},
		{"svid 4095", api.PortSpec{Name: "vnet1", VLAN: ptr(10), SVID: ptr(4095)}, api.CodeInvalidVLAN, "invalid S-VLAN 4095"},
		{"pcp 8", api.PortSpec{Name: "vnet1", VLAN: ptr(10), PCP: ptr(8)}, api.CodeInvalidPCP, "invalid PCP 8: must be 0-7"},
		{"pcp -1", api.PortSpec{Name: "vnet1", VLAN: ptr(10), PCP: ptr(-1)}, api.CodeInvalidPCP, "invalid PCP -1"},
		{"malformed mac", api.PortSpec{Name: "vnet1", VLAN: ptr(10), MACs: &[]string{"zz"}}, api.CodeInvalidMAC, `invalid MAC "zz": use the form 52:54:00:12:34:56`},
		{"multicast mac", api.PortSpec{Name: "vnet1", VLAN: ptr(10), MACs: &[]string{"01:00:5e:00:00:01"}}, api.CodeInvalidMAC, "must be unicast"},
		{"zero mac", api.PortSpec{Name: "vnet1", VLAN: ptr(10), MACs: &[]string{"00:00:00:00:00:00"}}, api.CodeInvalidMAC, "all zeros"},
		{"max macs 0", api.PortSpec{Name: "vnet1", VLAN: ptr(10), MaxMACs: ptr(0)}, "", ""},
		{"max macs default", api.PortSpec{Name: "vnet1", VLAN: ptr(10), MaxMACs: ptr(api.MaxMACsDefault)}, "", ""},
		{"max macs -2", api.PortSpec{Name: "vnet1", VLAN: ptr(10), MaxMACs: ptr(-2)}, api.CodeInvalidMaxMACs, "invalid MAC limit -2: must be 0-1048576"},
		{"max macs too many", api.PortSpec{Name: "vnet1", VLAN: ptr(10), MaxMACs: ptr(1 << 21)}, api.CodeInvalidMaxMACs, "invalid MAC limit 2097152"},
		{"257 macs", api.PortSpec{Name: "vnet1", VLAN: ptr(10), MACs: ptr(macList(257))}, api.CodeInvalidMAC, "port vnet1: too many MACs (257): a port registers at most 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.spec.Apply(port.Config{})
			if tt.code == "" {
				if err != nil {
					t.Fatalf("valid spec refused: %v", err)
				}
				if err := c.Validate(); err != nil || c.Name != tt.spec.Name {
					t.Fatalf("Apply = %+v, invalid: %v", c, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted as %+v, want %s", c, tt.code)
			}
			if got := api.CodeOf(err); got != tt.code || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("code %s, message %q; want %s and %q", got, err, tt.code, tt.msg)
			}
			// Check refuses what is wrong on its own too, with the same error.
			if cerr := tt.spec.Check(); cerr != nil && cerr.Error() != err.Error() {
				t.Errorf("Check = %v, Apply = %v", cerr, err)
			}
		})
	}
}

// macList is n distinct MACs as text.
func macList(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)
	}
	return out
}

// The learned-MAC limit: set, kept by a PATCH that does not name it, put
// back on the daemon's default by MaxMACsDefault, shown in the port object
// only when set.
func TestApplyMaxMACs(t *testing.T) {
	c, err := api.PortSpec{Name: "vnet1", VLAN: ptr(10), MaxMACs: ptr(0)}.Apply(port.Config{})
	if err != nil || c.MaxMACs == nil || *c.MaxMACs != 0 {
		t.Fatalf("max_macs 0: %+v, %v", c.MaxMACs, err)
	}
	if b, _ := json.Marshal(api.NewPort(c, "up", api.PortCounters{})); !strings.Contains(string(b), `"max_macs":0`) {
		t.Errorf("port object without its limit 0: %s", b)
	}
	spec := api.PortSpec{MaxMACs: ptr(7)}
	c, err = spec.Apply(c)
	*spec.MaxMACs = 9 // the port does not share the request's value
	if err != nil || *c.MaxMACs != 7 {
		t.Fatalf("max_macs 7: %v, %v", *c.MaxMACs, err)
	}
	if c, err = (api.PortSpec{PCP: ptr(1)}).Apply(c); err != nil || *c.MaxMACs != 7 {
		t.Fatalf("a PATCH without max_macs changed it: %+v, %v", c.MaxMACs, err)
	}
	if c, err = (api.PortSpec{MaxMACs: ptr(api.MaxMACsDefault)}).Apply(c); err != nil || c.MaxMACs != nil {
		t.Fatalf("max_macs -1: %+v, %v", c.MaxMACs, err)
	}
	if b, _ := json.Marshal(api.NewPort(c, "up", api.PortCounters{})); strings.Contains(string(b), `max_macs`) {
		t.Errorf("port object on the default shows a limit: %s", b)
	}
}

// The switching rules of the daemon's former applySpec, kept exactly:
// a VID makes an access port (trunk and native VLAN go), a non-empty
// trunk makes a trunk port (the VLAN goes), other fields stay.
func TestApplySwitchesPortType(t *testing.T) {
	c, err := api.PortSpec{Name: "vnet1", VLAN: ptr(100)}.Apply(port.Config{})
	if err != nil {
		t.Fatal(err)
	}
	must := func(c port.Config, err error) port.Config {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c = must(api.PortSpec{Trunk: ptr("10,20")}.Apply(c))
	if c.VLAN != 0 || c.Trunk.String() != "10,20" {
		t.Fatalf("access -> trunk: %+v", c)
	}
	c = must(api.PortSpec{NativeVLAN: ptr(10)}.Apply(c))
	c = must(api.PortSpec{VLAN: ptr(200)}.Apply(c))
	if c.VLAN != 200 || c.Trunk.Len() != 0 || c.NativeVLAN != 0 {
		t.Fatalf("trunk -> access must drop trunk and native VLAN: %+v", c)
	}
	c = must(api.PortSpec{PCP: ptr(3)}.Apply(c))
	if c.PCP != 3 || c.VLAN != 200 {
		t.Fatalf("PCP change touched other fields: %+v", c)
	}
	// What vswctl set-port sends: the new kind and the old one cleared.
	c = must(api.PortSpec{Trunk: ptr("40-41"), VLAN: ptr(0)}.Apply(c))
	if c.VLAN != 0 || c.Trunk.String() != "40-41" || c.PCP != 3 {
		t.Fatalf("set-port --trunk: %+v", c)
	}
	c = must(api.PortSpec{VLAN: ptr(300), Trunk: ptr("")}.Apply(c))
	if c.VLAN != 300 || c.Trunk.Len() != 0 {
		t.Fatalf("set-port --vlan: %+v", c)
	}
	// VLAN 0 on a trunk port changes nothing; on an access port it is an error.
	tr := must(api.PortSpec{Name: "vnet2", Trunk: ptr("5")}.Apply(port.Config{}))
	if got := must(api.PortSpec{VLAN: ptr(0)}.Apply(tr)); !reflect.DeepEqual(got, tr) {
		t.Fatalf("vlan 0 on a trunk port: %+v", got)
	}
	if _, err := (api.PortSpec{VLAN: ptr(0)}).Apply(c); api.CodeOf(err) != api.CodeInvalidVLAN {
		t.Fatalf("vlan 0 on an access port: %v", err)
	}
	// Errors leave the port as it was and say so with a code.
	if _, err := (api.PortSpec{Name: "vnet7"}).Apply(c); api.CodeOf(err) != api.CodeInvalidName || !strings.Contains(err.Error(), "cannot rename port vnet1 to vnet7") {
		t.Fatalf("rename: %v", err)
	}
	if got := must(api.PortSpec{Name: "vnet1", Flood: ptr(true), MACs: &[]string{}}.Apply(c)); !got.Flood || got.MACs != nil {
		t.Fatalf("same name, flood, no MACs: %+v", got)
	}
}

// Formerly normalise and toAPI: the trunk and MACs come out canonical,
// lists are never null.
func TestApplyNormalisesAndNewPort(t *testing.T) {
	c, err := api.PortSpec{Name: "vnet1", Trunk: ptr("30,10,11,12"), MACs: &[]string{"52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef"}}.Apply(port.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if rec, _ := json.Marshal(c); string(rec) != `{"name":"vnet1","trunk":"10-12,30","macs":["52:54:00:ab:cd:ef"]}` {
		t.Fatalf("normalised %s", rec)
	}
	p := api.NewPort(c, "absent", api.PortCounters{})
	if len(p.Trunk) != 4 || p.Trunk[0] != 10 || p.Trunk[3] != 30 || p.State != "absent" || p.Drops == nil || len(p.MACs) != 1 {
		t.Fatalf("api port %+v", p)
	}
	acc := port.Config{Name: "vnet2", VLAN: 7, MACs: []net.HardwareAddr{{0x52, 0x54, 0, 0, 0, 1}}}
	p = api.NewPort(acc, "up", api.PortCounters{RxPackets: 1, RxBytes: 2, TxPackets: 3, TxBytes: 4, Drops: map[string]uint64{"bad_src": 5}, LearnedMACs: 6, MACMoves: 7})
	b, _ := json.Marshal(p)
	want := `{"name":"vnet2","vlan":7,"trunk":[],"native_vlan":0,"svid":0,"pcp":0,"macs":["52:54:00:00:00:01"],"state":"up",` +
		`"rx_packets":1,"rx_bytes":2,"tx_packets":3,"tx_bytes":4,"drops":{"bad_src":5},"learned_macs":6,"mac_moves":7}`
	if string(b) != want {
		t.Fatalf("port JSON\n %s\nwant\n %s", b, want)
	}
	if b, _ := json.Marshal(api.NewPort(port.Config{Name: "v", VLAN: 1}, "absent", api.PortCounters{})); !strings.Contains(string(b), `"macs":[]`) ||
		!strings.Contains(string(b), `"drops":{}`) {
		t.Fatalf("empty lists: %s", b)
	}
}

func TestCodeOf(t *testing.T) {
	for err, code := range map[error]string{
		&port.Error{Field: port.FieldName}:                          api.CodeInvalidName,
		&port.Error{Field: port.FieldVLAN}:                          api.CodeInvalidVLAN,
		&port.Error{Field: port.FieldTrunk}:                         api.CodeInvalidVLAN,
		&port.Error{Field: port.FieldNativeVLAN}:                    api.CodeInvalidVLAN,
		&port.Error{Field: port.FieldSVID}:                          api.CodeInvalidVLAN,
		&port.Error{Field: port.FieldPCP}:                           api.CodeInvalidPCP,
		&port.Error{Field: port.FieldMAC}:                           api.CodeInvalidMAC,
		&port.Error{Field: port.FieldMaxMACs}:                       api.CodeInvalidMaxMACs,
		port.NotFound("vnet1"):                                      api.CodeNotFound,
		port.Exists("vnet1"):                                        api.CodeAlreadyExists,
		fmt.Errorf("attach: %w", port.NotFound("vnet1")):            api.CodeNotFound,
		fmt.Errorf("read port: %w", port.ErrNotFound):               api.CodeNotFound,
		fmt.Errorf("decode: %w", &port.Error{Field: port.FieldMAC}): api.CodeInvalidMAC,
		api.NewError("custom", "x"):                                 "custom",
		errors.New("disk on fire"):                                  api.CodeInternal,
		api.ErrPortNotFound("vnet1"):                                api.CodeNotFound,
		api.ErrPortExists("vnet1"):                                  api.CodeAlreadyExists,
	} {
		if got := api.CodeOf(err); got != code {
			t.Errorf("CodeOf(%v) = %s, want %s", err, got, code)
		}
	}
}

// The deprecated constructors keep what an external client may rely on:
// a *ServiceError with the code and message they always had (errors.As,
// also through wrapping), and now errors.Is with the port sentinels.
func TestDeprecatedPortErrors(t *testing.T) {
	for _, c := range []struct {
		err       error
		code, msg string
		is, isNot error
	}{
		{api.ErrPortNotFound("vnet1"), api.CodeNotFound, "port vnet1 not found (see vswctl list-ports)", port.ErrNotFound, port.ErrExists},
		{api.ErrPortExists("vnet1"), api.CodeAlreadyExists, "port vnet1 already exists (use vswctl set-port to change it)", port.ErrExists, port.ErrNotFound},
	} {
		for _, err := range []error{c.err, fmt.Errorf("add port: %w", c.err)} {
			var se *api.ServiceError
			if !errors.As(err, &se) || se.Code != c.code || se.Msg != c.msg {
				t.Errorf("errors.As(%v, *ServiceError) = %+v, want code %s, message %q", err, se, c.code, c.msg)
			}
			if !errors.Is(err, c.is) || errors.Is(err, c.isNot) {
				t.Errorf("%v: errors.Is %v = %v, %v = %v", err, c.is, errors.Is(err, c.is), c.isNot, errors.Is(err, c.isNot))
			}
			if !strings.HasSuffix(err.Error(), c.msg) {
				t.Errorf("message %q, want %q", err, c.msg)
			}
		}
	}
}

// The fake judges requests by the production rules: before, it accepted
// multicast MACs, names with ':' and out-of-range S-VLANs the daemon
// refused, so clients were tested against looser rules.
func TestFakeUsesProductionRules(t *testing.T) {
	fake := apitest.NewFake()
	ctx := context.Background()
	for _, tc := range []struct {
		spec api.PortSpec
		code string
	}{
		{api.PortSpec{Name: "vnet1", VLAN: ptr(10), MACs: &[]string{"01:00:5e:00:00:01"}}, api.CodeInvalidMAC},
		{api.PortSpec{Name: "vnet1", VLAN: ptr(10), MACs: &[]string{"00:00:00:00:00:00"}}, api.CodeInvalidMAC},
		{api.PortSpec{Name: "vnet:1", VLAN: ptr(10)}, api.CodeInvalidName},
		{api.PortSpec{Name: "vnet1", VLAN: ptr(10), SVID: ptr(4095)}, api.CodeInvalidVLAN},
		{api.PortSpec{Name: "vnet1", VLAN: ptr(10), NativeVLAN: ptr(4)}, api.CodeInvalidVLAN},
		{api.PortSpec{Name: "vnet1", Trunk: ptr("10"), NativeVLAN: ptr(4095)}, api.CodeInvalidVLAN},
	} {
		if _, err := fake.AddPort(ctx, tc.spec); api.CodeOf(err) != tc.code {
			t.Errorf("fake.AddPort(%+v) = %v, want %s", tc.spec, err, tc.code)
		}
	}
	if _, err := fake.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: ptr(10)}); err != nil {
		t.Fatal(err)
	}
	if _, err := fake.UpdatePort(ctx, "vnet1", api.PortSpec{NativeVLAN: ptr(4)}); api.CodeOf(err) != api.CodeInvalidVLAN {
		t.Errorf("native VLAN on an access port: %v", err)
	}
	if _, err := fake.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: ptr(10)}); !errors.Is(err, port.ErrExists) {
		t.Errorf("duplicate: %v", err)
	}
	if err := fake.DeletePort(ctx, "vnet9"); !errors.Is(err, port.ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
}

// FuzzApply: whatever a spec holds, Apply gives a valid port.Config or a
// one-line error with an invalid_* code, never a panic; Check accepts
// what Apply accepts; applying the result's own values again changes
// nothing.
func FuzzApply(f *testing.F) {
	f.Add("vnet1", 100, "", 0, 0, 3, "52:54:00:12:34:56", uint8(0b1111111))
	f.Add("vnet2", 0, "10,20-30", 10, 7, 0, "", uint8(0b0001110))
	f.Add("a:b", 4095, "30-20", 4095, -1, 8, "01:00:5e:00:00:01", uint8(0b1111111))
	f.Fuzz(func(t *testing.T, name string, vid int, trunk string, native, svid, pcp int, mac string, set uint8) {
		has := func(bit uint) bool { return set&(1<<bit) != 0 }
		s := api.PortSpec{Name: name}
		if has(0) {
			s.VLAN = &vid
		}
		if has(1) {
			s.Trunk = &trunk
		}
		if has(2) {
			s.NativeVLAN = &native
		}
		if has(3) {
			s.SVID = &svid
		}
		if has(4) {
			s.PCP = &pcp
		}
		if has(5) {
			s.MACs = &[]string{mac}
		}
		if has(6) {
			s.VLANFromBridge = ptr(set&0x80 != 0)
		}
		c, err := s.Apply(port.Config{})
		if err != nil {
			code := api.CodeOf(err)
			if !strings.HasPrefix(code, "invalid_") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Apply(%+v): code %s, error %q", s, code, err)
			}
			return
		}
		if err := s.Check(); err != nil {
			t.Fatalf("Apply accepted %+v, Check refuses: %v", s, err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Apply(%+v) = %+v, invalid: %v", s, c, err)
		}
		// The config's own values, as a PATCH, are a no-op.
		var macs []string
		for _, m := range c.MACs {
			macs = append(macs, m.String())
		}
		vlanID, tr, nat, sv, pc := int(c.VLAN), c.Trunk.String(), int(c.NativeVLAN), int(c.SVID), int(c.PCP)
		again, err := api.PortSpec{VLAN: &vlanID, Trunk: &tr, NativeVLAN: &nat, SVID: &sv, PCP: &pc, MACs: &macs, VLANFromBridge: ptr(c.BridgeVLAN)}.Apply(c)
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("re-applying %+v: %+v, %v", c, again, err)
		}
	})
}

// The owner: set by a POST, changed or cleared ("") by a PATCH, left by a
// PATCH without it, shown in the port object (omitted when empty), and
// refused when longer than 128 characters or not printable ASCII without
// spaces, with invalid_request.
func TestApplyOwner(t *testing.T) {
	uuid := "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"
	c, err := api.PortSpec{Name: "vnet1", VLAN: ptr(10), Owner: &uuid}.Apply(port.Config{})
	if err != nil || c.Owner != uuid {
		t.Fatalf("POST with an owner: %+v, %v", c, err)
	}
	if c, err = (api.PortSpec{PCP: ptr(3)}).Apply(c); err != nil || c.Owner != uuid {
		t.Fatalf("PATCH without owner: %+v, %v", c, err)
	}
	b, _ := json.Marshal(api.NewPort(c, "up", api.PortCounters{}))
	if !strings.Contains(string(b), `"owner":"`+uuid+`"`) {
		t.Errorf("port object %s lacks the owner", b)
	}
	empty := ""
	if c, err = (api.PortSpec{Owner: &empty}).Apply(c); err != nil || c.Owner != "" {
		t.Fatalf("PATCH owner \"\": %+v, %v", c, err)
	}
	if b, _ := json.Marshal(api.NewPort(c, "up", api.PortCounters{})); strings.Contains(string(b), "owner") {
		t.Errorf("port object %s shows an empty owner", b)
	}
	for _, bad := range []string{strings.Repeat("a", 129), "a b", "x\ny", "caf\u00e9", "\x00"} {
		_, err := api.PortSpec{Name: "vnet1", VLAN: ptr(10), Owner: &bad}.Apply(port.Config{})
		if api.CodeOf(err) != api.CodeInvalidBody || !strings.Contains(err.Error(), "invalid owner") {
			t.Errorf("owner %q: %v, want invalid_request naming the owner", bad, err)
		}
	}
	ok := strings.Repeat("a", 128)
	if _, err := (api.PortSpec{Name: "vnet1", VLAN: ptr(10), Owner: &ok}).Apply(port.Config{}); err != nil {
		t.Errorf("a 128-character owner: %v", err)
	}
}

// The VSI identity: set by a POST in canonical form, changed and cleared
// by a PATCH, left by a PATCH without it, shown in the port object and in
// the JSON only when set; a value VDP cannot carry is invalid_vsi.
func TestApplyVSIIdentity(t *testing.T) {
	s := api.PortSpec{Name: "vnet1", VLAN: ptr(10), VSIType: ptr(1193047), VSITypeVersion: ptr(2), VSIManager: ptr(" 012"),
		InstanceID: ptr("0B6D9A3C-5E55-4F4E-9F11-2F0D5A6B7C8D")}
	c, err := s.Apply(port.Config{})
	if err != nil || c.VSIType != 1193047 || c.VSITypeVersion != 2 || c.VSIManager != "12" || c.InstanceID != "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d" {
		t.Fatalf("POST: %+v, %v", c, err)
	}
	if c, err = (api.PortSpec{PCP: ptr(3)}).Apply(c); err != nil || c.VSIManager != "12" || c.VSIType != 1193047 {
		t.Fatalf("PATCH without them: %+v, %v", c, err)
	}
	p := api.NewPort(c, "up", api.PortCounters{})
	if p.VSIType != 1193047 || p.VSITypeVersion != 2 || p.VSIManager != "12" || p.InstanceID != c.InstanceID {
		t.Errorf("port object %+v", p)
	}
	c, err = api.PortSpec{VSIType: ptr(0), VSITypeVersion: ptr(0), VSIManager: ptr(""), InstanceID: ptr("")}.Apply(c)
	if err != nil || c.VSIType != 0 || c.VSIManager != "" || c.InstanceID != "" {
		t.Fatalf("PATCH clearing them: %+v, %v", c, err)
	}
	if b, _ := json.Marshal(api.NewPort(c, "up", api.PortCounters{})); strings.Contains(string(b), "vsi_") || strings.Contains(string(b), "instance_id") {
		t.Errorf("port object %s shows unset VSI fields", b)
	}
	for _, bad := range []api.PortSpec{
		{VSIType: ptr(1 << 24)}, {VSIType: ptr(-1)}, {VSITypeVersion: ptr(256)}, {VSIManager: ptr("256")},
		{VSIManager: ptr("a name too long!!")}, {InstanceID: ptr("4dea22b3")}, {InstanceID: ptr("00000000-0000-0000-0000-000000000000")},
	} {
		bad.Name, bad.VLAN = "vnet1", ptr(10)
		if _, err := bad.Apply(port.Config{}); api.CodeOf(err) != api.CodeInvalidVSI {
			t.Errorf("Apply(%+v): %v (code %s), want invalid_vsi", bad, err, api.CodeOf(err))
		}
		if err := bad.Check(); api.CodeOf(err) != api.CodeInvalidVSI {
			t.Errorf("Check(%+v): %v, want invalid_vsi", bad, err)
		}
	}
}

// Migration: incoming only when the port is added (pre-association comes
// before association, never after it), cleared to none or made outgoing
// by a PATCH; anything else is invalid_request.
func TestApplyMigration(t *testing.T) {
	in, err := api.PortSpec{Name: "vnet1", VLAN: ptr(10), Migration: ptr("incoming")}.Apply(port.Config{})
	if err != nil || in.Migration != port.MigrationIncoming {
		t.Fatalf("POST incoming: %+v, %v", in, err)
	}
	if c, err := (api.PortSpec{Migration: ptr("incoming")}).Apply(in); err != nil || c.Migration != port.MigrationIncoming {
		t.Errorf("PATCH incoming on an incoming port: %+v, %v", c, err)
	}
	none, err := api.PortSpec{Migration: ptr("")}.Apply(in)
	if err != nil || none.Migration != "" {
		t.Fatalf("PATCH none: %+v, %v", none, err)
	}
	_, err = api.PortSpec{Migration: ptr("incoming")}.Apply(none)
	if api.CodeOf(err) != api.CodeInvalidBody || !strings.Contains(err.Error(), "only when it is added") {
		t.Errorf("PATCH incoming on an associated port: %v", err)
	}
	out, err := api.PortSpec{Migration: ptr("outgoing")}.Apply(none)
	if err != nil || out.Migration != port.MigrationOutgoing {
		t.Errorf("PATCH outgoing: %+v, %v", out, err)
	}
	if _, err := (api.PortSpec{Migration: ptr("incoming")}).Apply(out); err == nil {
		t.Error("PATCH incoming on an outgoing port accepted")
	}
	if _, err := (api.PortSpec{Name: "vnet1", VLAN: ptr(10), Migration: ptr("away")}).Apply(port.Config{}); api.CodeOf(err) != api.CodeInvalidBody {
		t.Errorf("migration away: %v", err)
	}
}
