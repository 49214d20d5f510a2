package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/datapath"
	"github.com/vswitch/vswitch/pkg/port"
)

func macText(i int) string {
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)
}

func macTexts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = macText(i)
	}
	return out
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// Issue 9: POST of a trunk 1-4094 with 20,000 registered MACs took the
// daemon to 24 GB, was stored first and killed every restart. The daemon
// refuses it with a 4xx naming the limit, stores nothing and does not
// grow; the most MACs a port may register on the same trunk cost little,
// and a later unrelated change stays quick.
func TestTrunkTimesMACsRefusedByTheDaemon(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	h := api.NewServer(d, nil).Handler()
	post := func(spec api.PortSpec) (int, string) {
		body, err := jsonBody(spec)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("POST", "/v1/ports", body)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	all := "1-4094"
	before := heapInUse()
	code, body := post(api.PortSpec{Name: "vnet1", Trunk: &all, MACs: ptrTo(macTexts(20000))})
	if code != 400 || !strings.Contains(body, `"code":"invalid_mac"`) || !strings.Contains(body, "at most 256") {
		t.Fatalf("20,000 MACs on a full trunk: %d %s", code, body)
	}
	if _, err := d.st.Port("vnet1"); err == nil {
		t.Fatal("the refused port was stored")
	}
	grew := int64(heapInUse()) - int64(before)
	t.Logf("heap after the refused request: %+d KiB", grew>>10)
	if grew > 4<<20 {
		t.Errorf("the refused request left the heap %d KiB larger", grew>>10)
	}
	start := time.Now()
	if code, body := post(api.PortSpec{Name: "vnet1", Trunk: &all, MACs: ptrTo(macTexts(port.MaxRegisteredMACs))}); code != 201 {
		t.Fatalf("trunk 1-4094 with %d MACs: %d %s", port.MaxRegisteredMACs, code, body)
	}
	took := time.Since(start)
	grew = int64(heapInUse()) - int64(before)
	t.Logf("trunk 1-4094 with %d MACs: %v, heap %+d KiB", port.MaxRegisteredMACs, took, grew>>10)
	if grew > 8<<20 {
		t.Errorf("the trunk with %d MACs costs %d KiB of heap, want < 8 MiB", port.MaxRegisteredMACs, grew>>10)
	}
	start = time.Now()
	if code, body := post(api.PortSpec{Name: "vnet2", VLAN: intp(100)}); code != 201 {
		t.Fatalf("add vnet2: %d %s", code, body)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("an unrelated change beside the trunk took %v", took)
	}
	// Its registered MACs on every VLAN are a million FDB rows: the full
	// listing is refused with the way to list one VLAN, which works.
	if _, err := d.FDB(context.Background(), 0); api.CodeOf(err) != api.CodeTooManyEntries || !strings.Contains(err.Error(), "vswctl fdb --vlan VID") {
		t.Errorf("listing 4094 x 256 entries: %v", err)
	}
	if es, err := d.FDB(context.Background(), 4000); err != nil || len(es) != port.MaxRegisteredMACs {
		t.Errorf("listing VLAN 4000: %d entries, %v", len(es), err)
	}
	start = time.Now()
	d.saveFDB() // every 5 s: lists the learned entries only
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("saving the learned MACs beside the trunk took %v", took)
	}
	d.Close()
	d = r.start(t) // restarts with the trunk
	if p, err := d.GetPort(context.Background(), "vnet1"); err != nil || len(p.MACs) != port.MaxRegisteredMACs || len(p.Trunk) != 4094 {
		t.Fatalf("after restart: %d MACs, %d VIDs, %v", len(p.MACs), len(p.Trunk), err)
	}
}

func ptrTo[T any](v T) *T { return &v }

func jsonBody(v any) (io.Reader, error) {
	b, err := json.Marshal(v)
	return bytes.NewReader(b), err
}

// The limits reach the datapath from Options, and what they do shows in
// the port objects, the status and the metrics.
func TestFDBLimitsInStatsAndMetrics(t *testing.T) {
	r := newRig(t)
	r.opts.FDB = datapath.FDBLimits{PerPort: 2, PerVLAN: 50, Total: 100}
	d := r.start(t)
	ctx := context.Background()
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100)}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet2", VLAN: intp(100), MaxMACs: intp(0)}); err != nil {
		t.Fatal(err)
	}
	r.linksUp("up0", "vnet1", "vnet2")
	for src := byte(1); src <= 5; src++ {
		if !r.mem.Iface("vnet1").Inject(frame(src, 0x99)) {
			t.Fatal("vnet1 not attached")
		}
	}
	if got := r.mem.Iface("up0").Wait(2, 2*time.Second); len(got) != 2 {
		t.Fatalf("uplink got %d frames of vnet1, want the 2 within its limit", len(got))
	}
	var p api.Port
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if p, _ = d.GetPort(ctx, "vnet1"); p.Drops["mac_limit"] == 3 {
			break
		}
	}
	if p.LearnedMACs != 2 || p.Drops["mac_limit"] != 3 || p.MaxMACs != nil {
		t.Fatalf("vnet1: learned %d, drops %v, max_macs %v", p.LearnedMACs, p.Drops, p.MaxMACs)
	}
	if p, _ := d.GetPort(ctx, "vnet2"); p.MaxMACs == nil || *p.MaxMACs != 0 {
		t.Fatalf("vnet2 max_macs %v, want 0", p.MaxMACs)
	}
	st, err := d.Status(ctx)
	if err != nil || st.FDB == nil || *st.FDB != (api.FDBStatus{Learned: 2, MaxMACsPerPort: 2, MaxMACsPerVLAN: 50, Max: 100}) {
		t.Fatalf("status fdb %+v, %v", st.FDB, err)
	}
	stats, err := d.Stats(ctx)
	if err != nil || stats.Drops["mac_limit"] != 3 {
		t.Fatalf("stats drops %v, %v", stats.Drops, err)
	}
	rec := httptest.NewRecorder()
	d.metricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"vswitch_fdb_entries 2\n", "vswitch_fdb_max_entries 100\n",
		`vswitch_port_learned_macs{port="vnet1"} 2` + "\n", `vswitch_port_mac_moves_total{port="vnet1"} 0` + "\n",
		`vswitch_port_drops_total{port="vnet1",reason="mac_limit"} 3` + "\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// The FDB a previous daemon saved is restored within the limits, and the
// state file then holds only what was restored (issue 9: 60,794 junk
// entries came back after a restart).
func TestSavedFDBRestoredWithinLimits(t *testing.T) {
	r := newRig(t)
	st, err := store.Open(r.opts.StatePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutPort(port.Config{Name: "vnet1", VLAN: 100}); err != nil {
		t.Fatal(err)
	}
	var junk []store.FDBRecord
	for i := range 5000 {
		junk = append(junk, store.FDBRecord{VLAN: 100, MAC: macText(i + 1), Port: "vnet1"})
	}
	junk = append(junk, store.FDBRecord{VLAN: 100, MAC: "not a mac", Port: "vnet1"}, store.FDBRecord{VLAN: 100, MAC: macText(9), Port: "gone"})
	if err := st.SaveFDB(junk); err != nil {
		t.Fatal(err)
	}
	st.Close()

	r.opts.FDB = datapath.FDBLimits{PerPort: 10}
	d := r.start(t)
	if n := len(d.sw.LearnedFDB()); n != 10 {
		t.Errorf("restored %d learned MACs, want vnet1's limit of 10", n)
	}
	if recs, err := d.st.FDB(); err != nil || len(recs) != 10 {
		t.Errorf("the state file holds %d saved MACs after the restore (%v), want 10", len(recs), err)
	}
	d.saveFDB()
	if recs, _ := d.st.FDB(); len(recs) != 10 {
		t.Errorf("a save wrote %d MACs, want 10", len(recs))
	}
}

// The learned MACs are saved every 5 s, but only when the FDB changed:
// with nothing learned, moved or removed a save lists nothing and
// allocates nothing (a full FDB's list is megabytes of garbage), and the
// next change is saved.
func TestFDBSavedOnlyWhenChanged(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	if _, err := d.AddPort(context.Background(), api.PortSpec{Name: "vnet1", VLAN: intp(100)}); err != nil {
		t.Fatal(err)
	}
	learn := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			mac, _ := net.ParseMAC(macText(i + 1))
			if !d.sw.RestoreFDB(100, mac, "vnet1") {
				t.Fatalf("learning %s", mac)
			}
		}
	}
	learn(0, 1000)
	d.saveFDB()
	if recs, err := d.st.FDB(); err != nil || len(recs) != 1000 {
		t.Fatalf("saved %d MACs (%v), want 1000", len(recs), err)
	}
	if allocs := testing.AllocsPerRun(10, d.saveFDB); allocs != 0 {
		t.Errorf("a save with nothing changed made %.0f allocations", allocs)
	}
	learn(1000, 1001)
	d.saveFDB()
	if recs, err := d.st.FDB(); err != nil || len(recs) != 1001 {
		t.Fatalf("saved %d MACs after one more was learned (%v), want 1001", len(recs), err)
	}
}
