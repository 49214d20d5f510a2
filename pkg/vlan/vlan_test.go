package vlan

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func frame(tags []Tag, et uint16, payload int) []byte {
	b := []byte{1, 2, 3, 4, 5, 6, 0x52, 0x54, 0, 1, 2, 3}
	for _, t := range tags {
		b = binary.BigEndian.AppendUint16(b, t.TPID)
		b = binary.BigEndian.AppendUint16(b, t.TCI)
	}
	b = binary.BigEndian.AppendUint16(b, et)
	for i := 0; i < payload; i++ {
		b = append(b, byte(i))
	}
	return b
}

func TestParse(t *testing.T) {
	c100 := Tag{TPIDCTag, MakeTCI(5, false, 100)}
	s20 := Tag{TPIDSTag, MakeTCI(0, true, 20)}
	tests := []struct {
		name    string
		in      []byte
		wantN   int
		wantET  uint16
		wantErr error
		wantOff int
	}{
		{"untagged", frame(nil, 0x0800, 46), 0, 0x0800, nil, 14},
		{"ctag", frame([]Tag{c100}, 0x0806, 46), 1, 0x0806, nil, 18},
		{"qinq", frame([]Tag{s20, c100}, 0x0800, 46), 2, 0x0800, nil, 22},
		{"three tags", frame([]Tag{s20, c100, c100}, 0x0800, 46), 0, 0, ErrTooMany, 0},
		{"runt", make([]byte, 13), 0, 0, ErrShort, 0},
		{"truncated tag", frame([]Tag{c100}, 0x0800, 0)[:16], 0, 0, ErrTruncTag, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Header
			err := Parse(tt.in, &h)
			if err != tt.wantErr {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if h.NTags != tt.wantN || h.EtherType != tt.wantET || h.PayloadOff != tt.wantOff {
				t.Fatalf("got n=%d et=%#x off=%d, want n=%d et=%#x off=%d", h.NTags, h.EtherType, h.PayloadOff, tt.wantN, tt.wantET, tt.wantOff)
			}
		})
	}
	var h Header
	if err := Parse(frame([]Tag{s20, c100}, 0x0800, 10), &h); err != nil {
		t.Fatal(err)
	}
	if o, _ := h.Outer(); o.VID() != 20 || !o.DEI() || o.TPID != TPIDSTag {
		t.Fatalf("outer = %+v", o)
	}
	if c, ok := h.CTag(); !ok || c.VID() != 100 || c.PCP() != 5 {
		t.Fatalf("ctag = %+v ok=%v", c, ok)
	}
}

func TestPushPopInPlaceRoundTrip(t *testing.T) {
	orig := frame(nil, 0x0800, 50)
	buf := make([]byte, 8+len(orig))
	copy(buf[8:], orig)
	off, n := 8, len(orig)
	ctag := Tag{TPIDCTag, MakeTCI(3, false, 100)}
	stag := Tag{TPIDSTag, MakeTCI(0, false, 7)}
	off, n = PushInPlace(buf, off, n, ctag)
	off, n = PushInPlace(buf, off, n, stag)
	want := frame([]Tag{stag, ctag}, 0x0800, 50)
	if !bytes.Equal(buf[off:off+n], want) {
		t.Fatalf("pushed\n got %x\nwant %x", buf[off:off+n], want)
	}
	off, n = PopInPlace(buf, off, n)
	off, n = PopInPlace(buf, off, n)
	if off != 8 || !bytes.Equal(buf[off:off+n], orig) {
		t.Fatalf("popped\n got %x\nwant %x", buf[off:off+n], orig)
	}
}

func TestPushPopTo(t *testing.T) {
	orig := frame(nil, 0x86dd, 30)
	tag := Tag{TPIDCTag, MakeTCI(0, false, 4094)}
	dst := make([]byte, 100)
	n := PushTo(dst, orig, tag)
	if want := frame([]Tag{tag}, 0x86dd, 30); !bytes.Equal(dst[:n], want) {
		t.Fatalf("PushTo got %x want %x", dst[:n], want)
	}
	back := make([]byte, 100)
	m := PopTo(back, dst[:n])
	if !bytes.Equal(back[:m], orig) {
		t.Fatalf("PopTo got %x want %x", back[:m], orig)
	}
	if PopTo(back, orig) != 0 {
		t.Fatal("PopTo of an untagged frame must return 0")
	}
	if PushTo(make([]byte, 10), orig, tag) != 0 {
		t.Fatal("PushTo into a small buffer must return 0")
	}
}

func TestVIDSet(t *testing.T) {
	s, err := ParseVIDSet("10, 20-23,4094,10")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.String(); got != "10,20-23,4094" {
		t.Fatalf("String = %q", got)
	}
	if s.Len() != 6 || !s.Has(22) || s.Has(24) || s.Has(0) {
		t.Fatalf("membership wrong: len %d", s.Len())
	}
	for _, bad := range []string{"0", "4095", "5000", "a", "10,", "30-20", "1-", "-5"} {
		if _, err := ParseVIDSet(bad); err == nil {
			t.Errorf("ParseVIDSet(%q) accepted", bad)
		}
	}
	if s, err := ParseVIDSet(""); err != nil || s.Len() != 0 {
		t.Fatalf("empty set: %v %d", err, s.Len())
	}
}

// The messages of ParseVIDSet are what vswctl prints for a bad --trunk:
// they name the element at fault and say what to write instead.
func TestParseVIDSetMessages(t *testing.T) {
	for in, want := range map[string]string{
		"10,5000":  `invalid VLAN set "10,5000": VLAN 5000 is out of range; use VLAN IDs 1-4094 and ranges, e.g. 10,20-30`,
		"0":        `VLAN 0 is out of range`,
		"30-20":    `range 30-20 is backwards; write it 20-30`,
		"a,b":      `"a" is not a VLAN ID; use VLAN IDs 1-4094`,
		"10,,20":   `empty element`,
		"10,":      `empty element`,
		"1-":       `"" is not a VLAN ID`,
		"1-2-3":    `"2-3" is not a VLAN ID`,
		" 20 -x ":  `"x" is not a VLAN ID`,
		"99999999": `VLAN 99999999 is out of range`,
	} {
		_, err := ParseVIDSet(in)
		var se *SetError
		if !errors.As(err, &se) || se.Set != in {
			t.Errorf("ParseVIDSet(%q) = %v, want a *SetError for the input", in, err)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ParseVIDSet(%q) = %q, want it to contain %q", in, err, want)
		}
	}
	for in, want := range map[string]string{" 10 - 20 ": "10-20", "+5": "5", "4094,1": "1,4094", "\t7\n": "7"} {
		if s, err := ParseVIDSet(in); err != nil || s.String() != want {
			t.Errorf("ParseVIDSet(%q) = %q, %v; want %q", in, s.String(), err, want)
		}
	}
}

// FuzzParseVIDSet: an accepted set prints in canonical form, which parses
// back to the same set; a refused one gets a one-line *SetError.
func FuzzParseVIDSet(f *testing.F) {
	for _, s := range []string{"10", "10,20-30", "1-4094", "0", "4095", "30-20", "10,,20", " 10 - 20 ", "+5", "a", "1-2-3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := ParseVIDSet(s)
		if err != nil {
			var se *SetError
			if !errors.As(err, &se) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseVIDSet(%q): %v", s, err)
			}
			return
		}
		if set.Has(0) || set.Has(4095) {
			t.Fatalf("ParseVIDSet(%q) holds VID 0 or 4095", s)
		}
		back, err := ParseVIDSet(set.String())
		if err != nil || back != set {
			t.Fatalf("canonical %q of %q does not parse back: %v", set.String(), s, err)
		}
		if len(set.List()) != set.Len() {
			t.Fatalf("List and Len disagree for %q", s)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add(frame(nil, 0x0800, 46))
	f.Add(frame([]Tag{{TPIDSTag, 5}, {TPIDCTag, 100}}, 0x0800, 4))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		if err := Parse(b, &h); err != nil {
			return
		}
		if h.PayloadOff > len(b) || h.NTags > MaxTags || h.PayloadOff != HeaderLen+TagLen*h.NTags {
			t.Fatalf("bad header %+v for %d bytes", h, len(b))
		}
		if h.NTags > 0 {
			buf := make([]byte, len(b))
			copy(buf, b)
			off, n := PopInPlace(buf, 0, len(buf))
			var h2 Header
			// a popped frame must still parse, with one tag fewer
			if err := Parse(buf[off:off+n], &h2); err != nil || h2.NTags != h.NTags-1 || h2.EtherType != h.EtherType {
				t.Fatalf("after pop: err=%v header %+v, before %+v", err, h2, h)
			}
		}
	})
}

var sink int

func BenchmarkParse(b *testing.B) {
	fr := frame([]Tag{{TPIDSTag, 5}, {TPIDCTag, 100}}, 0x0800, 46)
	var h Header
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = Parse(fr, &h)
		sink += h.NTags
	}
}

func BenchmarkPushPopInPlace(b *testing.B) {
	orig := frame(nil, 0x0800, 46)
	buf := make([]byte, 8+len(orig))
	copy(buf[8:], orig)
	tag := Tag{TPIDCTag, MakeTCI(0, false, 100)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		off, n := PushInPlace(buf, 8, len(orig), tag)
		off, n = PopInPlace(buf, off, n)
		sink += off + n
	}
}

func BenchmarkPushTo(b *testing.B) {
	orig := frame(nil, 0x0800, 46)
	dst := make([]byte, 128)
	tag := Tag{TPIDCTag, MakeTCI(0, false, 100)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sink += PushTo(dst, orig, tag)
	}
}
