package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestBuildFrame checks sizes, tags and both checksums against gopacket's
// independent decoder and checksum code.
func TestBuildFrame(t *testing.T) {
	for _, tc := range []struct {
		size, vid, wantLen int
	}{
		{60, 0, 60},
		{60, 100, 64},
		{1514, 0, 1514},
		{1514, 4094, 1518},
	} {
		f, err := buildFrame(frameSpec{Dst: vm2MAC, Src: vm1MAC, SrcIP: vm1IP, DstIP: vm2IP, VID: tc.vid, Size: tc.size})
		if err != nil {
			t.Fatalf("size %d vid %d: %v", tc.size, tc.vid, err)
		}
		if len(f) != tc.wantLen {
			t.Fatalf("size %d vid %d: len %d, want %d", tc.size, tc.vid, len(f), tc.wantLen)
		}
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("decode: %v", el.Error())
		}
		if tc.vid != 0 {
			d, ok := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
			if !ok || int(d.VLANIdentifier) != tc.vid {
				t.Fatalf("want 802.1Q tag %d, got %v", tc.vid, p.Layer(layers.LayerTypeDot1Q))
			}
		}
		ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok {
			t.Fatal("no IPv4 layer")
		}
		udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok {
			t.Fatal("no UDP layer")
		}
		if int(ip.Length) != tc.size-ethHdrLen || !ip.DstIP.Equal(vm2IP) {
			t.Fatalf("ip length %d dst %v", ip.Length, ip.DstIP)
		}
		// Recompute both checksums with gopacket and compare.
		gotIP, gotUDP := ip.Checksum, udp.Checksum
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
			ip, udp, gopacket.Payload(udp.Payload)); err != nil {
			t.Fatal(err)
		}
		re := buf.Bytes()
		if want := binary.BigEndian.Uint16(re[10:]); gotIP != want {
			t.Errorf("ip checksum %#x, want %#x", gotIP, want)
		}
		if want := binary.BigEndian.Uint16(re[ipHdrLen+6:]); gotUDP != want {
			t.Errorf("udp checksum %#x, want %#x", gotUDP, want)
		}
		if tc.vid == 0 && !isOurFrame(f, vm2MAC) {
			t.Error("isOurFrame false for our own frame")
		}
		if isOurFrame(f, vm1MAC) {
			t.Error("isOurFrame true for the wrong destination")
		}
	}
	if _, err := buildFrame(frameSpec{Dst: vm2MAC, Src: vm1MAC, SrcIP: vm1IP, DstIP: vm2IP, Size: 59}); err == nil {
		t.Error("accepted a 59-byte frame")
	}
}

func TestMedianAndRatios(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	res := &Results{Contenders: []ContenderResult{
		{Name: MacvlanVEPA, Status: StatusOK, Tests: map[string]*TestResult{TestVM2VM64: {PPS: 1e6}}},
		{Name: OVSAFPacket, Status: StatusOK, Tests: map[string]*TestResult{TestVM2VM64: {PPS: 2e5}}},
		{Name: OVSAFXDP, Status: StatusOK, Tests: map[string]*TestResult{TestVM2VM64: {PPS: 5e5}}},
		{Name: VswitchdAFXDP, Status: StatusOK, Tests: map[string]*TestResult{TestVM2VM64: {PPS: 1.5e6}}},
		{Name: VswitchdAFPacket, Status: StatusCannotRun, Reason: "no binary"},
	}}
	res.computeRatios()
	v := res.Contender(VswitchdAFXDP)
	if v.RatioMacvlanVEPA == nil || *v.RatioMacvlanVEPA != 1.5 || v.RatioBestOVS == nil || *v.RatioBestOVS != 3 {
		t.Errorf("ratios %v %v", v.RatioMacvlanVEPA, v.RatioBestOVS)
	}
	if res.Contender(VswitchdAFPacket).RatioMacvlanVEPA != nil {
		t.Error("ratio for a row that did not run")
	}
	var out bytes.Buffer
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "cannot run: no binary") || !strings.Contains(out.String(), "1.50x") {
		t.Errorf("table:\n%s", out.String())
	}
}

// TestBenchSmoke runs the harness in its short form (1 rep of 1 s, 100
// latency probes per phase; the Linux bridge and macvlan-vepa references
// and vswitchd with AF_PACKET) so the harness keeps working. vswitchd may
// not build or run yet; its row must then say why.
func TestBenchSmoke(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and packet sockets")
	}
	cfg := ShortConfig()
	cfg.Timeout = 55 * time.Second
	_, table, back := runShort(t, cfg)
	if len(back.Contenders) != 3 {
		t.Fatalf("JSON has %d rows, want 3", len(back.Contenders))
	}
	for _, name := range []string{LinuxBridge, VswitchdAFPacket, MacvlanVEPA} {
		if !strings.Contains(table, name) {
			t.Errorf("table lacks a %s row", name)
		}
	}
	if !strings.Contains(table, "RTT light us") || back.LatencyProbes != cfg.Probes || back.Prober == "" {
		t.Errorf("no latency columns or settings: probes %d prober %q", back.LatencyProbes, back.Prober)
	}
	lb := back.Contender(LinuxBridge)
	if lb == nil || lb.Status != StatusOK {
		t.Fatalf("linux-bridge row: %+v", lb)
	}
	for _, n := range []string{TestVM2VM64, TestUp2VM64, TestVM2VM1500} {
		tr := lb.Tests[n]
		if tr == nil || tr.PPS <= 0 {
			t.Errorf("linux-bridge %s: no frames received: %+v", n, tr)
		}
	}
	v := back.Contender(VswitchdAFPacket)
	switch {
	case v == nil:
		t.Fatal("no vswitchd-afpacket row")
	case v.Status == StatusCannotRun:
		if v.Reason == "" {
			t.Error("vswitchd-afpacket cannot run but gives no reason")
		}
		t.Logf("vswitchd-afpacket cannot run (yet): %s", v.Reason)
	default:
		if tr := v.Tests[TestVM2VM64]; tr == nil || tr.PPS <= 0 {
			t.Errorf("vswitchd-afpacket vm2vm_64: %+v", tr)
		}
		checkLatency(t, v)
	}
	mv := back.Contender(MacvlanVEPA)
	if mv == nil || mv.Status != StatusOK {
		t.Fatalf("macvlan-vepa row: %+v", mv)
	}
	checkLatency(t, mv)
	checkLatency(t, lb)
	checkNoNamespacesLeft(t)
}

// checkLatency asserts that a row's latency fields hold sane values: both
// phases measured, 0 < min <= p50 <= p99 <= max, under half the probes
// lost, the load phase with its background stream. It says nothing about
// how fast any switch should be.
func checkLatency(t *testing.T, r *ContenderResult) {
	t.Helper()
	l := r.Latency
	if l == nil || l.Error != "" {
		t.Errorf("%s: latency not measured: %+v", r.Name, l)
		return
	}
	if l.IntervalMs <= 0 || l.FrameSize != 60 {
		t.Errorf("%s: latency interval %v ms, frame %d bytes", r.Name, l.IntervalMs, l.FrameSize)
	}
	for _, ph := range []struct {
		name string
		p    *LatencyPhase
	}{{"light", l.Light}, {"load", l.Load}} {
		p := ph.p
		switch {
		case p == nil:
			t.Errorf("%s: no %s phase", r.Name, ph.name)
			continue
		case p.Error != "":
			t.Errorf("%s %s: %s", r.Name, ph.name, p.Error)
		}
		if !(p.MinUs > 0 && p.MinUs <= p.P50Us && p.P50Us <= p.P99Us && p.P99Us <= p.MaxUs && p.MeanUs > 0) {
			t.Errorf("%s %s: rtt min %v p50 %v p99 %v max %v mean %v us", r.Name, ph.name, p.MinUs, p.P50Us, p.P99Us, p.MaxUs, p.MeanUs)
		}
		if p.Probes <= 0 || p.Received <= 0 || p.Lost != p.Probes-p.Received || p.LossPct < 0 || p.LossPct >= 50 {
			t.Errorf("%s %s: %d probes, %d answered, %d lost (%.1f%%)", r.Name, ph.name, p.Probes, p.Received, p.Lost, p.LossPct)
		}
		if p.Seconds <= 0 || p.CPUPct < 0 || p.SysBusyPct < 0 {
			t.Errorf("%s %s: %v s, cpu %v%%, busy %v%%", r.Name, ph.name, p.Seconds, p.CPUPct, p.SysBusyPct)
		}
		if ph.name == "load" && (p.LoadTargetPPS <= 0 || p.LoadSentPPS <= 0 || p.LoadRxPPS <= 0) {
			t.Errorf("%s load: background target %v sent %v received %v pps", r.Name, p.LoadTargetPPS, p.LoadSentPPS, p.LoadRxPPS)
		}
		if ph.name == "light" && p.LoadTargetPPS != 0 {
			t.Errorf("%s light: background stream of %v pps", r.Name, p.LoadTargetPPS)
		}
	}
}

// TestTapContenders runs the rows whose VMs sit on taps, short: vswitchd
// with tun taps (IFF_VNET_HDR) as ports and kernel macvtap in mode vepa.
// Frames written to one tap's descriptor must come out of the other's
// untagged and intact, probes must come back, and nothing may be left.
func TestTapContenders(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and taps")
	}
	cfg := ShortConfig()
	cfg.Contenders = []string{VswitchdAFPacketTap, MacvtapVEPA}
	cfg.Timeout = 45 * time.Second
	res, _, _ := runShort(t, cfg)
	for _, n := range cfg.Contenders {
		r := res.Contender(n)
		if r == nil || r.Status != StatusOK {
			t.Errorf("%s row: %+v", n, r)
			continue
		}
		if want := map[string]string{VswitchdAFPacketTap: topoTap, MacvtapVEPA: topoMacvtap}[n]; r.Topology != want {
			t.Errorf("%s: topology %q, want %q", n, r.Topology, want)
		}
		if len(r.Tests) != 1 || r.Tests[TestVM2VM64] == nil || r.Tests[TestVM2VM64].PPS <= 0 {
			t.Errorf("%s: want only vm2vm_64 with frames received: %+v", n, r.Tests)
		} else {
			// Verification stops looking once 16 of its 64 frames arrived.
			var ok, tagged int
			v := r.Tests[TestVM2VM64].Verified
			if _, err := fmt.Sscanf(v, "%d ok, %d tagged", &ok, &tagged); err != nil || ok < 16 || tagged != 0 {
				t.Errorf("%s: verify %q", n, v)
			}
		}
		if r.RatioMacvtapVEPA == nil || r.RatioMacvlanVEPA != nil {
			t.Errorf("%s: ratio to macvtap %v, to macvlan %v", n, r.RatioMacvtapVEPA, r.RatioMacvlanVEPA)
		}
		checkLatency(t, r)
	}
	checkNoNamespacesLeft(t)
}

// checkNoNamespacesLeft: nothing of this process may be left behind.
func checkNoNamespacesLeft(t *testing.T) {
	t.Helper()
	ents, _ := os.ReadDir("/run/netns")
	prefix := newID()
	prefix = prefix[:strings.IndexByte(prefix, 'x')+1]
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
}

// TestEBPFVEPAContender runs the in-kernel ceiling row for one short
// repetition: its frames must pass the harness's verification (they reach
// VM2 untagged and intact) in all three tests, which only works if the tc
// programs tag, hairpin through the switch, untag and look up VM2's MAC.
func TestEBPFVEPAContender(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and eBPF")
	}
	cfg := ShortConfig()
	cfg.Contenders = []string{EBPFVEPA}
	cfg.Timeout = 40 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Contender(EBPFVEPA)
	if r == nil || r.Status != StatusOK {
		t.Fatalf("ebpf-vepa row: %+v", r)
	}
	if r.CPUKind != "softirq" {
		t.Errorf("cpu kind %q, want softirq (no switching process)", r.CPUKind)
	}
	for _, n := range []string{TestVM2VM64, TestUp2VM64, TestVM2VM1500} {
		if tr := r.Tests[n]; tr == nil || tr.PPS <= 0 {
			t.Errorf("ebpf-vepa %s: no frames received: %+v", n, tr)
		}
	}
}

// runShort runs the harness with cfg (30 s to build vswitchd, cfg.Timeout
// to run, a few seconds' grace), logs its table and returns the results,
// the table and the results as read back from their JSON file.
func runShort(t *testing.T, cfg Config) (res *Results, table string, back Results) {
	t.Helper()
	cfg.BuildTimeout = 30 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout+5*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var tb bytes.Buffer
	if err := res.WriteTable(&tb); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", tb.String())
	path := filepath.Join(t.TempDir(), "bench-results.json")
	if err := res.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("JSON does not decode: %v", err)
	}
	return res, tb.String(), back
}
