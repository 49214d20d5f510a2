package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
)

// The monitoring files in contrib/ (README, "Metrics"): the Grafana
// dashboard and the Prometheus alerts may only use series a real vswitchd
// exports, and promtool must accept them.
var (
	dashboardFile  = filepath.Join("..", "..", "contrib", "grafana", "vswitch.json")
	alertsFile     = filepath.Join("..", "..", "contrib", "prometheus", "alerts.yml")
	alertTestsFile = filepath.Join("..", "..", "contrib", "prometheus", "alerts_test.yml")
)

// metricName finds the metric names in PromQL (or any text): vswitchd's
// own, the Go runtime's and the process's.
var metricName = regexp.MustCompile(`\b(?:vswitch|go|process)_[a-zA-Z0-9_]*[a-zA-Z0-9]`)

// dashboard is what the tests read of contrib/grafana/vswitch.json.
type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *dsRef          `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
	Panels []panel `json:"panels"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int     `json:"id"`
	Type       string  `json:"type"`
	Title      string  `json:"title"`
	Datasource *dsRef  `json:"datasource"`
	Panels     []panel `json:"panels"` // a collapsed row's
	Targets    []struct {
		Expr       string `json:"expr"`
		RefID      string `json:"refId"`
		Datasource *dsRef `json:"datasource"`
	} `json:"targets"`
}

// readDashboard parses the dashboard and checks its shape: a datasource
// variable, vswitchd and port variables from label_values, and every
// panel (rows aside) with the datasource and at least one query.
func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q uid %q: both must be set", d.Title, d.UID)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}" || !strings.HasPrefix(v.Definition, "label_values(")) {
			t.Errorf("variable %s: datasource %+v, definition %q; want ${datasource} and label_values(...)", v.Name, v.Datasource, v.Definition)
		}
	}
	for name, typ := range map[string]string{"datasource": "datasource", "instance": "query", "port": "query"} {
		if vars[name] != typ {
			t.Errorf("dashboard variable %s is %q, want a %s variable", name, vars[name], typ)
		}
	}
	ids := map[int]string{}
	n := 0
	for _, p := range allPanels(d.Panels) {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		n++
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" || q.RefID == "" || q.Datasource == nil || q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: query %+v: want an expression, a refId and the ${datasource} variable", p.Title, q)
			}
		}
	}
	if n < 10 {
		t.Errorf("dashboard has %d panels", n)
	}
	return d
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// exprs returns the dashboard's PromQL: the panels' queries, the
// annotations' and the variables' (label_values(SELECTOR, label) as
// SELECTOR), with Grafana's variables replaced so that PromQL parses.
func (d dashboard) exprs() []string {
	var out []string
	for _, p := range allPanels(d.Panels) {
		for _, q := range p.Targets {
			out = append(out, q.Expr)
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out = append(out, a.Expr)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		if m := labelValues.FindStringSubmatch(v.Definition); m != nil {
			out = append(out, m[1])
		}
	}
	r := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$instance", ".*", "$port", ".*")
	for i := range out {
		out[i] = r.Replace(out[i])
	}
	return out
}

// namesIn returns the metric names used in texts, sorted, each once.
func namesIn(texts ...string) []string {
	var out []string
	for _, s := range texts {
		out = append(out, metricName.FindAllString(s, -1)...)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// sampleNames returns the names of the samples in a text exposition
// (histograms' and summaries' _bucket, _sum and _count included, as they
// are written).
func sampleNames(exposition string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(exposition, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.IndexAny(l, "{ "); i > 0 {
			out[l[:i]] = true
		}
	}
	return out
}

// scrapeTCP is GET /metrics on vswitchd's --metrics address in ns.
func scrapeTCP(t *testing.T, ns *topo.NS, addr string) string {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() (err error) {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics on --metrics %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics on --metrics %s: status %d, err %v", addr, resp.StatusCode, err)
	}
	return string(b)
}

// A real vswitchd with two ports, a ping between their VMs, drops on a
// port and on the uplink, the EVB station and --libvirt (to a libvirtd
// that is not there): every metric the dashboard and the alerts use is in
// its scrape on --metrics; vswitch_build_info names the build `vswctl
// status` reports; the state-free port series follow a tap that goes and
// comes back while vswitch_port_up{state} stays as it was.
func TestMonitoringFilesMatchLiveScrape(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	d := readDashboard(t)
	alerts, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	used := namesIn(append(d.exprs(), string(alerts))...)
	if len(used) < 20 {
		t.Fatalf("only %d metric names found in the dashboard and the alerts: %v", len(used), used)
	}

	l, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	vm1, vm2 := h.addVM(1), h.addVM(2)
	const addr = "127.0.0.1:9477"
	h.start("--metrics", addr, "--libvirt", filepath.Join(h.dir, "no-libvirtd.sock"))
	h.addPort(vm1.port, "--vlan", "100")
	h.addPort(vm2.port, "--vlan", "100")
	vm1.mustPing(vm2)
	// A tagged frame from a VM on an access port (tagged_on_access), and
	// an untagged one from the bridge (unknown_vlan on the uplink).
	sendRaw(t, vm1.ns, "eth0", topo.PushTag(topo.BuildEth(topo.BroadcastMAC(), vm1.mac, topo.EtherTypeIPv4, make([]byte, 46)), 0x8100, 100))
	sendRaw(t, l.sw, h.swPort, topo.BuildEth(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x77}, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x78}, topo.EtherTypeIPv4, make([]byte, 46)))
	if got := h.waitDrops(vm1.port, "tagged_on_access", 1, 5*time.Second); got < 1 {
		t.Fatalf("%s tagged_on_access = %d after a tagged frame", vm1.port, got)
	}

	var m string
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		m = scrapeTCP(t, h.ns, addr)
		have := sampleNames(m)
		missing = missing[:0]
		for _, n := range used {
			if !have[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		t.Errorf("the dashboard or the alerts use metrics the live scrape does not have: %v\nscrape:\n%s", missing, m)
	}
	t.Logf("%d metric names of the dashboard and the alerts found in the scrape", len(used))
	if v, ok := metricValue(m, "vswitch_uplink_drops_total", `reason="unknown_vlan",uplink="uplink"`); !ok || v < 1 {
		t.Errorf("uplink unknown_vlan drops = %v (present %v), want >= 1", v, ok)
	}
	if v, ok := metricValue(m, "vswitch_drops_total", `reason="tagged_on_access"`); !ok || v < 1 {
		t.Errorf("vswitch_drops_total tagged_on_access = %v (present %v), want >= 1", v, ok)
	}

	// vswitch_build_info names the build the status reports.
	var st api.Status
	if err := json.Unmarshal([]byte(h.mustCtl("-o", "json", "status")), &st); err != nil {
		t.Fatal(err)
	}
	info := regexp.MustCompile(`(?m)^vswitch_build_info\{build_date="[^"]*",commit="[^"]*",goversion="go[^"]+",version="([^"]+)"\} 1$`).FindStringSubmatch(m)
	if info == nil || info[1] != st.Version {
		t.Errorf("vswitch_build_info %q, want version %q (vswctl status) and a go version", info, st.Version)
	}

	// The tap goes (its VM stops) and comes back.
	portSeries := func(want float64, state string) {
		t.Helper()
		m := h.metrics()
		for _, s := range []struct {
			name, labels string
			want         float64
		}{
			{"vswitch_port_oper_up", `port="vnet1"`, want},
			{"vswitch_port_state", `port="vnet1",state="up"`, want},
			{"vswitch_port_state", `port="vnet1",state="absent"`, 1 - want},
			{"vswitch_port_state", `port="vnet1",state="down"`, 0},
			{"vswitch_port_up", `port="vnet1",state="` + state + `"`, want},
			{"vswitch_port_oper_up", `port="vnet2"`, 1},
		} {
			if v, ok := metricValue(m, s.name, s.labels); !ok || v != s.want {
				t.Errorf("tap %s: %s{%s} = %v (present %v), want %v", state, s.name, s.labels, v, ok, s.want)
			}
		}
		if n := strings.Count(m, "vswitch_port_up{port=\"vnet1\""); n != 1 {
			t.Errorf("tap %s: %d vswitch_port_up series for vnet1, want 1", state, n)
		}
	}
	portSeries(1, "up")
	if err := h.ns.DelLink(vm1.port); err != nil {
		t.Fatal(err)
	}
	h.waitState(vm1.port, "absent", 10*time.Second)
	portSeries(0, "absent")
	vm1.plug()
	h.waitState(vm1.port, "up", 10*time.Second)
	portSeries(1, "up")
	vm1.mustPing(vm2)
}

// sendRaw sends one frame out of ifname in ns.
func sendRaw(t *testing.T, ns *topo.NS, ifname string, frame []byte) {
	t.Helper()
	c, err := ns.PacketConn(ifname)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteFrame(frame); err != nil {
		t.Fatalf("send on %s in %s: %v", ifname, ns, err)
	}
}

// needPromtool returns promtool's path. Without it the test is skipped,
// except under CI, whose make deps installs it (Debian's prometheus
// package, from scripts/install-deps.sh).
func needPromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found; CI must check the alerts (make deps installs Debian's prometheus)")
		}
		t.Skip("promtool not installed (Debian package prometheus; make deps installs it)")
	}
	return p
}

func promtool(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// promtool accepts the alerting rules and their unit tests pass.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	bin := needPromtool(t)
	if out := promtool(t, bin, "check", "rules", alertsFile); !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules: %s", out)
	}
	if out := promtool(t, bin, "test", "rules", alertTestsFile); !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules: %s", out)
	}
}

// Every PromQL expression of the dashboard parses: promtool checks them as
// recording rules (Grafana's variables replaced by values).
func TestDashboardQueriesParse(t *testing.T) {
	t.Parallel()
	d := readDashboard(t)
	bin := needPromtool(t)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	exprs := d.exprs()
	for i, e := range exprs {
		q, err := json.Marshal(e) // a JSON string is a YAML string
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "      - record: dashboard:query%d\n        expr: %s\n", i, q)
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := promtool(t, bin, "check", "rules", f); !strings.Contains(out, fmt.Sprintf("SUCCESS: %d rules found", len(exprs))) {
		t.Errorf("promtool check rules on the dashboard's %d queries: %s", len(exprs), out)
	}
}
