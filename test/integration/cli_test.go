package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Every vswctl error against a real daemon: exit code, one line on stderr,
// and words that say what went wrong.
func TestCLIErrors(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	_, hvs := newLab(t, datapaths(t)[0], 1)
	h := hvs[0]
	h.start()
	h.mustCtl("add-port", "vnet1", "--vlan", "100")

	dead := filepath.Join(t.TempDir(), "nobody.sock")
	cases := []struct {
		name string
		args []string // after --socket SOCK
		sock string   // "" = the running daemon
		code int
		want []string // substrings of stderr (case-insensitive)
	}{
		{"vid -1", []string{"add-port", "vnet2", "--vlan", "-1"}, "", 1, []string{"vlan"}}, // (--vlan 0 asks the bridge for the VLAN)
		{"vid 0 and a native VLAN", []string{"add-port", "vnet2", "--vlan", "0", "--native-vlan", "10"}, "", 1, []string{"native-vlan"}},
		{"vid 4095", []string{"add-port", "vnet2", "--vlan", "4095"}, "", 1, []string{"vlan", "4095"}},
		{"vid 5000", []string{"add-port", "vnet2", "--vlan", "5000"}, "", 1, []string{"vlan", "5000"}},
		{"trunk vid 4095", []string{"add-port", "vnet2", "--trunk", "10,4095"}, "", 1, []string{"4095"}},
		{"set-port missing", []string{"set-port", "vnet404", "--pcp", "3"}, "", 1, []string{"vnet404", "not found"}},
		{"del-port missing", []string{"del-port", "vnet404"}, "", 1, []string{"vnet404", "not found"}},
		{"duplicate", []string{"add-port", "vnet1", "--vlan", "200"}, "", 1, []string{"vnet1", "already exists"}},
		{"malformed mac", []string{"add-port", "vnet2", "--vlan", "100", "--mac", "52:54:00:zz:00:01"}, "", 1, []string{"mac"}},
		{"short mac", []string{"add-port", "vnet2", "--vlan", "100", "--mac", "52:54:00"}, "", 1, []string{"mac"}},
		{"pcp 8", []string{"add-port", "vnet2", "--vlan", "100", "--pcp", "8"}, "", 1, []string{"pcp"}},
		{"daemon not running", []string{"list-ports"}, dead, 1, []string{"is vswitchd running?", dead}},
		{"daemon not running status", []string{"status"}, dead, 1, []string{"is vswitchd running?", dead}},
		{"unknown flag", []string{"list-ports", "--bogus"}, "", 2, []string{"bogus"}},
		{"unknown command", []string{"frobnicate"}, "", 2, []string{"frobnicate"}},
		{"missing arg del-port", []string{"del-port"}, "", 2, []string{"del-port"}},
		{"missing arg add-port", []string{"add-port"}, "", 2, []string{"add-port"}},
		{"extra arg", []string{"status", "extra"}, "", 2, []string{"extra"}},
	}
	for _, c := range cases {
		sock := h.sock
		if c.sock != "" {
			sock = c.sock
		}
		r := runCtl(t, append([]string{"--socket", sock}, c.args...)...)
		if r.code != c.code {
			t.Errorf("%s: vswctl %s: exit %d, want %d (stderr %q)", c.name, strings.Join(c.args, " "), r.code, c.code, r.stderr)
		}
		if r.stderr == "" || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
			t.Errorf("%s: stderr is not exactly one line: %q", c.name, r.stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(w)) {
				t.Errorf("%s: stderr %q does not mention %q", c.name, strings.TrimSpace(r.stderr), w)
			}
		}
		if r.stdout != "" {
			t.Errorf("%s: error printed to stdout: %q", c.name, r.stdout)
		}
	}
	// Nothing of the failed requests stuck.
	ps := h.ports()
	if len(ps) != 1 || ps[0].Name != "vnet1" || ps[0].VLAN != 100 {
		t.Errorf("after the failed commands list-ports shows %+v, want only vnet1 on VLAN 100", ps)
	}
}

// status names the datapath and the mode; list-ports JSON has exactly the
// contract's field names.
func TestStatusAndJSONContract(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1 := h.addVM(1)
		h.start("--mode", "veb")
		h.addPort(vm1.port, "--vlan", "100", "--mac", vm1.mac.String(), "--pcp", "4")
		h.mustCtl("add-port", "vnet2", "--trunk", "10,20-22", "--native-vlan", "10")

		table := h.mustCtl("status")
		for _, w := range []string{uplinkBackend(dp), "port datapath", portBackend(dp), "veb", "uplink"} {
			if !strings.Contains(table, w) {
				t.Errorf("vswctl status does not show %q:\n%s", w, table)
			}
		}
		var st map[string]any
		if err := json.Unmarshal([]byte(h.mustCtl("-o", "json", "status")), &st); err != nil {
			t.Fatalf("status JSON: %v", err)
		}
		if st["datapath"] != uplinkBackend(dp) || st["port_datapath"] != portBackend(dp) || st["mode"] != "veb" || st["uplink"] != "uplink" {
			t.Errorf("status JSON datapath %v port_datapath %v mode %v uplink %v, want %s %s veb uplink", st["datapath"], st["port_datapath"], st["mode"], st["uplink"], uplinkBackend(dp), portBackend(dp))
		}

		out := h.mustCtl("-o", "json", "list-ports")
		var raw []map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &raw); err != nil {
			t.Fatalf("list-ports JSON is not an array of objects: %v\n%s", err, out)
		}
		if len(raw) != 2 {
			t.Fatalf("list-ports JSON has %d ports, want 2:\n%s", len(raw), out)
		}
		want := []string{"name", "vlan", "trunk", "native_vlan", "svid", "pcp", "macs", "state",
			"rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "drops", "learned_macs", "mac_moves"}
		sort.Strings(want)
		for _, p := range raw {
			var keys []string
			for k := range p {
				// Optional objects: the backend's own counters of
				// a port whose queues report any.
				if k == "backend" {
					if s := string(p[k]); !strings.HasPrefix(s, "{") {
						t.Errorf("port %s: backend is %s, want a JSON object", p["name"], s)
					}
					continue
				}
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if strings.Join(keys, ",") != strings.Join(want, ",") {
				t.Errorf("port object fields %v, want exactly %v", keys, want)
			}
			// Types: arrays are arrays (never null), drops is an object.
			for _, k := range []string{"trunk", "macs"} {
				if s := string(p[k]); !strings.HasPrefix(s, "[") {
					t.Errorf("port %s: %q is %s, want a JSON array", p["name"], k, s)
				}
			}
			if s := string(p["drops"]); !strings.HasPrefix(s, "{") {
				t.Errorf("port %s: drops is %s, want a JSON object", p["name"], s)
			}
		}
		// /metrics is served on the socket too (Prometheus text format).
		metrics := h.metrics()
		for _, w := range []string{"vswitch_port_packets_total{", `port="vnet1"`, "vswitch_uplink_packets_total{", "vswitch_port_up{"} {
			if !strings.Contains(metrics, w) {
				t.Errorf("GET /metrics on the socket lacks %q", w)
			}
		}
		for _, p := range h.ports() {
			switch p.Name {
			case vm1.port:
				if p.VLAN != 100 || p.PCP != 4 || len(p.MACs) != 1 || p.MACs[0] != vm1.mac.String() || p.State != "up" || len(p.Trunk) != 0 {
					t.Errorf("vnet1 = %+v, want vlan 100 pcp 4 macs [%s] state up no trunk", p, vm1.mac)
				}
			case "vnet2":
				if p.VLAN != 0 || p.NativeVLAN != 10 || fmt.Sprint(p.Trunk) != "[10 20 21 22]" || p.State != "absent" {
					t.Errorf("vnet2 = %+v, want trunk [10 20 21 22] (as 10,20-22) native 10 state absent", p)
				}
			}
		}
	})
}
