package libvirt

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultStateDir is where the system libvirtd keeps the status of its
// running QEMU domains (its qemu driver's stateDir): one NAME.xml each.
const DefaultStateDir = "/run/libvirt/qemu"

// MigratedOut reports whether libvirt's status of the domain says that it
// stops because it migrated away: its outgoing migration job ("async
// migration out") is in the phase where libvirt, the migration done,
// stops the source ("confirm3"). libvirt saves that status before it runs
// the "stopped end" hook and removes the file before "release end". A
// missing file is not an error (false): the domain was not running under
// this libvirtd, or it is "release end" already. The file is read up to
// 4 MiB; name must be a domain name (no '/').
func MigratedOut(stateDir, name string) (bool, error) {
	st, ok, err := readStatus(stateDir, name)
	return ok && st.Async == "migration out" && st.Phase == "confirm3", err
}

// MigratingIn reads libvirt's status of the domain at its "started begin":
// known is false when there is no status file (nothing to say either
// way), and in reports whether the domain starts for an incoming migration
// (its asynchronous job is "migration in"; libvirt 9.0 shows phase
// "prepare" then). A plain start has no such job. Same bounds as
// MigratedOut.
func MigratingIn(stateDir, name string) (in, known bool, err error) {
	st, ok, err := readStatus(stateDir, name)
	return ok && st.Async == "migration in", ok, err
}

// readStatus reads the domain's status file; ok is false when there is
// none.
func readStatus(stateDir, name string) (st Status, ok bool, err error) {
	if name == "" || strings.ContainsRune(name, '/') || name == "." || name == ".." {
		return Status{}, false, fmt.Errorf("libvirt: domain name %q cannot name a status file", name)
	}
	f, err := os.Open(filepath.Join(stateDir, name+".xml"))
	if errors.Is(err, fs.ErrNotExist) {
		return Status{}, false, nil
	}
	if err != nil {
		return Status{}, false, fmt.Errorf("libvirt: status of domain %s: %w", name, err)
	}
	defer f.Close()
	if st, err = ParseStatus(f); err != nil {
		return Status{}, false, fmt.Errorf("libvirt: status of domain %s: %w", name, err)
	}
	return st, true, nil
}

// Status is what vswitch reads of libvirt's status XML of a running
// domain (<domstatus>): its state and its asynchronous job, if any.
type Status struct {
	State, Reason string // e.g. "paused", "migration"
	Async, Phase  string // e.g. "migration out", "confirm3"; "" without a job
}

// ParseStatus reads libvirt's status XML of a domain (at most 4 MiB: a
// longer one is ErrTooLarge). Only the root's state and the <job>
// element's async and phase attributes are read.
func ParseStatus(r io.Reader) (Status, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxXML+1))
	if err != nil {
		return Status{}, fmt.Errorf("read: %w", err)
	}
	if len(raw) > maxXML {
		return Status{}, ErrTooLarge
	}
	var x struct {
		XMLName xml.Name
		State   string `xml:"state,attr"`
		Reason  string `xml:"reason,attr"`
		Job     struct {
			Async string `xml:"async,attr"`
			Phase string `xml:"phase,attr"`
		} `xml:"job"`
	}
	if err := xml.Unmarshal(raw, &x); err != nil {
		return Status{}, fmt.Errorf("status XML: %w", err)
	}
	if x.XMLName.Local != "domstatus" {
		return Status{}, fmt.Errorf("<%s> is not libvirt's <domstatus>", x.XMLName.Local)
	}
	return Status{State: x.State, Reason: x.Reason, Async: x.Job.Async, Phase: x.Job.Phase}, nil
}
