package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/vswitch/vswitch/internal/store"
)

// offlineArgs are the flags that act on the state file instead of running
// the daemon; they work while the daemon cannot start, and refuse a file a
// running daemon holds.
type offlineArgs struct {
	check    bool   // --check: report on the file; exit 0 when sound
	salvage  string // --salvage NEWFILE: copy its usable ports into NEWFILE
	dropPort string // --drop-port NAME: delete one port record
}

func (a offlineArgs) set() bool { return a.check || a.salvage != "" || a.dropPort != "" }

// validate refuses combinations that make no sense (usage, exit 2).
func (a offlineArgs) validate() error {
	if a.dropPort != "" && (a.check || a.salvage != "") {
		return errors.New("--drop-port does not combine with --check or --salvage: run them one after the other")
	}
	return nil
}

// offline runs the offline command on the state file at path: the report
// goes to stdout, an error to stderr as one line. Exit codes: --check 0
// when the daemon starts with the file and every port in it, 1 otherwise;
// --salvage 0 when NEWFILE was written (the report says what could not be
// copied); --drop-port 0 when the record was deleted.
func offline(path string, a offlineArgs, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		if errors.Is(err, store.ErrLocked) {
			fmt.Fprintf(stderr, "vswitchd: state file %s is in use by a running vswitchd: stop it first, or change its ports with vswctl\n", path)
			return 1
		}
		fmt.Fprintf(stderr, "vswitchd: %v\n", err)
		return 1
	}
	switch {
	case a.dropPort != "":
		if err := store.DropPort(path, a.dropPort); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "dropped port %s from %s\n", a.dropPort, path)
		return 0
	case a.salvage != "":
		r, err := store.Salvage(path, a.salvage)
		if r != nil {
			r.WriteTo(stdout)
		}
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "salvaged %d ports into %s (%d unusable records not copied); %s is left as it was: start vswitchd with --state %s\n",
			len(r.Ports), a.salvage, len(r.Bad), path, a.salvage)
		return 0
	default:
		r, err := store.Check(path)
		if err != nil {
			return fail(err)
		}
		r.WriteTo(stdout)
		if !r.OK() {
			return 1
		}
		return 0
	}
}
