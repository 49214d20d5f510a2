package daemon

import (
	"context"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vswitch/vswitch/internal/version"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/datapath"
)

// scrape is GET /metrics on d's handler; it fails the test unless the
// answer is 200.
func scrape(t *testing.T, d *Daemon) string {
	t.Helper()
	rec := httptest.NewRecorder()
	d.metricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d\n%s", rec.Code, b)
	}
	return string(b)
}

func wantLines(t *testing.T, what, metrics string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(metrics, "\n"+l+"\n") {
			t.Errorf("%s: metrics lack the line %s", what, l)
		}
	}
}

// vswitch_build_info names this build as internal/version does; the Go
// runtime's and the process's series are there; every drop reason has a
// vswitch_drops_total series from the start.
func TestMetricsBuildInfoRuntimeAndDropTotals(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	m := scrape(t, d)
	v := version.Get()
	if v.Version == "" || !strings.HasPrefix(v.GoVersion, "go") {
		t.Fatalf("version.Get() = %+v", v)
	}
	wantLines(t, "fresh daemon", m,
		`vswitch_build_info{build_date="`+v.BuildDate+`",commit="`+v.Commit+`",goversion="`+v.GoVersion+`",version="`+v.Version+`"} 1`,
		`vswitch_uplink_up{uplink="up0"} 0`, // no link event yet
		`vswitch_uplink_bytes_total{direction="rx",uplink="up0"} 0`,
		`vswitch_uplink_bytes_total{direction="tx",uplink="up0"} 0`,
	)
	for _, r := range datapath.Reasons() {
		wantLines(t, "fresh daemon", m, `vswitch_drops_total{reason="`+r.String()+`"} 0`)
	}
	for _, name := range []string{"go_goroutines ", "go_gc_duration_seconds_count ", "go_memstats_heap_alloc_bytes ",
		"process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds ", "process_start_time_seconds "} {
		if !strings.Contains(m, "\n"+name) {
			t.Errorf("metrics lack %s", name)
		}
	}
	ev, _ := r.links.Link("up0")
	d.linkChanged(ev)
	wantLines(t, "uplink up", scrape(t, d), `vswitch_uplink_up{uplink="up0"} 1`)

	// A stamped build (make build): each field in its label.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{d: d, build: version.Info{Version: "v0.3.0-12-gabc1234", Commit: "abc1234def", BuildDate: "2026-11-27T09:00:00Z", GoVersion: "go1.26.0"}})
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	wantLines(t, "stamped build", rec.Body.String(),
		`vswitch_build_info{build_date="2026-11-27T09:00:00Z",commit="abc1234def",goversion="go1.26.0",version="v0.3.0-12-gabc1234"} 1`)
}

// A port's state is exported without a changing label: vswitch_port_oper_up
// flips between 1 and 0 and vswitch_port_state keeps a series per state;
// vswitch_port_up{state} is as it always was.
func TestMetricsPortStateSeries(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	if _, err := d.AddPort(context.Background(), api.PortSpec{Name: "vnet1", VLAN: intp(100)}); err != nil {
		t.Fatal(err)
	}
	r.linksUp("up0", "vnet1")
	wantLines(t, "vnet1 up", scrape(t, d),
		`vswitch_port_oper_up{port="vnet1"} 1`,
		`vswitch_port_state{port="vnet1",state="up"} 1`,
		`vswitch_port_state{port="vnet1",state="down"} 0`,
		`vswitch_port_state{port="vnet1",state="absent"} 0`,
		`vswitch_port_up{port="vnet1",state="up"} 1`,
	)
	d.linkChanged(r.links.set("vnet1", 11, false))
	m := scrape(t, d)
	wantLines(t, "vnet1 gone", m,
		`vswitch_port_oper_up{port="vnet1"} 0`,
		`vswitch_port_state{port="vnet1",state="up"} 0`,
		`vswitch_port_state{port="vnet1",state="down"} 0`,
		`vswitch_port_state{port="vnet1",state="absent"} 1`,
		`vswitch_port_up{port="vnet1",state="absent"} 0`,
	)
	if strings.Contains(m, `vswitch_port_up{port="vnet1",state="up"}`) {
		t.Errorf("vswitch_port_up kept its up series after the tap went")
	}
}

// A port name that is not UTF-8 (a damaged state file) cannot fail the
// scrape: the port is exported as down under its Go-quoted name, and
// everything else is there.
func TestMetricsNonUTF8PortName(t *testing.T) {
	r := newRig(t)
	r.start(t).Close()
	putRecord(t, r.opts.StatePath, "vnet\xff", `{"vlan":5}`)
	d := r.start(t)
	m := scrape(t, d)
	wantLines(t, "damaged record", m,
		`vswitch_port_oper_up{port="\"vnet\\xff\""} 0`,
		`vswitch_port_state{port="\"vnet\\xff\"",state="down"} 1`,
		`vswitch_fdb_entries 0`,
		`vswitch_forwarding_mode{configured="vepa",mode="vepa"} 1`,
	)
}

// vswitch_vsis counts the VSIs per VDP state, every state present, once
// the VDP station runs; without it there is no such series.
func TestMetricsVSIsPerState(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	r.linksUp("up0", "vnet1")
	if m := scrape(t, d); strings.Contains(m, "vswitch_vsis{") {
		t.Errorf("vswitch_vsis without a VDP station")
	}
	withVDP(t, d, &bridgeLog{})
	macs := []string{"52:54:00:00:00:01", "52:54:00:00:00:02"}
	if _, err := d.AddPort(context.Background(), api.PortSpec{Name: "vnet1", VLAN: intp(100), MACs: &macs}); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, d)
	total := 0.0
	for _, s := range vsiStates {
		v, ok := sample(m, `vswitch_vsis{state="`+s+`"}`)
		if !ok {
			t.Errorf("no vswitch_vsis series for state %s", s)
		}
		total += v
	}
	if total != 2 || len(d.vsis()) != 2 {
		t.Errorf("vswitch_vsis sum to %v over the states, want the port's 2 VSIs:\n%s", total, m)
	}
}

// sample returns the value of the series written exactly as key
// (name{labels}) in a text exposition.
func sample(metrics, key string) (float64, bool) {
	for _, l := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(l, key+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
