package deb

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Name is the binary package's name.
const Name = "vswitch"

var (
	// git describe --tags --always [--dirty] output.
	describeHash = regexp.MustCompile(`^([0-9a-f]{7,40})(-dirty)?$`)
	describeTag  = regexp.MustCompile(`^(.+?)(?:-([0-9]+)-g([0-9a-f]{7,40}))?(-dirty)?$`)
	upstreamOK   = regexp.MustCompile(`^[0-9][0-9A-Za-z.+~]*$`)
	revisionOK   = regexp.MustCompile(`^[0-9A-Za-z.+~]+$`)
	placeholder  = regexp.MustCompile(`@[A-Z_]+@`)
)

// Version returns the Debian version (upstream-revision) of a build whose
// `git describe --tags --always --dirty` says describe, from a commit made
// at commitTime; see the package documentation for the scheme.
func Version(describe string, commitTime time.Time, revision string) (string, error) {
	if !revisionOK.MatchString(revision) {
		return "", fmt.Errorf("invalid Debian revision %q: use letters, digits and . + ~ (e.g. 1)", revision)
	}
	d := strings.TrimSpace(describe)
	// Date and time: with the date alone, two commits of one day would
	// sort by their hashes, so the later build could be the "older"
	// version and apt would not upgrade to it.
	date := commitTime.UTC().Format("20060102.150405")
	if m := describeHash.FindStringSubmatch(d); m != nil {
		return "0.0~git" + date + "." + m[1] + dirty(m[2]) + "-" + revision, nil
	}
	m := describeTag.FindStringSubmatch(d)
	if m == nil || d == "" {
		return "", fmt.Errorf("cannot derive a Debian version from %q (not git describe output): set DEB_VERSION", describe)
	}
	tag := strings.ReplaceAll(strings.TrimPrefix(m[1], "v"), "-", "~") // v1.2-rc1: 1.2~rc1, before 1.2
	if !upstreamOK.MatchString(tag) {
		return "", fmt.Errorf("cannot derive a Debian version from tag %q: a Debian version starts with a digit and holds letters, digits and . + ~ - only (tag v1.2.3, or set DEB_VERSION)", m[1])
	}
	v := tag
	if m[2] != "" {
		v += "+git" + date + "." + m[3]
	}
	return v + dirty(m[4]) + "-" + revision, nil
}

func dirty(s string) string {
	if s != "" {
		return ".dirty"
	}
	return ""
}

// Arch is the Debian architecture of Go's GOARCH.
func Arch(goarch string) (string, error) {
	switch goarch {
	case "amd64", "arm64", "riscv64", "s390x", "loong64":
		return goarch, nil
	case "386":
		return "i386", nil
	case "arm":
		return "armhf", nil
	case "ppc64le":
		return "ppc64el", nil
	case "mips64le":
		return "mips64el", nil
	}
	return "", fmt.Errorf("no Debian architecture for GOARCH %q", goarch)
}

// Meta is what the package's metadata needs beyond the staged files.
type Meta struct {
	Version    string    // Debian version, from Version
	Arch       string    // Debian architecture, from Arch
	Describe   string    // git describe, for the changelog
	CommitTime time.Time // the changelog entry's date
}

// Stage turns root, a tree `make install DESTDIR=root PREFIX=/usr` made,
// into a package tree: the docs' copyright and changelog, and DEBIAN/ from
// the templates and scripts in contrib (contrib/debian).
func Stage(root, contrib string, m Meta) error {
	doc := filepath.Join(root, "usr/share/doc", Name)
	if err := os.MkdirAll(doc, 0o755); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(contrib, "copyright"), filepath.Join(doc, "copyright"), 0o644); err != nil {
		return err
	}
	// The lintian tags this package accepts, each with its reason.
	ov := filepath.Join(root, "usr/share/lintian/overrides")
	if err := os.MkdirAll(ov, 0o755); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(contrib, "lintian-overrides"), filepath.Join(ov, Name), 0o644); err != nil {
		return err
	}
	tmpl, err := os.ReadFile(filepath.Join(contrib, "control"))
	if err != nil {
		return err
	}
	maint := field(tmpl, "Maintainer")
	if maint == "" {
		return fmt.Errorf("%s: no Maintainer field", filepath.Join(contrib, "control"))
	}
	cl, err := changelog(m, maint)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(doc, "changelog.Debian.gz"), cl, 0o644); err != nil {
		return err
	}

	dir := filepath.Join(root, "DEBIAN")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if err := copyFile(filepath.Join(contrib, s), filepath.Join(dir, s), 0o755); err != nil {
			return err
		}
	}
	files, size, err := walk(root)
	if err != nil {
		return err
	}
	var conf, sums bytes.Buffer
	for _, f := range files {
		if strings.HasPrefix(f, "etc/") {
			fmt.Fprintf(&conf, "/%s\n", f)
			continue
		}
		sum, err := md5File(filepath.Join(root, f))
		if err != nil {
			return err
		}
		fmt.Fprintf(&sums, "%s  %s\n", sum, f)
	}
	if conf.Len() > 0 {
		if err := os.WriteFile(filepath.Join(dir, "conffiles"), conf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "md5sums"), sums.Bytes(), 0o644); err != nil {
		return err
	}
	control := strings.NewReplacer("@VERSION@", m.Version, "@ARCH@", m.Arch,
		"@INSTALLED_SIZE@", strconv.FormatInt(size, 10)).Replace(string(tmpl))
	if p := placeholder.FindString(control); p != "" {
		return fmt.Errorf("%s: unknown placeholder %s", filepath.Join(contrib, "control"), p)
	}
	return os.WriteFile(filepath.Join(dir, "control"), []byte(control), 0o644)
}

// Build runs dpkg-deb on the staged root and returns the package's path in
// outDir: NAME_VERSION_ARCH.deb, files owned by root.
func Build(root, outDir string, m Meta) (string, error) {
	out := filepath.Join(outDir, fmt.Sprintf("%s_%s_%s.deb", Name, m.Version, m.Arch))
	cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			return "", fmt.Errorf("dpkg-deb not found (Debian: apt-get install dpkg): %w", err)
		}
		return "", fmt.Errorf("dpkg-deb --build: %w\n%s", err, b)
	}
	return out, nil
}

// changelog is changelog.Debian.gz: one entry for this build.
func changelog(m Meta, maint string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s (%s) unstable; urgency=medium\n\n", Name, m.Version)
	fmt.Fprintf(&b, "  * Built from git %s.\n\n", m.Describe)
	fmt.Fprintf(&b, " -- %s  %s\n", maint, m.CommitTime.UTC().Format(time.RFC1123Z))
	var z bytes.Buffer
	w, err := gzip.NewWriterLevel(&z, gzip.BestCompression) // no name, no time: gzip -9n
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return z.Bytes(), nil
}

// walk lists root's files (not directories, not DEBIAN/) as paths
// relative to root, sorted, and the Installed-Size in KiB as
// dpkg-gencontrol counts it: each file's size rounded up to KiB, one per
// directory and symlink.
func walk(root string) ([]string, int64, error) {
	var files []string
	var kib int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "DEBIAN" && d.IsDir() {
			return filepath.SkipDir
		}
		if rel == "." {
			return nil
		}
		switch {
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			kib += (info.Size() + 1023) / 1024
			files = append(files, filepath.ToSlash(rel))
		default:
			kib++
		}
		return nil
	})
	sort.Strings(files)
	return files, kib, err
}

func md5File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		return err
	}
	return os.Chmod(dst, mode) // WriteFile keeps an existing file's mode
}

// field returns the value of a one-line field of a control file.
func field(control []byte, name string) string {
	sc := bufio.NewScanner(bytes.NewReader(control))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
