package port_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/pkg/port"
)

func TestParseVSIManager(t *testing.T) {
	for in, want := range map[string]string{
		"": "", " ": "", "12": "12", " 012 ": "12", "0": "0", "255": "255", "vswitchd": "vswitchd",
		"mgr-1": "mgr-1", "0123456789abcdef": "0123456789abcdef", "12a": "12a",
	} {
		got, err := port.ParseVSIManager(in)
		if err != nil || got != want {
			t.Errorf("ParseVSIManager(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"256": "one byte", "99999999999999999999999": "one byte", "a b": "printable", "caf\u00e9": "printable",
		"0123456789abcdefg": "2-16 characters", "x\x00": "printable", "a": "2-16 characters",
	} {
		_, err := port.ParseVSIManager(in)
		var pe *port.Error
		if !errors.As(err, &pe) || pe.Field != port.FieldVSIManager || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseVSIManager(%q): %v; want a VSI manager error saying %q", in, err, msg)
		}
	}
}

// A numeric manager is libvirt's managerid: lldpad reads it from the first
// byte of the 16-byte manager ID (qbg/vdp22.c, vdpnl version 1).
func TestVSIManagerID(t *testing.T) {
	if id := port.VSIManagerID("12"); id != [16]byte{12} {
		t.Errorf("12: % x", id)
	}
	if id := port.VSIManagerID("0"); id != [16]byte{} {
		t.Errorf("0: % x", id)
	}
	want := [16]byte{'v', 's', 'w', 'i', 't', 'c', 'h', 'd'}
	if id := port.VSIManagerID("vswitchd"); id != want {
		t.Errorf("vswitchd: % x", id)
	}
	if id := port.VSIManagerID("0123456789abcdef"); string(id[:]) != "0123456789abcdef" {
		t.Errorf("16 characters: %q", id)
	}
}

func TestParseInstanceID(t *testing.T) {
	got, err := port.ParseInstanceID(" 4DEA22B3-1D52-D8F3-2516-782E98AB3FA0 ")
	if err != nil || got != "4dea22b3-1d52-d8f3-2516-782e98ab3fa0" {
		t.Errorf("ParseInstanceID = %q, %v", got, err)
	}
	if got, err := port.ParseInstanceID(""); err != nil || got != "" {
		t.Errorf(`ParseInstanceID("") = %q, %v`, got, err)
	}
	for _, in := range []string{"4dea22b3", "00000000-0000-0000-0000-000000000000", "zz"} {
		_, err := port.ParseInstanceID(in)
		var pe *port.Error
		if !errors.As(err, &pe) || pe.Field != port.FieldInstanceID {
			t.Errorf("ParseInstanceID(%q): %v; want an instance ID error", in, err)
		}
	}
}

func TestParseMigration(t *testing.T) {
	for in, want := range map[string]string{"": "", "none": "", "incoming": "incoming", " outgoing": "outgoing"} {
		if got, err := port.ParseMigration(in); err != nil || got != want {
			t.Errorf("ParseMigration(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := port.ParseMigration("in"); err == nil || !strings.Contains(err.Error(), "incoming, outgoing or none") {
		t.Errorf("ParseMigration(in): %v", err)
	}
}

// The VSI fields are kept under their own keys, in canonical form, and
// left out when unset; Validate refuses values out of range or not in
// canonical form (a record written by hand).
func TestJSONVSI(t *testing.T) {
	rec := `{"name":"vnet1","vlan":10,"macs":["52:54:00:12:34:56"],"owner":"4dea22b3-1d52-d8f3-2516-782e98ab3fa0",` +
		`"vsi_type":1193047,"vsi_type_version":2,"vsi_manager":"12","instance_id":"0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d","migration":"incoming"}`
	var c port.Config
	if err := json.Unmarshal([]byte(rec), &c); err != nil {
		t.Fatal(err)
	}
	if c.VSIType != 1193047 || c.VSITypeVersion != 2 || c.VSIManager != "12" || c.InstanceID != "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d" || c.Migration != port.MigrationIncoming {
		t.Fatalf("decoded %+v", c)
	}
	if b, _ := json.Marshal(c); string(b) != rec {
		t.Errorf("Marshal = %s, want %s", b, rec)
	}
	// Decoding canonicalises what was written by hand.
	var d port.Config
	if err := json.Unmarshal([]byte(`{"name":"vnet1","vlan":10,"vsi_manager":" 007","instance_id":"0B6D9A3C5E554F4E9F112F0D5A6B7C8D"}`), &d); err != nil {
		t.Fatal(err)
	}
	if d.VSIManager != "7" || d.InstanceID != "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d" {
		t.Errorf("not canonical: %+v", d)
	}
	for rec, field := range map[string]port.Field{
		`{"name":"vnet1","vlan":10,"vsi_type":16777216}`:    port.FieldVSIType,
		`{"name":"vnet1","vlan":10,"vsi_type":-1}`:          port.FieldVSIType,
		`{"name":"vnet1","vlan":10,"vsi_type_version":256}`: port.FieldVSITypeVersion,
		`{"name":"vnet1","vlan":10,"vsi_manager":"256"}`:    port.FieldVSIManager,
		`{"name":"vnet1","vlan":10,"instance_id":"x"}`:      port.FieldInstanceID,
		`{"name":"vnet1","vlan":10,"migration":"sideways"}`: port.FieldMigration,
	} {
		var c port.Config
		err := json.Unmarshal([]byte(rec), &c)
		var pe *port.Error
		if !errors.As(err, &pe) || pe.Field != field || pe.Port != "vnet1" {
			t.Errorf("decode %s: %v, want a *port.Error on %v", rec, err, field)
		}
	}
	for _, c := range []port.Config{
		{Name: "vnet1", VLAN: 10, VSIType: port.MaxVSIType + 1},
		{Name: "vnet1", VLAN: 10, VSIManager: "012"},
		{Name: "vnet1", VLAN: 10, InstanceID: "0B6D9A3C-5E55-4F4E-9F11-2F0D5A6B7C8D"},
		{Name: "vnet1", VLAN: 10, Migration: "none"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", c)
		}
	}
	ok := port.Config{Name: "vnet1", VLAN: 10, VSIType: port.MaxVSIType, VSITypeVersion: 255, VSIManager: "vswitchd", Migration: port.MigrationOutgoing}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v): %v", ok, err)
	}
	var back port.Config
	if b, _ := json.Marshal(ok); json.Unmarshal(b, &back) != nil || !reflect.DeepEqual(back, ok) {
		t.Errorf("round trip of %+v: %+v", ok, back)
	}
}
