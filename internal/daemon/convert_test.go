package daemon

import (
	"testing"

	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/datapath"
)

func TestToDatapathValidation(t *testing.T) {
	tests := []struct {
		name string
		in   store.PortConfig
		code string // "" = valid
	}{
		{"access", store.PortConfig{Name: "vnet1", VLAN: 100, PCP: 7, MACs: []string{"52:54:00:12:34:56"}}, ""},
		{"trunk", store.PortConfig{Name: "vnet1", Trunk: "10,20-30", NativeVLAN: 10}, ""},
		{"s-channel", store.PortConfig{Name: "vnet1", VLAN: 100, SVID: 20}, ""},
		{"vlan 0 and no trunk", store.PortConfig{Name: "vnet1"}, api.CodeInvalidVLAN},
		{"vlan 4095", store.PortConfig{Name: "vnet1", VLAN: 4095}, api.CodeInvalidVLAN},
		{"vlan 5000", store.PortConfig{Name: "vnet1", VLAN: 5000}, api.CodeInvalidVLAN},
		{"negative vlan", store.PortConfig{Name: "vnet1", VLAN: -1}, api.CodeInvalidVLAN},
		{"vlan and trunk", store.PortConfig{Name: "vnet1", VLAN: 10, Trunk: "20"}, api.CodeInvalidVLAN},
		{"native on access", store.PortConfig{Name: "vnet1", VLAN: 10, NativeVLAN: 20}, api.CodeInvalidVLAN},
		{"bad trunk", store.PortConfig{Name: "vnet1", Trunk: "10-"}, api.CodeInvalidVLAN},
		{"blank trunk", store.PortConfig{Name: "vnet1", Trunk: " "}, api.CodeInvalidVLAN},
		{"bad svid", store.PortConfig{Name: "vnet1", VLAN: 10, SVID: 4095}, api.CodeInvalidVLAN},
		{"bad pcp", store.PortConfig{Name: "vnet1", VLAN: 10, PCP: 8}, api.CodeInvalidPCP},
		{"malformed mac", store.PortConfig{Name: "vnet1", VLAN: 10, MACs: []string{"zz"}}, api.CodeInvalidMAC},
		{"multicast mac", store.PortConfig{Name: "vnet1", VLAN: 10, MACs: []string{"01:00:5e:00:00:01"}}, api.CodeInvalidMAC},
		{"zero mac", store.PortConfig{Name: "vnet1", VLAN: 10, MACs: []string{"00:00:00:00:00:00"}}, api.CodeInvalidMAC},
		{"empty name", store.PortConfig{VLAN: 10}, api.CodeInvalidName},
		{"long name", store.PortConfig{Name: "0123456789abcdef", VLAN: 10}, api.CodeInvalidName},
		{"slash in name", store.PortConfig{Name: "a/b", VLAN: 10}, api.CodeInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := toDatapath(tt.in)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %s", tt.code)
			}
			if got := api.CodeOf(err); got != tt.code {
				t.Fatalf("code %s (%v), want %s", got, err, tt.code)
			}
		})
	}
}

func TestApplySpecSwitchesPortType(t *testing.T) {
	c := store.PortConfig{Name: "vnet1", VLAN: 100}
	trunk := "10,20"
	applySpec(&c, api.PortSpec{Trunk: &trunk})
	if c.VLAN != 0 || c.Trunk != "10,20" {
		t.Fatalf("access -> trunk: %+v", c)
	}
	native, vid := 10, 200
	applySpec(&c, api.PortSpec{NativeVLAN: &native})
	applySpec(&c, api.PortSpec{VLAN: &vid})
	if c.VLAN != 200 || c.Trunk != "" || c.NativeVLAN != 0 {
		t.Fatalf("trunk -> access must drop trunk and native VLAN: %+v", c)
	}
	pcp := 3
	applySpec(&c, api.PortSpec{PCP: &pcp})
	if c.PCP != 3 || c.VLAN != 200 {
		t.Fatalf("PCP change touched other fields: %+v", c)
	}
}

func TestNormaliseAndToAPI(t *testing.T) {
	c := store.PortConfig{Name: "vnet1", Trunk: "30,10,11,12", MACs: []string{"52:54:00:AB:CD:EF"}}
	d, err := toDatapath(c)
	if err != nil {
		t.Fatal(err)
	}
	n := normalise(c, d)
	if n.Trunk != "10-12,30" || n.MACs[0] != "52:54:00:ab:cd:ef" {
		t.Fatalf("normalised %+v", n)
	}
	p := toAPI(n, "absent", datapath.CounterSnapshot{})
	if len(p.Trunk) != 4 || p.Trunk[0] != 10 || p.Trunk[3] != 30 || p.State != "absent" || p.Drops == nil {
		t.Fatalf("api port %+v", p)
	}
}
