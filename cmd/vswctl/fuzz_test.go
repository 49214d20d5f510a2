package main

import (
	"strings"
	"testing"

	"github.com/vswitch/vswitch/pkg/vlan"
)

// FuzzParseTrunk checks vswctl's --trunk parser against pkg/vlan's: they
// accept the same non-empty inputs, and vswctl's canonical form parses back
// to the same set.
func FuzzParseTrunk(f *testing.F) {
	for _, s := range []string{"10", "10,20-30", "1-4094", "0", "4095", "30-20", "10,,20", " 10 - 20 ", "+5", "a", "1-2-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.TrimSpace(s) == "" {
			return
		}
		got, err := parseTrunk(s)
		want, werr := vlan.ParseVIDSet(s)
		if (err == nil) != (werr == nil) {
			t.Fatalf("parseTrunk(%q) err=%v, vlan.ParseVIDSet err=%v", s, err, werr)
		}
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if got != want.String() {
			t.Fatalf("parseTrunk(%q) = %q, vlan says %q", s, got, want.String())
		}
		back, err := vlan.ParseVIDSet(got)
		if err != nil || back != want {
			t.Fatalf("canonical %q does not parse back: %v", got, err)
		}
	})
}
