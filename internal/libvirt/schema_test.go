package libvirt

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The schema of the metadata, docs/vsw-port.rng, is the contract with
// operators: these tests check that the parser and the port rules agree
// with it, and that every example the documentation shows is valid by
// both. They run xmllint (libxml2-utils, installed by make deps).

const schemaPath = "../../docs/vsw-port.rng"

// xmllint returns xmllint's path; without it the test is skipped, except
// under CI, which installs it.
func xmllint(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("xmllint not found; CI must validate the schema (make deps installs libxml2-utils)")
		}
		t.Skip("xmllint not found (libxml2-utils; make deps installs it)")
	}
	return p
}

// validate runs xmllint once on every document and says which validate
// against the schema.
func validate(t *testing.T, docs []string) []bool {
	t.Helper()
	bin := xmllint(t)
	dir := t.TempDir()
	args := []string{"--noout", "--relaxng", schemaPath}
	for i, d := range docs {
		p := filepath.Join(dir, fmt.Sprintf("doc%03d.xml", i))
		if err := os.WriteFile(p, []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	out, _ := exec.Command(bin, args...).CombinedOutput() // exit 3: some did not validate
	res := make([]bool, len(docs))
	for i := range docs {
		p := filepath.Join(dir, fmt.Sprintf("doc%03d.xml", i))
		switch {
		case strings.Contains(string(out), p+" validates"):
			res[i] = true
		case strings.Contains(string(out), p+" fails to validate"):
		default:
			t.Fatalf("xmllint said nothing about %s:\n%s", p, out)
		}
	}
	if strings.Contains(string(out), "failed to compile") || strings.Contains(string(out), "schemas parser error") {
		t.Fatalf("the schema does not compile:\n%s", out)
	}
	return res
}

var macAttrRE = regexp.MustCompile(`mac="([^"]*)"`)

// parse judges a <vsw:ports> element as the hook does at "start begin":
// in a domain whose ethernet NICs have the MACs the element names.
func parse(ports string) error {
	var nics strings.Builder
	for i, m := range macAttrRE.FindAllStringSubmatch(ports, -1) {
		fmt.Fprintf(&nics, "<interface type='ethernet'><mac address='%s'/><target dev='vnet%d'/></interface>", strings.TrimSpace(m[1]), i)
	}
	d, err := ParseDomain(strings.NewReader("<domain><name>d</name><uuid>" + testUUID + "</uuid><metadata>" + ports +
		"</metadata><devices>" + nics.String() + "</devices></domain>"))
	if err != nil {
		return err
	}
	_, err = d.Bindings()
	return err
}

// The parser, with the port rules, and the schema agree on each port
// description, or differ where the schema says they do (values a schema
// cannot judge, and spellings of a MAC, or a manager name with spaces
// around it, that only the parser takes).
func TestSchemaAgreesWithParser(t *testing.T) {
	const (
		both       = iota // valid by both
		neither           // invalid by both
		rulesOnly         // schema-valid, refused by the port rules (the schema says which)
		parserOnly        // taken by the parser, not schema-valid
	)
	cases := []struct {
		attrs string
		want  int
	}{
		{`mac="52:54:00:12:34:56" vlan="100"`, both},
		{`mac="52:54:00:AB:cd:EF" vlan="4094" pcp="7" svid="4094"`, both},
		{`mac="52:54:00:12:34:56" vlan=" 100 " pcp="0" svid="0"`, both},
		{`mac="52:54:00:12:34:56" trunk="10,20-30" native-vlan="10"`, both},
		{`mac="52:54:00:12:34:56" trunk=" 30, 10-12 " native-vlan="0"`, both},
		{`mac="52:54:00:12:34:56" vlan="100" xmlns:o="urn:other" o:note="x"`, both},
		{`vlan="100"`, neither},
		{`mac="52:54:00:12:34:56"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" trunk="10"`, neither},
		{`mac="52:54:00:12:34:56" vlan="0"`, both},
		{`mac="52:54:00:12:34:56" vlan="0" vsi-group="4294967295"`, both},
		{`mac="52:54:00:12:34:56" vlan="10" vsi-group="0"`, both},
		{`mac="52:54:00:12:34:56" vlan="-1"`, neither},
		{`mac="52:54:00:12:34:56" vlan="10" vsi-group="4294967296"`, neither},
		{`mac="52:54:00:12:34:56" vlan="10" vsi-group="-1"`, neither},
		{`mac="52:54:00:12:34:56" vlan="10" vsi-group="x"`, neither},
		{`mac="52:54:00:12:34:56" trunk="1-41" vsi-group="5"`, rulesOnly},
		{`mac="52:54:00:12:34:56" vlan="4095"`, neither},
		{`mac="52:54:00:12:34:56" vlan="ten"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" native-vlan="10"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" pcp="8"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" pcp="-1"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" svid="4095"`, neither},
		{`mac="52:54:00:12:34:56" trunk="10" native-vlan="4095"`, neither},
		{`mac="52:54:00:12:34:56" trunk="ten"`, neither},
		{`mac="52:54:00:12:34:56" trunk=""`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" pcpp="3"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" vsw:pcp="3"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" xmlns:o="urn:other" o:vlan="7" o:bogus="1"`, both},
		{`xmlns="urn:vswitch:libvirt:1" mac="52:54:00:12:34:56" vlan="100"`, both},
		{`mac="01:00:5e:00:00:01" vlan="100"`, neither},
		{`mac="52:54:00:12:34" vlan="100"`, neither},
		{`mac="52:54:00:12:34:56" trunk="30-20"`, rulesOnly},
		{`mac="52:54:00:12:34:56" trunk="10,5000"`, rulesOnly},
		{`mac="52:54:00:12:34:56" trunk="0"`, rulesOnly},
		{`mac="00:00:00:00:00:00" vlan="100"`, rulesOnly},
		{`mac="52-54-00-12-34-56" vlan="100"`, parserOnly},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-type="1193047" vsi-type-version="2" vsi-manager="12" instance-id="0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d"`, both},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-type="16777215" vsi-type-version="255" vsi-manager=" 0 " instance-id="0B6D9A3C5E554F4E9F112F0D5A6B7C8D"`, both},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-manager="vswitchd"`, both},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-manager="0123456789abcde!"`, both},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-manager="12a"`, both},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-manager="a1"`, both},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-type="16777216"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-type="-1"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-type-version="256"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-manager="256"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-manager="a"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-manager="a b"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-manager="0123456789abcdefg"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-manager="1234567890123456"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" instance-id="4dea22b3"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" instance-id="4dea22b3-1d52-d8f3-2516-782e98ab3fa0x"`, neither},
		{`mac="52:54:00:12:34:56" vlan="100" instance-id="00000000-0000-0000-0000-000000000000"`, rulesOnly},
		{`mac="52:54:00:12:34:56" vlan="100" vsi-manager=" mgr1 "`, parserOnly},
	}
	docs := make([]string, len(cases))
	for i, c := range cases {
		docs[i] = `<vsw:ports xmlns:vsw="urn:vswitch:libvirt:1"><vsw:port ` + c.attrs + `/></vsw:ports>`
	}
	// Two ports for one MAC: the schema cannot say it.
	dup := `<vsw:ports xmlns:vsw="urn:vswitch:libvirt:1"><vsw:port mac="52:54:00:12:34:56" vlan="1"/><vsw:port mac="52:54:00:12:34:56" vlan="2"/></vsw:ports>`
	// The element without a prefix, as `virsh metadata --set` takes it
	// and libvirt namespaces it; no ports at all is valid too.
	bare := `<ports xmlns="urn:vswitch:libvirt:1"><port mac="52:54:00:12:34:56" vlan="100"/></ports>`
	empty := `<vsw:ports xmlns:vsw="urn:vswitch:libvirt:1"/>`
	valid := validate(t, append(docs, dup, bare, empty))
	for i, c := range cases {
		perr := parse(docs[i])
		var want bool
		switch c.want {
		case both:
			want = valid[i] && perr == nil
		case neither:
			want = !valid[i] && perr != nil
		case rulesOnly:
			want = valid[i] && perr != nil
		case parserOnly:
			want = !valid[i] && perr == nil
		}
		if !want {
			t.Errorf("<vsw:port %s>: schema-valid %v, parser %v; want %s", c.attrs, valid[i], perr,
				[]string{"valid by both", "invalid by both", "schema-valid and refused by the port rules", "taken by the parser only"}[c.want])
		}
	}
	n := len(cases)
	if err := parse(dup); !valid[n] || err == nil {
		t.Errorf("two ports for one MAC: schema-valid %v (want true: it cannot say), parser %v (want an error)", valid[n], err)
	}
	if err := parse(bare); !valid[n+1] || err != nil {
		t.Errorf("unprefixed element: schema-valid %v, parser %v; want valid by both", valid[n+1], err)
	}
	if err := parse(empty); !valid[n+2] || err != nil {
		t.Errorf("no ports: schema-valid %v, parser %v; want valid by both", valid[n+2], err)
	}
}

var (
	// examplePrefixedRE finds the metadata element as a domain XML holds it.
	examplePrefixedRE = regexp.MustCompile(`(?s)<vsw:ports\b[^>]*/>|<vsw:ports\b.*?</vsw:ports>`)
	// exampleSetRE finds the element of a `virsh metadata --set` example.
	exampleSetRE = regexp.MustCompile(`(?s)--set\s*\\?\s*'(<ports>.*?</ports>)'`)
	// goCommentRE strips the tab of a Go doc comment's code block.
	goCommentRE = regexp.MustCompile(`(?m)^//\s?\t?`)
)

// Every example of the metadata in the documentation (README.md,
// docs/libvirt.md, this package's doc.go, vswctl's help) validates against
// the schema and is accepted by the parser.
func TestDocExamplesValidate(t *testing.T) {
	files := map[string]int{ // file: examples it must have at least
		"../../README.md":          1,
		"../../docs/libvirt.md":    2,
		"doc.go":                   1,
		"../../cmd/vswctl/hook.go": 1,
	}
	var docs, where []string
	for f, min := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if strings.HasSuffix(f, ".go") {
			text = goCommentRE.ReplaceAllString(text, "")
		}
		found := 0
		for _, m := range examplePrefixedRE.FindAllString(text, -1) {
			docs, where = append(docs, m), append(where, f)
			found++
		}
		for _, m := range exampleSetRE.FindAllStringSubmatch(text, -1) {
			// libvirt puts the element into the namespace of --uri.
			docs, where = append(docs, strings.Replace(m[1], "<ports>", `<ports xmlns="urn:vswitch:libvirt:1">`, 1)), append(where, f)
			found++
		}
		if found < min {
			t.Errorf("%s: %d metadata examples found, want at least %d (did the example's form change?)", f, found, min)
		}
	}
	valid := validate(t, docs)
	for i, d := range docs {
		if !valid[i] {
			t.Errorf("%s: example does not validate against docs/vsw-port.rng:\n%s", where[i], d)
		}
		if err := parse(d); err != nil {
			t.Errorf("%s: example refused by the parser: %v\n%s", where[i], err, d)
		}
	}
	t.Logf("%d examples validated", len(docs))
}
