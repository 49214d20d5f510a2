package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"runtime/pprof"
	"strconv"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/vswitch/vswitch/internal/daemon"
	"github.com/vswitch/vswitch/internal/flagfile"
	"github.com/vswitch/vswitch/internal/logging"
	"github.com/vswitch/vswitch/internal/sdnotify"
	"github.com/vswitch/vswitch/internal/version"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// errHelp is parse's answer to --help (printed, exit 0).
var errHelp = errors.New("help")

// parse reads the command line, then the config file for what the command
// line left unset. Its errors are usage errors (exit 2); errHelp when
// --help was asked (the usage is printed on stdout).
func parse(args []string, stdout io.Writer) (*settings, flagfile.Origins, error) {
	s := &settings{}
	fs := newFlagSet(s)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprint(stdout, synopsis+"\n")
		fmt.Fprint(stdout, fs.FlagUsages())
		fmt.Fprintf(stdout, "\nThe single-dash spelling of the flags (-uplink eth0) is still accepted.\n")
	}
	if err := fs.Parse(gnuArgs(fs, args)); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, nil, errHelp
		}
		return nil, nil, fmt.Errorf("%w (see vswitchd --help)", err)
	}
	if fs.NArg() != 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q (see vswitchd --help)", fs.Arg(0))
	}
	if s.version || s.man {
		return s, nil, nil
	}
	origins := flagfile.Origins{}
	if s.config != "" {
		var err error
		if origins, err = flagfile.Apply(fs, s.config, !fs.Changed("config")); err != nil {
			return nil, nil, err
		}
	}
	return s, origins, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	// The error that ends vswitchd: one line on stderr, with priority err
	// when that is the journal (--log-format, auto until it is known).
	format := logging.Auto
	fail := func(code int, err error) int {
		logging.ErrorLine(stderr, format, "vswitchd: "+err.Error())
		return code
	}
	s, origins, err := parse(args, stdout)
	switch {
	case errors.Is(err, errHelp):
		return 0
	case err != nil:
		return fail(2, err)
	case s.version:
		fmt.Fprintln(stdout, version.Program("vswitchd"))
		return 0
	case s.man:
		if err := manPage().Render(stdout); err != nil {
			fmt.Fprintf(stderr, "vswitchd: %v\n", err)
			return 1
		}
		return 0
	}
	if f, err := logging.ParseFormat(s.logFormat); err == nil {
		format = f
	}
	if s.off.set() {
		if err := s.off.validate(); err != nil {
			return fail(2, err)
		}
		return offline(s.o.StatePath, s.off, stdout, stderr)
	}
	o, err := s.options()
	if err == nil {
		o.Logger, err = s.logger(stderr)
	}
	if err != nil {
		return fail(2, withOrigin(err, origins))
	}
	// What a package logs without being given the logger (slog.Default,
	// the log package: net/http's errors) takes the same form.
	slog.SetDefault(o.Logger)
	o.Build = version.Get()
	if o.Notify, err = sdnotify.FromEnv(); err != nil {
		o.Logger.Warn("not telling systemd about readiness", "err", err)
	}
	if path := os.Getenv("VSWITCHD_CPUPROFILE"); path != "" {
		// For profiling the datapath under the benchmark harness.
		f, err := os.Create(path)
		if err != nil {
			return fail(1, fmt.Errorf("VSWITCHD_CPUPROFILE: %w", err))
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(1, fmt.Errorf("start CPU profile: %w", err))
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The first signal starts a graceful stop (the daemon tells systemd);
	// a second one ends the process at once (default signal behaviour
	// again).
	context.AfterFunc(ctx, stop)
	if err := daemon.Run(ctx, o); err != nil {
		return fail(1, err)
	}
	return 0
}

// logger is the daemon's logger on stderr (--log-level, --log-format).
func (s *settings) logger(stderr io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(s.level)); err != nil {
		return nil, badFlag("log-level", "invalid --log-level %q: use debug, info, warn or error", s.level)
	}
	f, err := logging.ParseFormat(s.logFormat)
	if err != nil {
		return nil, badFlag("log-format", "%v", err)
	}
	return logging.New(stderr, f, lv), nil
}

// lookupGroup resolves a group name or number (from /etc/group; no cgo).
func lookupGroup(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("group %q: a group number is not negative", s)
		}
		return n, nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", s, err)
	}
	return strconv.Atoi(g.Gid)
}
