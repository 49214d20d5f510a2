package libvirt

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// bigDomain is a domain XML with n vswitch NICs: n <interface> elements
// and n <vsw:port> elements, each pair with its own MAC.
func bigDomain(n int) string {
	var b strings.Builder
	b.WriteString(`<domain type='kvm'><name>big</name><uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid><metadata><vsw:ports xmlns:vsw="urn:vswitch:libvirt:1">`)
	for i := range n {
		fmt.Fprintf(&b, `<vsw:port mac="52:54:00:%02x:%02x:%02x" vlan="%d"/>`, i>>16&0xff, i>>8&0xff, i&0xff, 1+i%4094)
	}
	b.WriteString(`</vsw:ports></metadata><devices>`)
	for i := range n {
		fmt.Fprintf(&b, `<interface type='ethernet'><mac address='52:54:00:%02x:%02x:%02x'/><target dev='v%d'/></interface>`, i>>16&0xff, i>>8&0xff, i&0xff, i)
	}
	b.WriteString(`</devices></domain>`)
	return b.String()
}

// Parsing and binding take time in proportion to the XML: 16,000 ports and
// NICs (a 2.2 MB XML, under the 4 MiB cap) took 10.7 s here (11.9 s in
// the issue) while libvirt waited (a duplicate check and the NIC lookup
// were quadratic); now about 0.1 s.
func TestParseDomainIsLinear(t *testing.T) {
	const n = 16000
	x := bigDomain(n)
	el := fastest(t, x, n)
	t.Logf("%d ports, %d KiB of XML: parsed and bound in %v", n, len(x)>>10, el)
	// 3 s: ~30x today's time, for a loaded CI machine; the quadratic
	// parser took 10.7 s.
	if el > 3*time.Second {
		t.Errorf("%d ports took %v, want well under a second", n, el)
	}
}

// fastest parses and binds x (n ports) three times and returns the
// shortest time: the machine may be busy with other work, the parser's
// cost is what the best run shows.
func fastest(t *testing.T, x string, n int) time.Duration {
	t.Helper()
	best := time.Duration(math.MaxInt64)
	for range 3 {
		start := time.Now()
		d, err := ParseDomain(strings.NewReader(x))
		if err != nil {
			t.Fatal(err)
		}
		bs, err := d.Bindings()
		if err != nil {
			t.Fatal(err)
		}
		best = min(best, time.Since(start))
		if len(d.Ports) != n || len(bs) != n || bs[n-1].Tap != fmt.Sprintf("v%d", n-1) {
			t.Fatalf("%d ports, %d bindings, last %+v", len(d.Ports), len(bs), bs[len(bs)-1])
		}
	}
	return best
}

// A domain XML over the 4 MiB cap is refused as such, whatever its
// content (it used to be cut at the cap and fail as "unexpected EOF");
// one of exactly 4 MiB is read whole, also when it is a cap's worth of
// ports, in well under a second.
func TestDomainXMLCap(t *testing.T) {
	x := bigDomain(16000)
	pad := func(n int) string { return x + strings.Repeat(" ", n-len(x)) }
	d, err := ParseDomain(strings.NewReader(pad(maxXML)))
	if err != nil || len(d.Ports) != 16000 {
		t.Fatalf("a 4 MiB XML: %v", err)
	}
	for _, n := range []int{maxXML + 1, 5 << 20} {
		_, err := ParseDomain(strings.NewReader(pad(n)))
		if !errors.Is(err, ErrTooLarge) || err.Error() != "libvirt: domain XML larger than 4 MiB" {
			t.Errorf("a %d-byte XML: %v, want \"domain XML larger than 4 MiB\"", n, err)
		}
	}
	per := (len(bigDomain(2000)) - len(bigDomain(1000))) / 1000 // bytes per port and NIC
	n := 1000 + (maxXML-len(bigDomain(1000)))/per - 100
	x = bigDomain(n)
	if len(x) > maxXML || len(x) < maxXML-(maxXML>>5) {
		t.Fatalf("%d ports make %d bytes, not just under the cap", n, len(x))
	}
	el := fastest(t, x, n)
	t.Logf("%d ports in %d KiB: %v", n, len(x)>>10, el)
	// 5 s: ~25x today's time, for a loaded CI machine (a run at load 10
	// took over a second); quadratic parsing would take about a minute.
	if el > 5*time.Second {
		t.Errorf("a cap-sized XML of %d ports took %v", n, el)
	}
}
