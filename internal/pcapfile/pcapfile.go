package pcapfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Format is a capture file format.
type Format int

const (
	// Pcapng is the pcapng format, with each frame's direction (the default).
	Pcapng Format = iota
	// Pcap is the classic pcap format (nanosecond timestamps).
	Pcap
)

// String is the format's name as flags and the API write it.
func (f Format) String() string {
	if f == Pcap {
		return "pcap"
	}
	return "pcapng"
}

// ContentType is the media type of a stream in format f.
func (f Format) ContentType() string {
	if f == Pcap {
		return "application/vnd.tcpdump.pcap"
	}
	return "application/x-pcapng"
}

// ParseFormat parses "pcapng" or "pcap"; "" is Pcapng.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "pcapng", "":
		return Pcapng, nil
	case "pcap":
		return Pcap, nil
	}
	return 0, fmt.Errorf("invalid format %q: use pcapng or pcap", s)
}

// Direction is which way a frame crossed the interface, as pcapng's
// epb_flags bits 0-1 say it.
type Direction uint8

const (
	// Unknown: the capture does not say (no epb_flags).
	Unknown Direction = iota
	// Inbound: received on the interface.
	Inbound
	// Outbound: sent on the interface.
	Outbound
)

func (d Direction) String() string {
	switch d {
	case Inbound:
		return "in"
	case Outbound:
		return "out"
	}
	return "unknown"
}

// MaxSnaplen is the largest snaplen a file says it keeps (and the
// default): no Ethernet frame is longer.
const MaxSnaplen = 65535

// Interface describes the interface frames were captured on.
type Interface struct {
	Name        string // if_name (pcapng)
	Description string // if_description (pcapng)
	Snaplen     int    // 0: MaxSnaplen
}

// Packet is one captured frame.
type Packet struct {
	Time time.Time
	Dir  Direction
	// Data is the captured bytes, at most the snaplen.
	Data []byte
	// Length is the frame's length on the wire (>= len(Data)); 0 means
	// len(Data).
	Length int
	// Interface is the index of the frame's interface in the file (Reader;
	// Writer writes one interface, 0).
	Interface int
}

// Stats are a capture's totals, written at its end (pcapng Interface
// Statistics Block).
type Stats struct {
	Start, End time.Time
	// Received counts the frames the capture point saw (isb_ifrecv),
	// Dropped those it lost because its buffer was full (isb_ifdrop),
	// Delivered those written to the file (isb_usrdeliv).
	Received, Dropped, Delivered uint64
	// Comment is a line for the reader (opt_comment); WriteStats makes
	// one from the numbers when it is empty.
	Comment string
}

// Block types and option codes (draft-ietf-opsawg-pcapng).
const (
	blockSHB = 0x0A0D0D0A
	blockIDB = 0x00000001
	blockSPB = 0x00000003
	blockISB = 0x00000005
	blockEPB = 0x00000006
	bom      = 0x1A2B3C4D

	optEnd      = 0
	optComment  = 1
	optUserAppl = 4 // shb_userappl
	optIfName   = 2
	optIfDesc   = 3
	optTsResol  = 9
	optEPBFlags = 2
	optStart    = 2 // isb_starttime
	optEnd2     = 3 // isb_endtime
	optIfRecv   = 4
	optIfDrop   = 5
	optUsrDeliv = 8

	linkEthernet = 1

	pcapMagicNanos = 0xa1b23c4d
	pcapMagicMicro = 0xa1b2c3d4
)

// Writer writes one capture file: the header when made, then one record
// per WritePacket, the statistics with WriteStats. Output is buffered;
// Flush writes it out. It is not safe for concurrent use.
type Writer struct {
	bw      *bufio.Writer
	format  Format
	snaplen int
	scratch [32]byte
}

// NewWriter writes the file header of format f for interface intf to w
// (buffered: call Flush) and returns the Writer for its frames.
func NewWriter(w io.Writer, f Format, intf Interface) (*Writer, error) {
	snap := intf.Snaplen
	if snap <= 0 || snap > MaxSnaplen {
		snap = MaxSnaplen
	}
	pw := &Writer{bw: bufio.NewWriterSize(w, 256<<10), format: f, snaplen: snap}
	var err error
	if f == Pcap {
		err = pw.pcapHeader()
	} else {
		err = pw.pcapngHeader(intf)
	}
	if err != nil {
		return nil, fmt.Errorf("write %s header: %w", f, err)
	}
	return pw, nil
}

// Format is the file's format.
func (w *Writer) Format() Format { return w.format }

func (w *Writer) pcapHeader() error {
	h := w.scratch[:24]
	le := binary.LittleEndian
	le.PutUint32(h[0:], pcapMagicNanos)
	le.PutUint16(h[4:], 2)
	le.PutUint16(h[6:], 4)
	le.PutUint32(h[8:], 0)  // thiszone
	le.PutUint32(h[12:], 0) // sigfigs
	le.PutUint32(h[16:], uint32(w.snaplen))
	le.PutUint32(h[20:], linkEthernet)
	_, err := w.bw.Write(h)
	return err
}

// option is one pcapng option to write.
type option struct {
	code uint16
	val  []byte
}

func optLen(opts []option) int {
	n := 0
	for _, o := range opts {
		n += 4 + pad4(len(o.val))
	}
	if n > 0 {
		n += 4 // opt_endofopt
	}
	return n
}

func pad4(n int) int { return (n + 3) &^ 3 }

// block writes a pcapng block: type, length, body, options, length.
func (w *Writer) block(typ uint32, body []byte, opts []option) error {
	total := 12 + len(body) + optLen(opts)
	le := binary.LittleEndian
	var h [8]byte
	le.PutUint32(h[0:], typ)
	le.PutUint32(h[4:], uint32(total))
	if _, err := w.bw.Write(h[:]); err != nil {
		return err
	}
	if _, err := w.bw.Write(body); err != nil {
		return err
	}
	if err := w.options(opts); err != nil {
		return err
	}
	le.PutUint32(h[0:], uint32(total))
	_, err := w.bw.Write(h[:4])
	return err
}

var zeros [4]byte

func (w *Writer) options(opts []option) error {
	if len(opts) == 0 {
		return nil
	}
	le := binary.LittleEndian
	var h [4]byte
	for _, o := range opts {
		le.PutUint16(h[0:], o.code)
		le.PutUint16(h[2:], uint16(len(o.val)))
		if _, err := w.bw.Write(h[:]); err != nil {
			return err
		}
		if _, err := w.bw.Write(o.val); err != nil {
			return err
		}
		if _, err := w.bw.Write(zeros[:pad4(len(o.val))-len(o.val)]); err != nil {
			return err
		}
	}
	_, err := w.bw.Write(zeros[:4]) // opt_endofopt, length 0
	return err
}

// maxOptionLen is the longest option value pcapng can frame (a 16-bit
// length); longer strings are cut.
const maxOptionLen = 0xfff0

func strOpt(code uint16, s string) option {
	if len(s) > maxOptionLen {
		s = s[:maxOptionLen]
	}
	return option{code, []byte(s)}
}

func (w *Writer) pcapngHeader(intf Interface) error {
	le := binary.LittleEndian
	shb := make([]byte, 16)
	le.PutUint32(shb[0:], bom)
	le.PutUint16(shb[4:], 1) // major
	le.PutUint16(shb[6:], 0) // minor
	le.PutUint64(shb[8:], ^uint64(0))
	if err := w.block(blockSHB, shb, []option{strOpt(optUserAppl, "vswitch")}); err != nil {
		return err
	}
	idb := make([]byte, 8)
	le.PutUint16(idb[0:], linkEthernet)
	le.PutUint32(idb[4:], uint32(w.snaplen))
	var opts []option
	if intf.Name != "" {
		opts = append(opts, strOpt(optIfName, intf.Name))
	}
	if intf.Description != "" {
		opts = append(opts, strOpt(optIfDesc, intf.Description))
	}
	opts = append(opts, option{optTsResol, []byte{9}})
	return w.block(blockIDB, idb, opts)
}

// WritePacket writes one frame; Data is cut to the snaplen. It allocates
// nothing.
func (w *Writer) WritePacket(p Packet) error {
	data := p.Data
	if len(data) > w.snaplen {
		data = data[:w.snaplen]
	}
	length := max(p.Length, len(p.Data))
	if w.format == Pcap {
		return w.pcapRecord(p.Time, data, length)
	}
	return w.epb(p, data, length)
}

func (w *Writer) pcapRecord(ts time.Time, data []byte, length int) error {
	h := w.scratch[:16]
	le := binary.LittleEndian
	le.PutUint32(h[0:], uint32(ts.Unix()))
	le.PutUint32(h[4:], uint32(ts.Nanosecond()))
	le.PutUint32(h[8:], uint32(len(data)))
	le.PutUint32(h[12:], uint32(length))
	if _, err := w.bw.Write(h); err != nil {
		return err
	}
	_, err := w.bw.Write(data)
	return err
}

// epb writes an Enhanced Packet Block on interface 0, with epb_flags when
// the direction is known.
func (w *Writer) epb(p Packet, data []byte, length int) error {
	padded := pad4(len(data))
	total := 32 + padded
	if p.Dir != Unknown {
		total += 12 // epb_flags (4 + 4) and opt_endofopt
	}
	le := binary.LittleEndian
	h := w.scratch[:28]
	ts := uint64(p.Time.UnixNano())
	le.PutUint32(h[0:], blockEPB)
	le.PutUint32(h[4:], uint32(total))
	le.PutUint32(h[8:], 0) // interface
	le.PutUint32(h[12:], uint32(ts>>32))
	le.PutUint32(h[16:], uint32(ts))
	le.PutUint32(h[20:], uint32(len(data)))
	le.PutUint32(h[24:], uint32(length))
	if _, err := w.bw.Write(h); err != nil {
		return err
	}
	if _, err := w.bw.Write(data); err != nil {
		return err
	}
	t := w.scratch[:20] // up to 3 padding bytes, epb_flags, opt_endofopt, the length
	n := padded - len(data)
	clear(t[:n])
	if p.Dir != Unknown {
		le.PutUint16(t[n:], optEPBFlags)
		le.PutUint16(t[n+2:], 4)
		le.PutUint32(t[n+4:], uint32(p.Dir)&3)
		le.PutUint32(t[n+8:], 0) // opt_endofopt
		n += 12
	}
	le.PutUint32(t[n:], uint32(total))
	_, err := w.bw.Write(t[:n+4])
	return err
}

// WriteStats writes the capture's totals: a pcapng Interface Statistics
// Block (classic pcap has none: it writes nothing).
func (w *Writer) WriteStats(st Stats) error {
	if w.format == Pcap {
		return nil
	}
	end := st.End
	if end.IsZero() {
		end = time.Now()
	}
	body := make([]byte, 12)
	le := binary.LittleEndian
	ts := uint64(end.UnixNano())
	le.PutUint32(body[0:], 0)
	le.PutUint32(body[4:], uint32(ts>>32))
	le.PutUint32(body[8:], uint32(ts))
	comment := st.Comment
	if comment == "" {
		comment = fmt.Sprintf("%d frames captured, %d seen, %d dropped (the reader could not keep up)", st.Delivered, st.Received, st.Dropped)
	}
	opts := []option{strOpt(optComment, comment)}
	if !st.Start.IsZero() {
		opts = append(opts, option{optStart, tsOpt(st.Start)})
	}
	opts = append(opts,
		option{optEnd2, tsOpt(end)},
		option{optIfRecv, u64(st.Received)},
		option{optIfDrop, u64(st.Dropped)},
		option{optUsrDeliv, u64(st.Delivered)},
	)
	if err := w.block(blockISB, body, opts); err != nil {
		return fmt.Errorf("write pcapng statistics: %w", err)
	}
	return nil
}

// tsOpt is a pcapng timestamp option value: the high and low 32 bits of
// the nanoseconds (if_tsresol 9), each in the section's byte order.
func tsOpt(t time.Time) []byte {
	b := make([]byte, 8)
	ts := uint64(t.UnixNano())
	binary.LittleEndian.PutUint32(b[0:], uint32(ts>>32))
	binary.LittleEndian.PutUint32(b[4:], uint32(ts))
	return b
}

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// Buffered is how many bytes wait for Flush.
func (w *Writer) Buffered() int { return w.bw.Buffered() }

// Flush writes out what is buffered.
func (w *Writer) Flush() error { return w.bw.Flush() }

// ErrFormat is wrapped by every error Reader returns for input that is not
// a well-formed capture file.
var ErrFormat = errors.New("not a valid pcap or pcapng file")
