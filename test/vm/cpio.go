package vm

import (
	"fmt"
	"io"
	"syscall"
)

// cpioWriter writes the "newc" cpio format (SVR4 without CRC) that the
// kernel unpacks as an initramfs: a 110-byte ASCII header per entry, the
// name with its NUL, the data, each padded to 4 bytes, and a TRAILER!!!
// entry at the end. Every entry gets mtime 0 and owner root, so the same
// inputs give the same bytes (the image cache is keyed by them).
type cpioWriter struct {
	w   io.Writer
	off int64
	ino uint32
	err error
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.off += int64(n)
	c.err = err
}

func (c *cpioWriter) pad() {
	if r := c.off % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// entry writes one entry: mode holds the file type bits (syscall.S_IFREG,
// S_IFDIR, S_IFCHR) and the permissions; rdev is (major, minor) of a
// device node.
func (c *cpioWriter) entry(name string, mode uint32, data []byte, rdevMajor, rdevMinor uint32) {
	c.ino++
	nlink := uint32(1)
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write(append([]byte(name), 0))
	c.pad()
	c.write(data)
	c.pad()
}

func (c *cpioWriter) dir(name string) { c.entry(name, syscall.S_IFDIR|0o755, nil, 0, 0) }

func (c *cpioWriter) file(name string, perm uint32, data []byte) {
	c.entry(name, syscall.S_IFREG|perm, data, 0, 0)
}

func (c *cpioWriter) charDev(name string, perm, major, minor uint32) {
	c.entry(name, syscall.S_IFCHR|perm, nil, major, minor)
}

// close writes the trailer and returns the first error met.
func (c *cpioWriter) close() error {
	c.ino = 0
	c.entry("TRAILER!!!", 0, nil, 0, 0)
	return c.err
}
