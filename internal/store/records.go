package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/vswitch/vswitch/pkg/port"
)

// The records of the state file and their decoders. A record comes from
// disk, so it is outside data like an API request: its size is bounded
// before it is decoded, and a port record passes the same rules as a port
// the API adds (port.Config's JSON form validates).

const (
	// maxRecordBytes bounds a port record, as api.MaxBodyBytes bounds the
	// request that adds a port: PutPort refuses a longer one, and a longer
	// one found on disk is not decoded.
	maxRecordBytes = 1 << 20
	// MaxFDBRecords bounds the learned entries kept across a restart: as
	// many as the datapath's forwarding table holds (1<<16). SaveFDB
	// keeps the first ones of a longer list; FDB refuses a snapshot with
	// more.
	MaxFDBRecords = 1 << 16
	// maxFDBBytes bounds the FDB snapshot's size on disk (MaxFDBRecords
	// entries take about 4.5 MiB).
	maxFDBBytes = 8 << 20
)

// RecordError is a port record the store cannot use: it does not decode
// (corrupt), is longer than any port record can be, or breaks the port
// rules (invalid; Err is then the *port.Error). Its message names the port
// and says how to repair it. The record stays in the file until it is
// deleted or replaced.
type RecordError struct {
	Port string
	Err  error
}

func (e *RecordError) Error() string {
	what := "a corrupt"
	var pe *port.Error
	if errors.As(e.Err, &pe) {
		what = "an invalid"
	}
	return fmt.Sprintf("port %s has %s record (%v): delete it with vswctl del-port %s and add it again (vswctl add-port %s replaces it too; with vswitchd stopped: vswitchd --state FILE --drop-port %s)",
		e.Port, what, e.Err, e.Port, e.Port, e.Port)
}

func (e *RecordError) Unwrap() error { return e.Err }

// decodePort decodes and validates the record of port name; the error is
// a *RecordError.
func decodePort(name string, v []byte) (port.Config, error) {
	c, err := decodeRecord(name, v)
	if err != nil {
		return port.Config{}, &RecordError{Port: name, Err: err}
	}
	return c, nil
}

// decodeRecord decodes the record of port name with the key as the
// authority for the name: the raw record is read, its name field (absent
// in a v1 record, possibly stale or broken in a v2 one) replaced by the
// key, and only then decoded and checked against the port rules
// (port.Config.UnmarshalJSON), so the error is about the record's fields,
// not about a name the key overrides. A record over maxRecordBytes is
// refused unread, and so is a key that is not UTF-8 (JSON would turn it
// into another name; found by FuzzDecodeRecord).
func decodeRecord(name string, v []byte) (port.Config, error) {
	if len(v) > maxRecordBytes {
		return port.Config{}, recordTooLong(len(v))
	}
	if !utf8.ValidString(name) {
		// JSON (the record, the API) would carry another name.
		return port.Config{}, fmt.Errorf("the port name %q is not UTF-8, which the API cannot carry", name)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(v, &raw); err != nil {
		return port.Config{}, err
	}
	if raw == nil { // the record is null
		raw = map[string]json.RawMessage{}
	}
	n, err := json.Marshal(name)
	if err != nil {
		return port.Config{}, err
	}
	raw["name"] = n
	b, err := json.Marshal(raw)
	if err != nil {
		return port.Config{}, err
	}
	var c port.Config
	if err := json.Unmarshal(b, &c); err != nil {
		return port.Config{}, err
	}
	return c, nil
}

// recordTooLong is the error of a port record of n bytes, too long to be
// read.
func recordTooLong(n int) error {
	return fmt.Errorf("the record is %d bytes, more than the %d a port record can be", n, maxRecordBytes)
}

// encodePort is the record PutPort writes for c, which must be valid.
func encodePort(c port.Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode port %s: %w", c.Name, err)
	}
	if len(b) > maxRecordBytes {
		return nil, fmt.Errorf("port %s: %w", c.Name, recordTooLong(len(b)))
	}
	return b, nil
}

// FDBRecord is one learned forwarding entry kept across restarts, so a
// restarted daemon still knows where the VMs are (VMs that keep their ARP
// caches send unicast at once, and unknown unicast is dropped).
type FDBRecord struct {
	VLAN int    `json:"vlan"`
	MAC  string `json:"mac"`
	Port string `json:"port"`
}

// encodeFDB is the snapshot SaveFDB writes: at most MaxFDBRecords entries.
func encodeFDB(recs []FDBRecord) ([]byte, error) {
	if len(recs) > MaxFDBRecords {
		recs = recs[:MaxFDBRecords]
	}
	// Without HTML escaping a port name's '<', '>' and '&' are one byte,
	// not six, so the largest snapshot (MaxFDBRecords entries of 15-byte
	// names of '"' or '\', two bytes each) stays under maxFDBBytes and
	// reads back (TestSavedFDBReadsBack).
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(recs); err != nil {
		return nil, fmt.Errorf("encode FDB: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodeFDB reads an FDB snapshot (a JSON array of FDBRecord, or null)
// without reading more than its bounds: a snapshot over maxFDBBytes is
// refused unread, and decoding stops at the entry past MaxFDBRecords. The
// entries' values are not checked here: the datapath refuses the ones it
// cannot use.
func decodeFDB(v []byte) ([]FDBRecord, error) {
	if len(v) > maxFDBBytes {
		return nil, fmt.Errorf("the FDB snapshot is %d bytes, more than the %d it can be", len(v), maxFDBBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("decode FDB snapshot: %w", err)
	}
	if tok == nil { // null: saved empty
		return nil, trailing(dec)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("decode FDB snapshot: starts with %v, not a list", tok)
	}
	var recs []FDBRecord
	for dec.More() {
		if len(recs) == MaxFDBRecords {
			return nil, fmt.Errorf("the FDB snapshot holds more than %d entries", MaxFDBRecords)
		}
		var r FDBRecord
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("decode FDB entry %d: %w", len(recs), err)
		}
		recs = append(recs, r)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, fmt.Errorf("decode FDB snapshot: %w", err)
	}
	return recs, trailing(dec)
}

// trailing refuses anything after the snapshot's value.
func trailing(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("decode FDB snapshot: data after its end")
	}
	return nil
}
