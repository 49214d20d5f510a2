// Package flagfile reads a program's settings from a file written in the
// words of its command-line flags, and applies them through the same
// pflag.FlagSet, so that a value is parsed and checked in one place
// whether it comes from the file or the command line.
//
// The format, one setting per line:
//
//	# a comment; blank lines are ignored
//	uplink = eth1
//	datapath afxdp            # '=' is optional; a comment may follow a value after a blank
//	socket-group = "libvirt"  # a value may be double-quoted (Go syntax)
//	metrics =                 # an empty value
//
// A name is a long flag name (a leading "--" is tolerated); a boolean flag
// may stand alone for true. Each name appears at most once. Flags already
// given on the command line are not touched: the command line wins. A flag
// annotated with NotInFile (a one-off command such as --check) cannot be
// set in the file. A UTF-8 byte order mark at the start of the file is
// skipped, and so is the carriage return of a CRLF line end. Every mistake is an error naming the file and line.
package flagfile
