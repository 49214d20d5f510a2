package port_test

import (
	"encoding/json"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/pkg/port"
)

// legacyPortConfig is store.PortConfig as vswitchd wrote it before
// port.Config existed (state file schema v2), kept here to prove that
// files already on disk read back unchanged.
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

func TestJSONIsTheLegacyRecord(t *testing.T) {
	tests := []struct {
		old legacyPortConfig
		new port.Config
	}{
		{legacyPortConfig{Name: "vnet1", VLAN: 100, PCP: 3, SVID: 7, MACs: []string{"52:54:00:12:34:56", "52:54:00:ab:cd:ef"}},
			port.Config{Name: "vnet1", VLAN: 100, PCP: 3, SVID: 7, MACs: []net.HardwareAddr{mac("52:54:00:12:34:56"), mac("52:54:00:ab:cd:ef")}}},
		{legacyPortConfig{Name: "vnet0", Trunk: "10,20-30", NativeVLAN: 10, Flood: true},
			port.Config{Name: "vnet0", Trunk: trunk(t, "10,20-30"), NativeVLAN: 10, Flood: true}},
		{legacyPortConfig{Name: "vnet2", VLAN: 4094},
			port.Config{Name: "vnet2", VLAN: 4094}},
		{legacyPortConfig{Name: "vnet3", Trunk: "1-4094"},
			port.Config{Name: "vnet3", Trunk: trunk(t, "1-4094")}},
	}
	for _, tt := range tests {
		old, err := json.Marshal(tt.old)
		if err != nil {
			t.Fatal(err)
		}
		// A record written before decodes to the same configuration ...
		var got port.Config
		if err := json.Unmarshal(old, &got); err != nil {
			t.Fatalf("decode %s: %v", old, err)
		}
		if !reflect.DeepEqual(got, tt.new) {
			t.Errorf("decode %s = %+v, want %+v", old, got, tt.new)
		}
		// ... and a Config writes exactly what was written before.
		b, err := json.Marshal(tt.new)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != string(old) {
			t.Errorf("Marshal = %s, the legacy record is %s", b, old)
		}
		// Through a pointer too.
		if b, _ := json.Marshal(&tt.new); string(b) != string(old) {
			t.Errorf("Marshal(&c) = %s", b)
		}
	}
}

// The learned-MAC limit is written only when set, and 0 ("learn nothing")
// is kept apart from unset ("the daemon's default").
func TestJSONMaxMACs(t *testing.T) {
	zero, n := 0, 50
	for _, tc := range []struct {
		max *int
		rec string
	}{
		{nil, `{"name":"vnet1","vlan":10}`},
		{&zero, `{"name":"vnet1","vlan":10,"max_macs":0}`},
		{&n, `{"name":"vnet1","vlan":10,"max_macs":50}`},
	} {
		c := port.Config{Name: "vnet1", VLAN: 10, MaxMACs: tc.max}
		b, err := json.Marshal(c)
		if err != nil || string(b) != tc.rec {
			t.Errorf("Marshal(max %v) = %s, %v; want %s", tc.max, b, err, tc.rec)
		}
		var back port.Config
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, c) {
			t.Errorf("Unmarshal(%s) = %+v, %v", b, back, err)
		}
	}
	var c port.Config
	err := json.Unmarshal([]byte(`{"name":"vnet1","vlan":10,"max_macs":-5}`), &c)
	var pe *port.Error
	if !errors.As(err, &pe) || pe.Field != port.FieldMaxMACs {
		t.Errorf("max_macs -5 decoded: %v", err)
	}
}

// Decoding normalises what older daemons may have written.
func TestJSONNormalises(t *testing.T) {
	var c port.Config
	rec := `{"name":"vnet1","trunk":"30,10,11,12","macs":["52:54:00:AB:CD:EF","52:54:00:ab:cd:ef"],"future_field":1}`
	if err := json.Unmarshal([]byte(rec), &c); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	if want := `{"name":"vnet1","trunk":"10-12,30","macs":["52:54:00:ab:cd:ef"]}`; string(b) != want {
		t.Errorf("normalised record %s, want %s", b, want)
	}
}

// Decoding validates: a record that breaks a rule is an error on the
// rule's field, and leaves the destination alone.
func TestJSONValidates(t *testing.T) {
	for rec, field := range map[string]port.Field{
		`{"name":"vnet1"}`:                                        port.FieldVLAN,
		`{"name":"vnet1","vlan":-1}`:                              port.FieldVLAN,
		`{"name":"vnet1","vlan":5000}`:                            port.FieldVLAN,
		`{"name":"vnet1","vlan":10,"trunk":"20"}`:                 port.FieldVLAN,
		`{"name":"vnet1","trunk":"10-"}`:                          port.FieldTrunk,
		`{"name":"vnet1","trunk":" "}`:                            port.FieldTrunk,
		`{"name":"vnet1","vlan":10,"native_vlan":20}`:             port.FieldNativeVLAN,
		`{"name":"vnet1","vlan":10,"svid":4095}`:                  port.FieldSVID,
		`{"name":"vnet1","vlan":10,"pcp":300}`:                    port.FieldPCP,
		`{"name":"vnet1","vlan":10,"macs":["zz"]}`:                port.FieldMAC,
		`{"name":"","vlan":10}`:                                   port.FieldName,
		`{"name":"a:b","vlan":10}`:                                port.FieldName,
		`{"name":"vnet1","vlan":10,"macs":["01:00:5e:00:00:01"]}`: port.FieldMAC,
	} {
		c := port.Config{Name: "untouched"}
		err := json.Unmarshal([]byte(rec), &c)
		var pe *port.Error
		if !errors.As(err, &pe) || pe.Field != field {
			t.Errorf("decode %s: %v, want a *port.Error on %v", rec, err, field)
		}
		if c.Name != "untouched" {
			t.Errorf("decode %s changed the destination to %+v", rec, c)
		}
	}
	var c port.Config
	if err := json.Unmarshal([]byte(`{"name":1}`), &c); err == nil || !strings.Contains(err.Error(), "decode port") {
		t.Errorf("decode of a mistyped record: %v", err)
	}
}

// FuzzJSON: whatever a record holds, a Config that decodes from it is
// valid and survives a round trip unchanged.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{"name":"vnet1","vlan":100,"pcp":3,"svid":7,"macs":["52:54:00:12:34:56"]}`,
		`{"name":"vnet0","trunk":"10,20-30","native_vlan":10,"flood_unknown":true}`,
		`{"name":"vnet1","vlan":10,"trunk":"20"}`, `{"name":"x","vlan":1e3}`, `{"macs":null,"name":"v","vlan":1}`,
		`{"name":"v","vlan":1,"max_macs":0}`, `{"name":"v","vlan":1,"max_macs":2000000}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c port.Config
		if err := json.Unmarshal(b, &c); err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("decoded %s to an invalid config: %v", b, err)
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back port.Config
		if err := json.Unmarshal(out, &back); err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip of %s via %s: %+v, %v", b, out, back, err)
		}
	})
}

// The owner (who added the port) is kept in the record under "owner" and
// left out when there is none, so records without one stay as they were
// (TestJSONIsTheLegacyRecord). Validate does not judge it.
func TestJSONOwner(t *testing.T) {
	rec := `{"name":"vnet1","vlan":10,"owner":"4dea22b3-1d52-d8f3-2516-782e98ab3fa0"}`
	var c port.Config
	if err := json.Unmarshal([]byte(rec), &c); err != nil {
		t.Fatal(err)
	}
	if c.Owner != "4dea22b3-1d52-d8f3-2516-782e98ab3fa0" {
		t.Fatalf("owner %q", c.Owner)
	}
	if b, _ := json.Marshal(c); string(b) != rec {
		t.Errorf("Marshal = %s, want %s", b, rec)
	}
	c.Owner = ""
	if b, _ := json.Marshal(c); string(b) != `{"name":"vnet1","vlan":10}` {
		t.Errorf("Marshal without owner = %s", b)
	}
}
