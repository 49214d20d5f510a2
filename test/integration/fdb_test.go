package integration

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
)

// rssKiB is a process's resident set size.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// Issue 9: 300,000 random source MACs from one VM filled the one global
// forwarding table; a victim on another VLAN then learned nothing, and the
// junk went into the state file and came back at every restart. Now the
// flooder learns its share (--max-macs-per-port) and the rest is dropped
// as mac_limit, while a victim on the same VLAN and a VM on another VLAN
// keep pinging throughout, and the FDB, the daemon's RSS and the state
// file stay within their bounds.
func TestMACFloodIsBounded(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		macFlood(t, dp, []string{"--vlan", "100"}, nil)
	})
}

// TestTrunkVIDFloodIsBounded is the flood from a trunk of every VLAN: a
// VM sends from 100,000 source MACs spread over all 4094 VIDs (a new
// learning domain for each), and the port's limit still holds over all of
// them together.
func TestTrunkVIDFloodIsBounded(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		macFlood(t, dp, []string{"--trunk", "1-4094"}, func(i int) uint16 { return uint16(1 + i%4094) })
	})
}

// macFlood floods 100,000 source MACs from a port added with flooderArgs,
// each frame tagged with vid(i) when vid is not nil, and checks the bounds
// while VMs on the flooder's VLAN 100 and on VLAN 200 ping throughout.
func macFlood(t *testing.T, dp string, flooderArgs []string, vid func(i int) uint16) {
	_, hvs := newLab(t, dp, 1)
	h := hvs[0]
	flooder, victim, peer := h.addVM(1), h.addVM(2), h.addVM(3)
	other, otherPeer := h.addVM(4), h.addVM(5)
	h.start("--max-macs-per-port", "1024")
	h.addPort(flooder.port, flooderArgs...)
	h.addPort(victim.port, "--vlan", "100")
	h.addPort(peer.port, "--vlan", "100", "--mac", peer.mac.String())
	h.addPort(other.port, "--vlan", "200")
	h.addPort(otherPeer.port, "--vlan", "200")
	for _, v := range []*vm{flooder, victim, peer, other, otherPeer} {
		h.waitState(v.port, "up", 5*time.Second)
	}
	victim.mustPing(peer)
	other.mustPing(otherPeer)
	rssBefore := rssKiB(t, h.d.pid())

	// The victims ping throughout the flood.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var pingErrs []string
	for _, pair := range [][2]*vm{{victim, peer}, {other, otherPeer}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := pair[0].ping(pair[1].ip, 3*time.Second); err != nil {
					mu.Lock()
					pingErrs = append(pingErrs, fmt.Sprintf("%s -> %s: %v", pair[0].ip, pair[1].ip, err))
					mu.Unlock()
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	c, err := flooder.ns.PacketConn("eth0")
	if err != nil {
		t.Fatal(err)
	}
	const flood = 100_000
	nobody := topo.MustMAC("52:54:00:ee:ee:ee")
	frame := topo.BuildUDPv4(nobody, flooder.mac, net.ParseIP(flooder.ip), net.ParseIP("10.0.0.99"), 4000, 4000, []byte("flood"))
	start := time.Now()
	tagged := topo.PushTag(frame, topo.TPID8021Q, 0)
	for i := range flood {
		src := frame[6:12]
		src[0], src[1] = 0x02, 0x00 // unicast, locally administered
		binary.BigEndian.PutUint32(src[2:], uint32(i+1))
		f := frame
		if vid != nil {
			copy(tagged[6:12], src)
			binary.BigEndian.PutUint16(tagged[14:], vid(i))
			f = tagged
		}
		if err := c.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d frames from %d source MACs sent in %v", flood, flood, time.Since(start))
	time.Sleep(time.Second) // the victims keep pinging after it too
	close(stop)
	wg.Wait()
	if len(pingErrs) > 0 {
		t.Errorf("pings failed during the flood: %v", pingErrs)
	}
	victim.mustPing(peer)
	other.mustPing(otherPeer)

	var fl api.Port
	for _, p := range h.stats().Ports {
		if p.Name == flooder.port {
			fl = p
		}
	}
	t.Logf("flooder: learned %d, drops %v", fl.LearnedMACs, fl.Drops)
	if fl.LearnedMACs != 1024 {
		t.Errorf("the flooder learned %d MACs, want its limit 1024", fl.LearnedMACs)
	}
	if got := fl.Drops["mac_limit"] + fl.Drops["rx_overrun"] + uint64(fl.LearnedMACs); got < flood {
		t.Errorf("mac_limit %d + rx_overrun %d + learned %d = %d, want at least the %d frames", fl.Drops["mac_limit"], fl.Drops["rx_overrun"], fl.LearnedMACs, got, flood)
	}
	if fl.Drops["mac_limit"] == 0 {
		t.Error("no mac_limit drops")
	}
	var st api.Status
	if err := json.Unmarshal([]byte(h.mustCtl("-o", "json", "status")), &st); err != nil || st.FDB == nil {
		t.Fatalf("status: %v", err)
	}
	if st.FDB.Learned > 1024+8 {
		t.Errorf("the FDB holds %d learned MACs, want the flooder's 1024 and the victims' few", st.FDB.Learned)
	}
	rssAfter := rssKiB(t, h.d.pid())
	t.Logf("RSS %d KiB before the flood, %d KiB after", rssBefore, rssAfter)
	if rssAfter-rssBefore > 32<<10 {
		t.Errorf("the flood grew the daemon by %d KiB", rssAfter-rssBefore)
	}
	time.Sleep(6 * time.Second) // the learned MACs are saved every 5 s
	fi, err := os.Stat(h.state)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("state file %d KiB", fi.Size()>>10)
	if fi.Size() > 1<<20 {
		t.Errorf("state file of %d KiB after the flood (issue 9: 8 MB)", fi.Size()>>10)
	}
}
