package pcapfile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Bounds of what Reader accepts, so damaged input cannot make it allocate
// without limit.
const (
	// maxBlock is the largest pcapng block read (a frame of MaxSnaplen
	// with its header and options is far less).
	maxBlock = 1 << 20
	// maxInterfaces is how many interfaces a pcapng section may describe.
	maxInterfaces = 1024
)

// Reader reads a pcap or pcapng file written by Writer or by another tool.
type Reader struct {
	r      *bufio.Reader
	format Format
	order  binary.ByteOrder
	// pcap
	nanos   bool
	snaplen int
	// pcapng
	ifaces []ngIface
	stats  *Stats

	buf []byte
}

type ngIface struct {
	Interface
	linkType uint16
	// one timestamp unit is num/den seconds
	num, den uint64
}

// NewReader reads the file header (pcap) or the section header (pcapng)
// from r.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{r: bufio.NewReader(r)}
	magic, err := rd.r.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, eof(err))
	}
	switch {
	case binary.LittleEndian.Uint32(magic) == blockSHB:
		rd.format = Pcapng
		if err := rd.readSHB(); err != nil {
			return nil, err
		}
		return rd, nil
	default:
		if err := rd.readPcapHeader(); err != nil {
			return nil, err
		}
		return rd, nil
	}
}

// eof turns io.EOF into io.ErrUnexpectedEOF: inside a header or record
// the end of the input is damage.
func eof(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func formatErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, a...)...)
}

// Format is the file's format.
func (r *Reader) Format() Format { return r.format }

// Interfaces describes the interfaces of the file (pcap: one, unnamed),
// as far as read.
func (r *Reader) Interfaces() []Interface {
	if r.format == Pcap {
		return []Interface{{Snaplen: r.snaplen}}
	}
	out := make([]Interface, len(r.ifaces))
	for i, f := range r.ifaces {
		out[i] = f.Interface
	}
	return out
}

// Stats returns the last statistics block read (pcapng); false when none
// was.
func (r *Reader) Stats() (Stats, bool) {
	if r.stats == nil {
		return Stats{}, false
	}
	return *r.stats, true
}

func (r *Reader) readPcapHeader() error {
	h := make([]byte, 24)
	if _, err := io.ReadFull(r.r, h); err != nil {
		return formatErr("pcap header: %v", eof(err))
	}
	switch m := binary.LittleEndian.Uint32(h); m {
	case pcapMagicNanos, pcapMagicMicro:
		r.order = binary.LittleEndian
		r.nanos = m == pcapMagicNanos
	default:
		switch m := binary.BigEndian.Uint32(h); m {
		case pcapMagicNanos, pcapMagicMicro:
			r.order = binary.BigEndian
			r.nanos = m == pcapMagicNanos
		default:
			return formatErr("unknown magic %08x", binary.BigEndian.Uint32(h))
		}
	}
	r.format = Pcap
	r.snaplen = int(r.order.Uint32(h[16:]))
	if lt := r.order.Uint32(h[20:]) & 0xffff; lt != linkEthernet {
		return formatErr("link type %d, not Ethernet", lt)
	}
	return nil
}

// Next returns the next frame. Its Data is valid until the next call.
// At the end of the input it returns io.EOF.
func (r *Reader) Next() (Packet, error) {
	if r.format == Pcap {
		return r.nextPcap()
	}
	return r.nextPcapng()
}

func (r *Reader) nextPcap() (Packet, error) {
	h := make([]byte, 16)
	if _, err := io.ReadFull(r.r, h); err != nil {
		if errors.Is(err, io.EOF) {
			return Packet{}, io.EOF
		}
		return Packet{}, formatErr("pcap record header: %v", err)
	}
	sec, frac := r.order.Uint32(h[0:]), r.order.Uint32(h[4:])
	caplen, length := int(r.order.Uint32(h[8:])), int(r.order.Uint32(h[12:]))
	if caplen > maxBlock || caplen > length {
		return Packet{}, formatErr("pcap record of %d bytes captured, %d long", caplen, length)
	}
	data, err := r.read(caplen)
	if err != nil {
		return Packet{}, formatErr("pcap record: %v", eof(err))
	}
	ns := int64(frac)
	if !r.nanos {
		ns *= 1000
	}
	return Packet{Time: time.Unix(int64(sec), ns), Data: data, Length: length}, nil
}

// read reads n bytes into the reused buffer.
func (r *Reader) read(n int) ([]byte, error) {
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	_, err := io.ReadFull(r.r, b)
	return b, err
}

// readBlock reads one whole pcapng block and returns its type and body
// (without the type and the two lengths). io.EOF at a clean end.
func (r *Reader) readBlock() (uint32, []byte, error) {
	h := make([]byte, 8)
	if _, err := io.ReadFull(r.r, h); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, io.EOF
		}
		return 0, nil, formatErr("pcapng block header: %v", err)
	}
	typ := r.order.Uint32(h[0:])
	total := r.order.Uint32(h[4:])
	if typ == blockSHB {
		return 0, nil, formatErr("a second section is not supported")
	}
	if total < 12 || total%4 != 0 || total > maxBlock {
		return 0, nil, formatErr("pcapng block of type %#x is %d bytes long", typ, total)
	}
	b, err := r.read(int(total) - 8)
	if err != nil {
		return 0, nil, formatErr("pcapng block of type %#x: %v", typ, eof(err))
	}
	if r.order.Uint32(b[len(b)-4:]) != total {
		return 0, nil, formatErr("pcapng block of type %#x: its two lengths differ", typ)
	}
	return typ, b[:len(b)-4], nil
}

func (r *Reader) readSHB() error {
	h := make([]byte, 12)
	if _, err := io.ReadFull(r.r, h); err != nil {
		return formatErr("pcapng section header: %v", eof(err))
	}
	switch {
	case binary.LittleEndian.Uint32(h[8:]) == bom:
		r.order = binary.LittleEndian
	case binary.BigEndian.Uint32(h[8:]) == bom:
		r.order = binary.BigEndian
	default:
		return formatErr("pcapng section header without byte-order magic")
	}
	total := r.order.Uint32(h[4:])
	if total < 28 || total%4 != 0 || total > maxBlock {
		return formatErr("pcapng section header is %d bytes long", total)
	}
	rest, err := r.read(int(total) - 12)
	if err != nil {
		return formatErr("pcapng section header: %v", eof(err))
	}
	if r.order.Uint32(rest[len(rest)-4:]) != total {
		return formatErr("pcapng section header: its two lengths differ")
	}
	if major := r.order.Uint16(rest[0:]); major != 1 {
		return formatErr("pcapng version %d", major)
	}
	return nil
}

// options walks the options in b, calling fn for each.
func (r *Reader) options(b []byte, fn func(code uint16, val []byte)) error {
	for len(b) >= 4 {
		code, l := r.order.Uint16(b[0:]), int(r.order.Uint16(b[2:]))
		if code == optEnd {
			return nil
		}
		if 4+pad4(l) > len(b) {
			return formatErr("pcapng option %d of %d bytes overruns its block", code, l)
		}
		fn(code, b[4:4+l])
		b = b[4+pad4(l):]
	}
	return nil
}

func (r *Reader) readIDB(b []byte) error {
	if len(b) < 8 {
		return formatErr("pcapng interface block of %d bytes", len(b))
	}
	if len(r.ifaces) >= maxInterfaces {
		return formatErr("more than %d interfaces", maxInterfaces)
	}
	f := ngIface{linkType: r.order.Uint16(b[0:]), num: 1, den: 1_000_000}
	f.Snaplen = int(r.order.Uint32(b[4:]))
	var bad error
	err := r.options(b[8:], func(code uint16, val []byte) {
		switch code {
		case optIfName:
			f.Name = string(val)
		case optIfDesc:
			f.Description = string(val)
		case optTsResol:
			if len(val) != 1 {
				bad = formatErr("if_tsresol of %d bytes", len(val))
				return
			}
			e := uint64(val[0] & 0x7f)
			base := uint64(10)
			if val[0]&0x80 != 0 {
				base = 2
			}
			if (base == 10 && e > 18) || (base == 2 && e > 63) {
				bad = formatErr("if_tsresol %#x", val[0])
				return
			}
			f.den = 1
			for range e {
				f.den *= base
			}
		}
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return err
	}
	r.ifaces = append(r.ifaces, f)
	return nil
}

// time converts a pcapng timestamp of interface i.
func (f *ngIface) time(ts uint64) time.Time {
	sec := ts / f.den
	rem := ts % f.den
	ns := rem * 1_000_000_000 / f.den
	if f.den > 1_000_000_000 {
		ns = rem / (f.den / 1_000_000_000)
	}
	if sec > math.MaxInt64/2 {
		sec = math.MaxInt64 / 2
	}
	return time.Unix(int64(sec), int64(ns))
}

func (r *Reader) nextPcapng() (Packet, error) {
	for {
		typ, b, err := r.readBlock()
		if err != nil {
			return Packet{}, err
		}
		switch typ {
		case blockIDB:
			if err := r.readIDB(b); err != nil {
				return Packet{}, err
			}
		case blockISB:
			if err := r.readISB(b); err != nil {
				return Packet{}, err
			}
		case blockEPB:
			return r.readEPB(b)
		case blockSPB:
			if len(r.ifaces) == 0 || len(b) < 4 {
				return Packet{}, formatErr("simple packet block without an interface")
			}
			length := int(r.order.Uint32(b[0:]))
			data := b[4:]
			if length < len(data) {
				data = data[:length]
			}
			return Packet{Data: data, Length: length}, nil
		}
	}
}

func (r *Reader) iface(id uint32) (*ngIface, error) {
	if int(id) >= len(r.ifaces) {
		return nil, formatErr("frame of interface %d, but %d are described", id, len(r.ifaces))
	}
	f := &r.ifaces[id]
	if f.linkType != linkEthernet {
		return nil, formatErr("interface %d has link type %d, not Ethernet", id, f.linkType)
	}
	return f, nil
}

func (r *Reader) readEPB(b []byte) (Packet, error) {
	if len(b) < 20 {
		return Packet{}, formatErr("enhanced packet block of %d bytes", len(b))
	}
	id := r.order.Uint32(b[0:])
	f, err := r.iface(id)
	if err != nil {
		return Packet{}, err
	}
	ts := uint64(r.order.Uint32(b[4:]))<<32 | uint64(r.order.Uint32(b[8:]))
	caplen, length := int(r.order.Uint32(b[12:])), int(r.order.Uint32(b[16:]))
	if caplen > len(b)-20 || caplen > length {
		return Packet{}, formatErr("enhanced packet block: %d bytes captured of %d, %d in the block", caplen, length, len(b)-20)
	}
	p := Packet{Time: f.time(ts), Data: b[20 : 20+caplen], Length: length, Interface: int(id)}
	err = r.options(b[20+pad4(caplen):], func(code uint16, val []byte) {
		if code == optEPBFlags && len(val) == 4 {
			p.Dir = Direction(r.order.Uint32(val) & 3)
		}
	})
	if p.Dir > Outbound {
		p.Dir = Unknown // 11: not defined
	}
	return p, err
}

func (r *Reader) readISB(b []byte) error {
	if len(b) < 12 {
		return formatErr("interface statistics block of %d bytes", len(b))
	}
	f, err := r.iface(r.order.Uint32(b[0:]))
	if err != nil {
		return err
	}
	st := Stats{End: f.time(uint64(r.order.Uint32(b[4:]))<<32 | uint64(r.order.Uint32(b[8:])))}
	tsv := func(val []byte) time.Time {
		return f.time(uint64(r.order.Uint32(val[0:]))<<32 | uint64(r.order.Uint32(val[4:])))
	}
	err = r.options(b[12:], func(code uint16, val []byte) {
		switch {
		case code == optComment:
			st.Comment = string(val)
		case len(val) != 8:
		case code == optStart:
			st.Start = tsv(val)
		case code == optEnd2:
			st.End = tsv(val)
		case code == optIfRecv:
			st.Received = r.order.Uint64(val)
		case code == optIfDrop:
			st.Dropped = r.order.Uint64(val)
		case code == optUsrDeliv:
			st.Delivered = r.order.Uint64(val)
		}
	})
	if err != nil {
		return err
	}
	r.stats = &st
	return nil
}

// File is a whole capture file, as ReadAll returns it.
type File struct {
	Format     Format
	Interfaces []Interface
	Packets    []Packet // each with its own copy of the bytes
	// Stats is the last statistics block (pcapng), nil when there is none.
	Stats *Stats
}

// ReadAll reads a whole capture file.
func ReadAll(rd io.Reader) (*File, error) {
	r, err := NewReader(rd)
	if err != nil {
		return nil, err
	}
	f := &File{Format: r.Format()}
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return f, fmt.Errorf("frame %d: %w", len(f.Packets)+1, err)
		}
		p.Data = bytes.Clone(p.Data)
		f.Packets = append(f.Packets, p)
	}
	f.Interfaces = r.Interfaces()
	if st, ok := r.Stats(); ok {
		f.Stats = &st
	}
	return f, nil
}
