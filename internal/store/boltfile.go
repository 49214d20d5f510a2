package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/bits"
)

// This file reads a bbolt file the way bbolt lays it out, but through
// ReadAt and with every offset checked, so that bytes of any shape give a
// list of problems and never a fault. bbolt itself trusts the file: it
// maps it into memory and follows page numbers and offsets from it
// unchecked, so a truncated file makes it touch memory past the end of the
// file (SIGBUS) and a damaged page makes it index out of range or fail
// one of its assertions (panic). The scan runs before bbolt opens a file:
// when it finds every page bbolt could reach inside the file and well
// formed, bbolt's own reads stay inside the mapping. It also serves the
// offline commands, which read what is left of a damaged file without
// bbolt (Salvage).
//
// The layout (go.etcd.io/bbolt/internal/common, format version 2; integers
// in the machine's byte order, little-endian on every platform vswitchd
// runs on):
//
//	page    id u64, flags u16, count u16, overflow u32, then the body;
//	        a page with overflow N spans N+1 pages of the file
//	meta    pages 0 and 1: magic u32, version u32, page size u32,
//	        flags u32, root bucket (root page u64, sequence u64),
//	        freelist page u64, high-water page u64, txid u64,
//	        FNV-64a checksum u64 of the 56 bytes before it
//	branch  count elements of pos u32, key size u32, child page u64;
//	        the key is pos bytes after its element
//	leaf    count elements of flags u32, pos u32, key size u32, value
//	        size u32; key then value, pos bytes after the element. flags 1:
//	        the value is a bucket (root page u64, sequence u64), and a
//	        bucket with root page 0 is inline: its leaf page follows
//	freelist count ids u64 (count 0xFFFF: the first u64 is the count)
//
// bbolt uses the valid meta page with the higher txid (and the other one
// when that is invalid, which is how it survives a torn meta write); the
// pages in use are those below its high-water mark.

const (
	boltMagic   = 0xED0CDAED
	boltVersion = 2

	pageHeaderSize   = 16
	metaSize         = 64 // through the checksum
	metaSumSize      = 56 // what the checksum covers
	elemSize         = 16 // branch and leaf elements alike
	bucketHeaderSize = 16

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagFreelist = 0x10
	leafIsBucket = 0x01

	noFreelist = ^uint64(0)

	minPageSize = 1 << 10
	maxPageSize = 1 << 24 // as far as bbolt looks for the second meta page
	// maxSpan bounds the bytes one page (with its overflow) may span: the
	// largest value vswitchd writes is the FDB snapshot (maxFDBBytes), so
	// a longer page is damage, and reading it would only cost memory.
	maxSpan = 2 * maxFDBBytes
	// maxDepth bounds the nesting of pages and buckets followed: a B+tree
	// of vswitchd's size is a few levels deep.
	maxDepth = 32
)

var ne = binary.NativeEndian

// boltMeta is one of the two meta pages.
type boltMeta struct {
	page     int // 0 or 1
	pageSize uint32
	root     uint64 // the root bucket's page
	freelist uint64
	hw       uint64 // high-water mark: pages 0..hw-1 are in use or free
	txid     uint64
	err      error // why bbolt would not use it
}

// parseMeta reads a meta page (b starts at its page header). Like bbolt's
// Meta.Validate it judges the magic number, the version and the checksum
// only: what bbolt takes as valid must be valid here, or the two would
// read different trees.
func parseMeta(b []byte, page int) boltMeta {
	m := boltMeta{page: page}
	if len(b) < pageHeaderSize+metaSize {
		m.err = errors.New("cut short")
		return m
	}
	b = b[pageHeaderSize:]
	m.pageSize = ne.Uint32(b[8:])
	m.root = ne.Uint64(b[16:])
	m.freelist = ne.Uint64(b[32:])
	m.hw = ne.Uint64(b[40:])
	m.txid = ne.Uint64(b[48:])
	h := fnv.New64a()
	h.Write(b[:metaSumSize])
	switch {
	case ne.Uint32(b[0:]) != boltMagic:
		m.err = errors.New("no bbolt magic number")
	case ne.Uint32(b[4:]) != boltVersion:
		m.err = fmt.Errorf("bbolt format version %d, want %d", ne.Uint32(b[4:]), boltVersion)
	case ne.Uint64(b[56:]) != h.Sum64():
		m.err = errors.New("checksum mismatch")
	}
	return m
}

// kv is one key and value of a bucket; val is nil when the value is longer
// than maxValue (size says how long).
type kv struct {
	key, val []byte
	size     int
}

// maxValue bounds the values a scan keeps: none vswitchd writes is longer.
const maxValue = maxFDBBytes

// boltScan is what a scan found: the file's layout, its top-level buckets'
// entries, and what is wrong with it.
type boltScan struct {
	size     int64
	pageSize int
	metas    [2]boltMeta
	meta     *boltMeta // the one bbolt uses; nil when neither is valid
	// problems are damage: bbolt must not open the file.
	problems []string
	// notes are oddities bbolt copes with (a torn meta page).
	notes []string
	// buckets holds the entries of each top-level bucket by name (a
	// nested bucket's as "parent/child": vswitchd writes none).
	buckets map[string][]kv

	r      io.ReaderAt
	keep   bool    // keep the entries (Check, Salvage), or only check
	state  []uint8 // per page below the high-water mark: pageFree, pageUsed
	inUse  int     // pages reached from the root and the freelist
	nfree  int
	missed int // problems not listed (beyond maxProblems)
}

const (
	pageFree = 1 + iota
	pageUsed
)

// maxProblems bounds the problems a scan lists; the rest are counted.
const maxProblems = 20

func (s *boltScan) problem(format string, a ...any) {
	if len(s.problems) >= maxProblems {
		s.missed++
		return
	}
	s.problems = append(s.problems, fmt.Sprintf(format, a...))
}

// Damaged reports whether bbolt must not open the file.
func (s *boltScan) damaged() bool { return len(s.problems) > 0 }

// problemText is the first problem, and how many more there are: the
// first is the cause (a truncation), the others mostly its consequences;
// Check lists them all.
func (s *boltScan) problemText() string {
	if n := len(s.problems) - 1 + s.missed; n > 0 {
		return fmt.Sprintf("%s; %d more problems: vswitchd --check lists them", s.problems[0], n)
	}
	return s.problems[0]
}

// scanBolt scans the bbolt file of size bytes that r reads, keeping the
// top-level buckets' entries if keep is set. It needs no lock of its own
// (the caller holds the file's), never panics, and reads each page once,
// so it costs time in proportion to the file and memory in proportion to
// a page and the data it keeps.
func scanBolt(r io.ReaderAt, size int64, keep bool) *boltScan {
	s := &boltScan{r: r, size: size, keep: keep, buckets: map[string][]kv{}}
	if size == 0 {
		s.problem("the file is empty (0 bytes)")
		return s
	}
	if !s.readMetas() {
		return s
	}
	m := s.meta
	if need := uint64(m.hw) * uint64(s.pageSize); m.hw > uint64(size)/uint64(s.pageSize) {
		s.problem("truncated: the file is %d bytes, its %d pages of %d bytes need %d", size, m.hw, s.pageSize, need)
	}
	if m.freelist == noFreelist {
		// bbolt would rebuild the freelist by walking the tree in a
		// goroutine that panics on what it finds wrong, beyond any
		// recover; vswitchd always writes the freelist.
		s.problem("meta page %d says the file has no freelist, which vswitchd always writes", m.page)
		return s
	}
	if m.hw < 2 || m.root < 2 || m.root >= m.hw || m.freelist < 2 || m.freelist >= m.hw {
		s.problem("meta page %d points outside the file's pages (root page %d, freelist page %d, %d pages)", m.page, m.root, m.freelist, m.hw)
		return s
	}
	// One byte per page, bounded by the file's size, not by the high-water
	// mark the file claims.
	s.state = make([]uint8, min(m.hw, uint64(size)/uint64(s.pageSize)+1))
	s.mark(0, 0, "meta")
	s.mark(1, 0, "meta")
	s.readFreelist(m.freelist)
	s.walk(m.root, 0, "", true)
	return s
}

// readMetas finds the page size and the meta page bbolt would use, as
// bbolt does (DB.getPageSize, DB.mmap, DB.meta): the page size of page 0
// if page 0 is valid, else of the first valid meta page at 1 KiB, 2 KiB,
// ... 16 MiB; meta page 1 is then the page at that offset; bbolt uses the
// valid one with the higher txid.
func (s *boltScan) readMetas() bool {
	buf := make([]byte, pageHeaderSize+metaSize)
	read := func(off int64, page int) boltMeta {
		if off+int64(len(buf)) > s.size {
			return boltMeta{page: page, err: errors.New("beyond the end of the file")}
		}
		if _, err := s.r.ReadAt(buf, off); err != nil {
			return boltMeta{page: page, err: fmt.Errorf("read: %w", err)}
		}
		return parseMeta(buf, page)
	}
	s.metas[0] = read(0, 0)
	ps := s.metas[0].pageSize
	if s.metas[0].err != nil {
		ps = 0
		for off := int64(minPageSize); off <= maxPageSize && off < s.size-1024; off *= 2 {
			if m := read(off, 1); m.err == nil {
				ps = m.pageSize
				break
			}
		}
	}
	if ps != 0 {
		s.metas[1] = read(int64(ps), 1)
	} else {
		s.metas[1] = boltMeta{page: 1, err: errors.New("not found")}
	}
	m0, m1 := &s.metas[0], &s.metas[1]
	switch {
	case m0.err != nil && m1.err != nil:
		s.problem("not a state file, or both its meta pages are destroyed (page 0: %v; page 1: %v)", m0.err, m1.err)
		return false
	case ps < minPageSize || ps > maxPageSize || bits.OnesCount32(ps) != 1:
		s.problem("its meta page gives the page size %d", ps)
		return false
	case m0.err != nil:
		s.meta = m1
	case m1.err != nil:
		s.meta = m0
	case m1.txid > m0.txid:
		s.meta = m1
	default:
		s.meta = m0
	}
	s.pageSize = int(ps)
	for _, m := range []*boltMeta{m0, m1} {
		if m.err != nil {
			s.notes = append(s.notes, fmt.Sprintf("meta page %d is unusable (%v): bbolt uses meta page %d (transaction %d)", m.page, m.err, s.meta.page, s.meta.txid))
		}
	}
	if s.size < 2*int64(s.pageSize) {
		s.problem("truncated: the file is %d bytes, shorter than its two meta pages of %d bytes", s.size, s.pageSize)
		return false
	}
	return true
}

// mark records pages id..id+overflow as in use; false if one of them is
// out of range or already taken.
func (s *boltScan) mark(id uint64, overflow uint32, what string) bool {
	end := id + uint64(overflow)
	if end < id || end >= s.meta.hw {
		s.problem("%s page %d (+%d overflow) lies beyond the high-water mark %d", what, id, overflow, s.meta.hw)
		return false
	}
	if end >= uint64(len(s.state)) {
		s.problem("%s page %d lies beyond the end of the file (%d bytes: truncated)", what, end, s.size)
		return false
	}
	for p := id; p <= end; p++ {
		switch s.state[p] {
		case pageFree:
			s.problem("%s page %d is also on the freelist", what, p)
			return false
		case pageUsed:
			s.problem("%s page %d is reached twice", what, p)
			return false
		}
		s.state[p] = pageUsed
		s.inUse++
	}
	return true
}

// readPage reads page id with its overflow pages, checking its header;
// nil when the page is unusable (the problem is recorded).
func (s *boltScan) readPage(id uint64, what string) []byte {
	if id < 2 || id >= s.meta.hw {
		s.problem("%s page %d is outside the file's pages (2-%d)", what, id, s.meta.hw-1)
		return nil
	}
	off := int64(id) * int64(s.pageSize)
	var hdr [pageHeaderSize]byte
	if off+pageHeaderSize > s.size {
		s.problem("%s page %d lies beyond the end of the file (%d bytes: truncated)", what, id, s.size)
		return nil
	}
	if _, err := s.r.ReadAt(hdr[:], off); err != nil {
		s.problem("read %s page %d: %v", what, id, err)
		return nil
	}
	if got := ne.Uint64(hdr[0:]); got != id {
		s.problem("%s page %d calls itself page %d", what, id, got)
		return nil
	}
	overflow := ne.Uint32(hdr[12:])
	span := (uint64(overflow) + 1) * uint64(s.pageSize)
	if span > maxSpan || off+int64(span) > s.size {
		s.problem("%s page %d spans %d pages, past the end of the file or longer than any record", what, id, uint64(overflow)+1)
		return nil
	}
	if !s.mark(id, overflow, what) {
		return nil
	}
	b := make([]byte, span)
	if _, err := s.r.ReadAt(b, off); err != nil {
		s.problem("read %s page %d: %v", what, id, err)
		return nil
	}
	return b
}

func (s *boltScan) readFreelist(id uint64) {
	b := s.readPage(id, "freelist")
	if b == nil {
		return
	}
	if flags := ne.Uint16(b[8:]); flags != flagFreelist {
		s.problem("freelist page %d has type %#x, not a freelist", id, flags)
		return
	}
	body := b[pageHeaderSize:]
	n := uint64(ne.Uint16(b[10:]))
	if n == 0xFFFF {
		if len(body) < 8 {
			s.problem("freelist page %d is cut short", id)
			return
		}
		n = ne.Uint64(body)
		body = body[8:]
	}
	if n > uint64(len(body))/8 {
		s.problem("freelist page %d lists %d pages, more than it holds", id, n)
		return
	}
	for i := range n {
		p := ne.Uint64(body[8*i:])
		if p < 2 || p >= uint64(len(s.state)) {
			s.problem("freelist page %d lists page %d, outside the file's pages", id, p)
			return
		}
		if s.state[p] != 0 {
			s.problem("freelist page %d lists page %d twice, or a page in use", id, p)
			return
		}
		s.state[p] = pageFree
		s.nfree++
	}
}

// walk checks the pages of one bucket's B+tree from page id and keeps the
// entries of the top-level buckets. bucket is the bucket's name ("" for
// the root, whose entries are the top-level buckets).
func (s *boltScan) walk(id uint64, depth int, bucket string, root bool) {
	if depth > maxDepth {
		s.problem("page %d is nested more than %d levels deep", id, maxDepth)
		return
	}
	b := s.readPage(id, "tree")
	if b == nil {
		return
	}
	s.walkPage(b, id, depth, bucket, root)
}

// walkPage checks one branch or leaf page b (an inline bucket's page too:
// id 0).
func (s *boltScan) walkPage(b []byte, id uint64, depth int, bucket string, root bool) {
	if len(b) < pageHeaderSize {
		s.problem("inline bucket %q is cut short", bucket)
		return
	}
	flags, count := ne.Uint16(b[8:]), int(ne.Uint16(b[10:]))
	if pageHeaderSize+count*elemSize > len(b) {
		s.problem("page %d has %d elements, more than it holds", id, count)
		return
	}
	elem := func(i int) (e []byte, at uint64) {
		at = uint64(pageHeaderSize + i*elemSize)
		return b[at : at+elemSize], at
	}
	// slice returns n bytes at off from the element at at, or nil.
	slice := func(at uint64, off, n uint32) []byte {
		start := at + uint64(off)
		end := start + uint64(n)
		if end > uint64(len(b)) {
			return nil
		}
		return b[start:end]
	}
	switch flags {
	case flagBranch:
		if count == 0 || id == 0 {
			s.problem("branch page %d is empty or inline", id)
			return
		}
		for i := range count {
			e, at := elem(i)
			if slice(at, ne.Uint32(e[0:]), ne.Uint32(e[4:])) == nil {
				s.problem("branch page %d: key %d lies outside the page", id, i)
			}
			s.walk(ne.Uint64(e[8:]), depth+1, bucket, root)
		}
	case flagLeaf:
		for i := range count {
			e, at := elem(i)
			eflags, pos, ksize, vsize := ne.Uint32(e[0:]), ne.Uint32(e[4:]), ne.Uint32(e[8:]), ne.Uint32(e[12:])
			var k, v []byte
			if uint64(pos)+uint64(ksize) <= 1<<32-1 {
				k, v = slice(at, pos, ksize), slice(at, pos+ksize, vsize)
			}
			// A bad entry does not hide the next ones: elements have a
			// fixed size, so each is found without the others.
			if k == nil || v == nil {
				s.problem("leaf page %d: entry %d lies outside the page", id, i)
				continue
			}
			if eflags&leafIsBucket != 0 {
				if len(v) < bucketHeaderSize {
					s.problem("leaf page %d: bucket %q has a short header", id, k)
					continue
				}
				name := string(k)
				if !root {
					name = bucket + "/" + name // nested: walked, not kept
				}
				if id == 0 {
					// bbolt inlines only buckets without buckets. Walking
					// one would also make the walk exponential: inline
					// pages have no number to mark as seen, and their
					// entries may all point at the same bytes.
					s.problem("inline bucket %q holds bucket %q, which bbolt never writes", bucket, k)
					continue
				}
				if r := ne.Uint64(v); r == 0 {
					if depth+1 > maxDepth {
						s.problem("inline bucket %q is nested too deep", name)
						continue
					}
					s.walkPage(v[bucketHeaderSize:], 0, depth+1, name, false)
				} else {
					s.walk(r, depth+1, name, false)
				}
				if _, ok := s.buckets[name]; !ok && root {
					s.buckets[name] = nil
				}
				continue
			}
			if root || !s.keep {
				continue // no values in the root bucket; none kept without keep
			}
			e2 := kv{key: append([]byte(nil), k...), size: len(v)}
			if len(v) <= maxValue {
				e2.val = append([]byte{}, v...)
			}
			s.buckets[bucket] = append(s.buckets[bucket], e2)
		}
	default:
		s.problem("page %d has type %#x, not a branch or leaf page", id, flags)
	}
}
