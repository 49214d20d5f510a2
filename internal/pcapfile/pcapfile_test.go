package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// testPackets are frames of odd lengths (padding) in both directions and
// one without a direction, one cut by the snaplen.
func testPackets() []Packet {
	t0 := time.Unix(1_700_000_000, 123_456_789)
	mk := func(n int, fill byte) []byte { return bytes.Repeat([]byte{fill}, n) }
	return []Packet{
		{Time: t0, Dir: Inbound, Data: mk(60, 1), Length: 60},
		{Time: t0.Add(time.Microsecond), Dir: Outbound, Data: mk(61, 2), Length: 61},
		{Time: t0.Add(2 * time.Millisecond), Dir: Unknown, Data: mk(63, 3)},
		{Time: t0.Add(time.Second), Dir: Outbound, Data: mk(1518, 4), Length: 1518},
		{Time: t0.Add(2 * time.Second), Dir: Inbound, Data: mk(200, 5), Length: 9000}, // caught short by another snaplen
	}
}

func writeFile(t *testing.T, f Format, intf Interface, ps []Packet, st *Stats) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, f, intf)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if st != nil {
		if err := w.WriteStats(*st); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func wantLen(p Packet) int { return max(p.Length, len(p.Data)) }

// The pcapng file reads back through pcapgo (an independent reader):
// frames, lengths, timestamps, interface and statistics; and through
// Reader, which also sees each frame's direction.
func TestPcapngReadByPcapgo(t *testing.T) {
	ps := testPackets()
	st := Stats{Start: ps[0].Time, End: ps[4].Time.Add(time.Second), Received: 9, Dropped: 4, Delivered: 5}
	b := writeFile(t, Pcapng, Interface{Name: "vnet1", Description: "vswitchd datapath, both directions"}, ps, &st)
	if len(b)%4 != 0 {
		t.Fatalf("file of %d bytes: pcapng blocks are 32-bit aligned", len(b))
	}

	var stats []pcapgo.NgInterfaceStatistics
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{
		StatisticsCallback: func(_ int, s pcapgo.NgInterfaceStatistics) { stats = append(stats, s) },
	})
	if err != nil {
		t.Fatalf("pcapgo: %v", err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Errorf("link type %v", r.LinkType())
	}
	intf, err := r.Interface(0)
	if err != nil {
		t.Fatal(err)
	}
	if intf.Name != "vnet1" || intf.Description != "vswitchd datapath, both directions" || intf.SnapLength != MaxSnaplen || intf.TimestampResolution != 9 {
		t.Errorf("interface %+v", intf)
	}
	for i, p := range ps {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("pcapgo frame %d: %v", i, err)
		}
		if !bytes.Equal(data, p.Data) || ci.Length != wantLen(p) || ci.CaptureLength != len(p.Data) {
			t.Errorf("pcapgo frame %d: %d bytes of %d, want %d of %d", i, len(data), ci.Length, len(p.Data), wantLen(p))
		}
		if !ci.Timestamp.Equal(p.Time) {
			t.Errorf("pcapgo frame %d: time %v, want %v", i, ci.Timestamp, p.Time)
		}
	}
	if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
		t.Errorf("after the frames: %v, want EOF", err)
	}
	if len(stats) != 1 || stats[0].PacketsDropped != 4 || stats[0].PacketsReceived != 9 ||
		!stats[0].StartTime.Equal(st.Start) || !stats[0].EndTime.Equal(st.End) {
		t.Errorf("pcapgo statistics %+v, want received 9, dropped 4, %v to %v", stats, st.Start, st.End)
	}

	f, err := ReadAll(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if f.Format != Pcapng || len(f.Packets) != len(ps) {
		t.Fatalf("Reader: %v with %d frames", f.Format, len(f.Packets))
	}
	for i, p := range f.Packets {
		w := ps[i]
		if p.Dir != w.Dir || !bytes.Equal(p.Data, w.Data) || p.Length != wantLen(w) || !p.Time.Equal(w.Time) {
			t.Errorf("Reader frame %d: %v %d/%d at %v, want %v %d/%d at %v", i, p.Dir, len(p.Data), p.Length, p.Time, w.Dir, len(w.Data), wantLen(w), w.Time)
		}
	}
	if f.Stats == nil || f.Stats.Dropped != 4 || f.Stats.Received != 9 || f.Stats.Delivered != 5 ||
		!strings.Contains(f.Stats.Comment, "4 dropped") {
		t.Errorf("Reader statistics %+v", f.Stats)
	}
}

// epb_flags is where the spec puts it: the first option after the padded
// frame, code 2, length 4, bits 0-1 the direction.
func TestPcapngFlagsOnTheWire(t *testing.T) {
	p := Packet{Time: time.Unix(1, 0), Dir: Outbound, Data: []byte{1, 2, 3, 4, 5}}
	b := writeFile(t, Pcapng, Interface{}, []Packet{p}, nil)
	le := binary.LittleEndian
	// Skip the section header and the interface description.
	off := int(le.Uint32(b[4:]))
	off += int(le.Uint32(b[off+4:]))
	epb := b[off:]
	if le.Uint32(epb) != blockEPB {
		t.Fatalf("block type %#x, want an EPB", le.Uint32(epb))
	}
	total := int(le.Uint32(epb[4:]))
	if total != 32+8+12 || le.Uint32(epb[total-4:]) != uint32(total) {
		t.Fatalf("EPB length %d (trailer %d), want 52", total, le.Uint32(epb[total-4:]))
	}
	opt := epb[28+8:]
	if code, l, flags := le.Uint16(opt), le.Uint16(opt[2:]), le.Uint32(opt[4:]); code != 2 || l != 4 || flags != 2 {
		t.Errorf("option %d of %d bytes value %#x, want epb_flags (2) of 4 bytes, outbound (2)", code, l, flags)
	}
	if le.Uint32(opt[8:]) != 0 {
		t.Error("no opt_endofopt after epb_flags")
	}
}

// Classic pcap reads back through pcapgo; it has no direction.
func TestPcapReadByPcapgo(t *testing.T) {
	ps := testPackets()
	b := writeFile(t, Pcap, Interface{Snaplen: 1000}, ps, &Stats{Dropped: 3})
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet || r.Snaplen() != 1000 {
		t.Errorf("header: %v snaplen %d", r.LinkType(), r.Snaplen())
	}
	for i, p := range ps {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		want := p.Data[:min(len(p.Data), 1000)]
		if !bytes.Equal(data, want) || ci.Length != wantLen(p) || !ci.Timestamp.Equal(p.Time) {
			t.Errorf("frame %d: %d bytes of %d at %v, want %d of %d at %v", i, len(data), ci.Length, ci.Timestamp, len(want), wantLen(p), p.Time)
		}
	}
	if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
		t.Errorf("WriteStats wrote into a pcap file: %v", err)
	}
	f, err := ReadAll(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if f.Format != Pcap || len(f.Packets) != len(ps) || f.Stats != nil || f.Packets[1].Dir != Unknown {
		t.Errorf("Reader: %v, %d frames, stats %v, direction %v", f.Format, len(f.Packets), f.Stats, f.Packets[1].Dir)
	}
}

func TestSnaplenCuts(t *testing.T) {
	p := Packet{Time: time.Unix(5, 0), Dir: Inbound, Data: bytes.Repeat([]byte{7}, 300)}
	for _, format := range []Format{Pcapng, Pcap} {
		b := writeFile(t, format, Interface{Snaplen: 128}, []Packet{p}, nil)
		f, err := ReadAll(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Packets[0]; len(got.Data) != 128 || got.Length != 300 || f.Interfaces[0].Snaplen != 128 {
			t.Errorf("%v: %d bytes of %d, snaplen %d; want 128 of 300", format, len(got.Data), got.Length, f.Interfaces[0].Snaplen)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": Pcapng, "pcapng": Pcapng, "pcap": Pcap} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("PCAP"); err == nil || err.Error() != `invalid format "PCAP": use pcapng or pcap` {
		t.Errorf("ParseFormat(PCAP): %v", err)
	}
}

// WritePacket allocates nothing.
func TestWritePacketAllocs(t *testing.T) {
	for _, format := range []Format{Pcapng, Pcap} {
		w, err := NewWriter(io.Discard, format, Interface{})
		if err != nil {
			t.Fatal(err)
		}
		p := testPackets()[3]
		if n := testing.AllocsPerRun(1000, func() { _ = w.WritePacket(p) }); n != 0 {
			t.Errorf("%v: %v allocations per frame", format, n)
		}
	}
}

// Damaged files are errors wrapping ErrFormat, never a panic.
func TestReaderDamage(t *testing.T) {
	good := writeFile(t, Pcapng, Interface{Name: "x"}, testPackets(), &Stats{})
	goodPcap := writeFile(t, Pcap, Interface{}, testPackets(), nil)
	for name, b := range map[string][]byte{
		"empty":          {},
		"short magic":    good[:3],
		"junk":           []byte("GET / HTTP/1.1\r\n\r\n........................"),
		"cut SHB":        good[:20],
		"cut EPB":        good[:len(good)-100],
		"cut pcap":       goodPcap[:len(goodPcap)-7],
		"huge block":     patch(good, sectionLen(good)+4, 0x7ffffff0),
		"odd block":      patch(good, sectionLen(good)+4, 13),
		"bad trailer":    patch(good, len(good)-4, 1),
		"unknown iface":  patch(good, epbOffset(good)+8, 7),
		"caplen>block":   patch(good, epbOffset(good)+20, 5000),
		"pcap caplen":    patch(goodPcap, 24+8, 1<<30),
		"pcap link type": patch(goodPcap, 20, 113),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ReadAll(bytes.NewReader(b))
			if !errors.Is(err, ErrFormat) {
				t.Errorf("ReadAll: %v, want an error wrapping ErrFormat", err)
			}
		})
	}
}

func sectionLen(b []byte) int { return int(binary.LittleEndian.Uint32(b[4:])) }

func epbOffset(b []byte) int {
	off := sectionLen(b)
	return off + int(binary.LittleEndian.Uint32(b[off+4:]))
}

func patch(b []byte, off int, v uint32) []byte {
	c := bytes.Clone(b)
	binary.LittleEndian.PutUint32(c[off:], v)
	return c
}

func FuzzReader(f *testing.F) {
	f.Add(writeFileF(Pcapng))
	f.Add(writeFileF(Pcap))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for range 1000 {
			if _, err := r.Next(); err != nil {
				return
			}
		}
	})
}

func writeFileF(format Format) []byte {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, format, Interface{Name: "seed"})
	for _, p := range testPackets()[:3] {
		_ = w.WritePacket(p)
	}
	_ = w.WriteStats(Stats{Dropped: 1})
	_ = w.Flush()
	return buf.Bytes()
}
