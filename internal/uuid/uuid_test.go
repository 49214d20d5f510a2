package uuid

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	want := "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"
	for _, s := range []string{want, strings.ToUpper(want), " " + want + "\n", "4dea22b31d52d8f32516782e98ab3fa0"} {
		u, err := Parse(s)
		if err != nil || u.String() != want {
			t.Errorf("Parse(%q) = %v, %v; want %s", s, u, err, want)
		}
	}
	for _, s := range []string{"", "4dea22b3", want + "0", "4dea22b3-1d52-d8f3-2516_782e98ab3fa0", "4dea22b3-1d52-d8f3-2516-782e98ab3fzz",
		"4dea22b3+1d52-d8f3-2516-782e98ab3fa0", "{4dea22b3-1d52-d8f3-2516-782e98ab3fa0}"} {
		if u, err := Parse(s); err == nil || !strings.Contains(err.Error(), "use the form") {
			t.Errorf("Parse(%q) = %v, %v; want an error saying the form", s, u, err)
		}
	}
}

// The version 5 UUIDs of RFC 4122 (appendix B's DNS namespace; values as
// Python's uuid.uuid5 computes them), and the VSIID rule: the domain's
// UUID as the namespace, the MAC as the name.
func TestNameBased(t *testing.T) {
	dns, _ := Parse("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	for name, want := range map[string]string{
		"python.org":  "886313e1-3b8a-5372-9b90-0c9aee199e5d",
		"example.com": "cfbff0d1-9375-5685-968c-48ce8b15ae17",
	} {
		if got := NameBased(dns, name).String(); got != want {
			t.Errorf("NameBased(DNS, %q) = %s, want %s", name, got, want)
		}
	}
	dom, _ := Parse("4dea22b3-1d52-d8f3-2516-782e98ab3fa0")
	a, b := NameBased(dom, "52:54:00:12:34:56"), NameBased(dom, "52:54:00:12:34:57")
	if a == b || a != NameBased(dom, "52:54:00:12:34:56") {
		t.Errorf("not a function of the name: %s %s", a, b)
	}
	if a[6]>>4 != 5 || a[8]>>6 != 2 {
		t.Errorf("%s: version %d, variant %b", a, a[6]>>4, a[8]>>6)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("4dea22b3-1d52-d8f3-2516-782e98ab3fa0")
	f.Add("4DEA22B31D52D8F32516782E98AB3FA0")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Parse(s)
		if err != nil {
			return
		}
		back, err := Parse(u.String())
		if err != nil || back != u {
			t.Fatalf("%q: %s does not read back (%v)", s, u, err)
		}
	})
}
