package vm

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DefaultCacheDir is where the guest kernel and initramfs are kept
// (VSWITCH_VM_CACHE overrides it). `make deps` fills it; see CacheDir.
const DefaultCacheDir = "/var/cache/vswitch-vm"

// KernelPackage is the Debian metapackage whose kernel the guests boot: the
// cloud flavour, small and with virtio as modules.
const KernelPackage = "linux-image-cloud-amd64"

// BusyboxPath is Debian busybox-static's binary, the guest's only program.
const BusyboxPath = "/bin/busybox"

// guestModules are the modules the guest loads for its NIC; what they
// depend on (read from each module's .modinfo) comes along, loaded first.
var guestModules = []string{"virtio_pci", "virtio_net"}

// initScript is the guest's /init.
//
//go:embed guest/init.sh
var initScript []byte

// imageFormat changes when the layout of the initramfs changes in a way
// the inputs' bytes do not show.
const imageFormat = "vswitch-vm-initramfs-1"

// CacheDir returns VSWITCH_VM_CACHE or DefaultCacheDir.
func CacheDir() string {
	if d := os.Getenv("VSWITCH_VM_CACHE"); d != "" {
		return d
	}
	return DefaultCacheDir
}

// Image is what a guest boots: a kernel and an initramfs, both files.
type Image struct {
	KernelVersion string // "6.1.0-56-cloud-amd64"
	Kernel        string // path of vmlinuz
	Initrd        string // path of the gzip'd newc initramfs
}

// ErrNoKernel means the cache holds no unpacked guest kernel: run
// `make deps` (FetchKernel).
var ErrNoKernel = errors.New("no guest kernel in the cache")

// FindKernel returns the directory of the newest complete kernel in the
// cache (DIR/kernel/VERSION with vmlinuz and modules/) and its version.
func FindKernel(dir string) (kdir, version string, err error) {
	ents, err := os.ReadDir(filepath.Join(dir, "kernel"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("guest kernel: %w", err)
	}
	var vers []string
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "kernel", e.Name(), "vmlinuz")); err == nil {
			vers = append(vers, e.Name())
		}
	}
	if len(vers) == 0 {
		return "", "", fmt.Errorf("%w %s: run `make deps` (scripts/install-deps.sh)", ErrNoKernel, dir)
	}
	slices.Sort(vers)
	v := vers[len(vers)-1]
	return filepath.Join(dir, "kernel", v), v, nil
}

// FetchKernel makes sure the cache holds a guest kernel: when none is
// there it downloads KernelPackage's kernel with `apt-get download` (apt's
// lists must be current), unpacks it with `dpkg-deb -x` into a scratch
// directory (nothing is installed, /boot is not touched) and keeps vmlinuz
// and the modules the guest needs, in DIR/kernel/VERSION. It returns that
// directory. With a kernel in the cache it does nothing.
func FetchKernel(ctx context.Context, dir string, logf func(format string, args ...any)) (string, error) {
	if kdir, _, err := FindKernel(dir); err == nil {
		return kdir, nil
	} else if !errors.Is(err, ErrNoKernel) {
		return "", err
	}
	pkg, err := kernelPackage(ctx)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(dir, "kernel"), 0o755); err != nil {
		return "", fmt.Errorf("guest kernel: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Join(dir, "kernel"), ".fetch-")
	if err != nil {
		return "", fmt.Errorf("guest kernel: %w", err)
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	// APT::Sandbox::User=root: apt's _apt user may not write the scratch dir.
	if out, err := run(ctx, tmp, "apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", pkg); err != nil {
		return "", fmt.Errorf("guest kernel: apt-get download %s: %w: %s", pkg, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("guest kernel: apt-get download %s left %d .deb files", pkg, len(debs))
	}
	st, err := os.Stat(debs[0])
	if err != nil {
		return "", fmt.Errorf("guest kernel: %w", err)
	}
	root := filepath.Join(tmp, "root")
	if out, err := run(ctx, tmp, "dpkg-deb", "-x", debs[0], root); err != nil {
		return "", fmt.Errorf("guest kernel: dpkg-deb -x %s: %w: %s", debs[0], err, out)
	}
	mods, err := filepath.Glob(filepath.Join(root, "lib/modules/*"))
	if err != nil || len(mods) != 1 {
		return "", fmt.Errorf("guest kernel: %s holds %d module trees, want 1", filepath.Base(debs[0]), len(mods))
	}
	version := filepath.Base(mods[0])
	keep := filepath.Join(tmp, "keep")
	if err := os.MkdirAll(filepath.Join(keep, "modules"), 0o755); err != nil {
		return "", fmt.Errorf("guest kernel: %w", err)
	}
	if err := copyFile(filepath.Join(root, "boot", "vmlinuz-"+version), filepath.Join(keep, "vmlinuz")); err != nil {
		return "", fmt.Errorf("guest kernel: %w", err)
	}
	index, err := indexModules(mods[0])
	if err != nil {
		return "", err
	}
	order, err := moduleOrder(index, guestModules)
	if err != nil {
		return "", fmt.Errorf("guest kernel %s: %w", version, err)
	}
	for _, m := range order {
		if err := copyFile(index[m], filepath.Join(keep, "modules", m+".ko")); err != nil {
			return "", fmt.Errorf("guest kernel: %w", err)
		}
	}
	kdir := filepath.Join(dir, "kernel", version)
	if err := os.Rename(keep, kdir); err != nil {
		return "", fmt.Errorf("guest kernel: %w", err)
	}
	logf("guest kernel %s: %s (%.1f MB) fetched and unpacked in %.1f s; kept vmlinuz and %d modules in %s",
		version, filepath.Base(debs[0]), float64(st.Size())/1e6, time.Since(start).Seconds(), len(order), kdir)
	return kdir, nil
}

// kernelPackage resolves KernelPackage to the versioned package it
// depends on ("linux-image-6.1.0-56-cloud-amd64").
func kernelPackage(ctx context.Context) (string, error) {
	out, err := run(ctx, "", "apt-cache", "depends", "--no-recommends", "--no-suggests", KernelPackage)
	if err != nil {
		return "", fmt.Errorf("guest kernel: apt-cache depends %s: %w: %s", KernelPackage, err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("guest kernel: apt-cache depends %s names no linux-image package (run apt-get update): %s", KernelPackage, out)
}

func run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return bytes.TrimSpace(out), err
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// indexModules maps module name to file for every .ko under dir.
func indexModules(dir string) (map[string]string, error) {
	index := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name, ok := strings.CutSuffix(d.Name(), ".ko"); ok && !d.IsDir() {
			index[name] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index modules in %s: %w", dir, err)
	}
	return index, nil
}

// moduleOrder returns roots and everything they depend on, each after its
// dependencies: the order insmod needs (there is no modprobe, no
// modules.dep in the guest).
func moduleOrder(index map[string]string, roots []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, from []string) error
	visit = func(name string, from []string) error {
		switch state[name] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(from, name), " -> "))
		}
		path, ok := index[name]
		if !ok {
			if len(from) == 0 {
				return fmt.Errorf("module %s not found (built in? compressed?)", name)
			}
			return fmt.Errorf("module %s (needed by %s) not found", name, from[len(from)-1])
		}
		state[name] = 1
		deps, err := moduleDepends(path)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, append(from, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, name)
		return nil
	}
	for _, r := range roots {
		if err := visit(r, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleDepends reads the "depends=" entry of a module's .modinfo section
// (what depmod writes into modules.dep).
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module %s: no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("module %s: .modinfo: %w", path, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

// checkStatic fails unless path is a static ELF executable (no program
// interpreter): the initramfs has no libc.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w (install busybox-static)", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: install busybox-static", path)
		}
	}
	return nil
}

// BuildImage returns the guest image of the cache's newest kernel, building
// its initramfs when the cache has none for the current inputs (init
// script, busybox, modules): about 0.3 s, pure Go. The initramfs is
// named by a hash of its inputs, so a changed init script gets a new one
// and concurrent test runs never see a half-written file.
func BuildImage(dir string) (img Image, built bool, err error) {
	kdir, version, err := FindKernel(dir)
	if err != nil {
		return Image{}, false, err
	}
	img = Image{KernelVersion: version, Kernel: filepath.Join(kdir, "vmlinuz")}
	if err := checkStatic(BusyboxPath); err != nil {
		return Image{}, false, fmt.Errorf("guest image: %w", err)
	}
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return Image{}, false, fmt.Errorf("guest image: %w", err)
	}
	index, err := indexModules(filepath.Join(kdir, "modules"))
	if err != nil {
		return Image{}, false, err
	}
	order, err := moduleOrder(index, guestModules)
	if err != nil {
		return Image{}, false, fmt.Errorf("guest image (kernel %s): %w", version, err)
	}
	mods := make([][]byte, len(order))
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%d\x00%s", imageFormat, len(initScript), initScript, len(bb), bb)
	for i, m := range order {
		if mods[i], err = os.ReadFile(index[m]); err != nil {
			return Image{}, false, fmt.Errorf("guest image: %w", err)
		}
		fmt.Fprintf(h, "\x00%s\x00%d\x00%s", m, len(mods[i]), mods[i])
	}
	sum := hex.EncodeToString(h.Sum(nil))[:16]
	img.Initrd = filepath.Join(dir, "initrd-"+version+"-"+sum+".img")
	if _, err := os.Stat(img.Initrd); err == nil {
		now := time.Now()
		_ = os.Chtimes(img.Initrd, now, now) // in use: keep it from pruneInitrds
		return img, false, nil
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return Image{}, false, fmt.Errorf("guest image: %w", err)
	}
	c := &cpioWriter{w: zw}
	for _, d := range []string{"bin", "dev", "etc", "lib", "lib/modules", "proc", "root", "sys", "tmp"} {
		c.dir(d)
	}
	// The kernel opens /dev/console for init before devtmpfs is mounted.
	c.charDev("dev/console", 0o600, 5, 1)
	c.file("init", 0o755, initScript)
	c.file("bin/busybox", 0o755, bb)
	c.file("etc/modules", 0o644, []byte(strings.Join(order, "\n")+"\n"))
	for i, m := range order {
		c.file("lib/modules/"+m+".ko", 0o644, mods[i])
	}
	if err := c.close(); err != nil {
		return Image{}, false, fmt.Errorf("guest image: cpio: %w", err)
	}
	if err := zw.Close(); err != nil {
		return Image{}, false, fmt.Errorf("guest image: gzip: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".initrd-")
	if err != nil {
		return Image{}, false, fmt.Errorf("guest image: %w", err)
	}
	_, werr := tmp.Write(buf.Bytes())
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), 0o644)
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), img.Initrd)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return Image{}, false, fmt.Errorf("guest image: write %s: %w", img.Initrd, werr)
	}
	pruneInitrds(dir, img.Initrd)
	return img, true, nil
}

// pruneInitrds removes initramfs files of other inputs that nobody used for
// a day (a test run of another checkout may be using a recent one).
func pruneInitrds(dir, keep string) {
	old, _ := filepath.Glob(filepath.Join(dir, "initrd-*.img"))
	for _, p := range old {
		if st, err := os.Stat(p); err == nil && p != keep && time.Since(st.ModTime()) > 24*time.Hour {
			os.Remove(p)
		}
	}
}

// Prepare fetches the kernel when the cache has none and builds the
// initramfs when it is missing (built): what `make deps` runs
// (cmd/vmimage).
func Prepare(ctx context.Context, dir string, logf func(format string, args ...any)) (img Image, built bool, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Image{}, false, fmt.Errorf("guest image cache: %w", err)
	}
	if _, err := FetchKernel(ctx, dir, logf); err != nil {
		return Image{}, false, err
	}
	return BuildImage(dir)
}
