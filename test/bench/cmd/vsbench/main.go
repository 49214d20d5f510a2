package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vswitch/vswitch/test/bench"
)

func main() {
	os.Exit(run())
}

func run() int {
	def := bench.DefaultConfig()
	var (
		duration   = flag.Duration("duration", def.Duration, "duration of each repetition of each test")
		reps       = flag.Int("reps", def.Reps, "repetitions per test (median reported)")
		contenders = flag.String("contenders", "all", "all, none (only the scaling phase), or a comma list of: "+strings.Join(bench.AllContenders, ","))
		short      = flag.Bool("short", false, "smoke run: 1 rep of 1s, 100 probes, linux-bridge, vswitchd-afpacket and macvlan-vepa (unless -contenders is given)")
		jsonPath   = flag.String("json", "bench-results.json", "write results as JSON to this file (empty: don't)")
		vswitchd   = flag.String("vswitchd", "", "vswitchd binary (default: go build ./cmd/vswitchd)")
		vswctl     = flag.String("vswctl", "", "vswctl binary (default: go build ./cmd/vswctl)")
		timeout    = flag.Duration("timeout", def.Timeout, "bound on the whole run")
		verbose    = flag.Bool("v", false, "debug logging")
		generator  = flag.String("gen", "ring", "generator: ring (TPACKET_V2 TX ring) or mmsg (sendmmsg)")
		probes     = flag.Int("probes", def.Probes, "latency probes per phase (light, under load); 0: no latency measurement")
		interval   = flag.Duration("probe-interval", def.ProbeInterval, "time between latency probes")
		scale      = flag.String("scale", joinInts(def.Scale), "scaling phase: port counts, comma-separated even numbers (VM 2k-1 -> VM 2k, all pairs at once); none: skip it (the default with -short)")
		scaleC     = flag.String("scale-contenders", strings.Join(bench.DefaultScaleContenders, ","), "rows of the scaling phase, a comma list of: "+strings.Join(bench.ScaleContenderNames, ","))
		scaleDur   = flag.Duration("scale-duration", def.ScaleDuration, "flood duration of each scaling step (one repetition)")
		scaleProbe = flag.Int("scale-probes", def.ScaleProbes, "latency probes per scaling step, on pair 1 (0: none)")
		scaleLoad  = flag.Float64("scale-load-pps", def.ScaleLoadPPS, "frames/s every pair sends while the scaling step's probes run (light load)")
	)
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "vsbench: unexpected arguments:", flag.Args())
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))

	cfg := def
	var err error
	if *short {
		cfg = bench.ShortConfig()
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["duration"] || !*short {
		cfg.Duration = *duration
	}
	if set["reps"] || !*short {
		cfg.Reps = *reps
	}
	if set["timeout"] || !*short {
		cfg.Timeout = *timeout
	}
	if set["probes"] || !*short {
		cfg.Probes = *probes
	}
	if set["probe-interval"] || !*short {
		cfg.ProbeInterval = *interval
	}
	if set["contenders"] || !*short {
		cfg.Contenders = nil
		if *contenders != "all" {
			cfg.Contenders = strings.Split(*contenders, ",")
		}
	}
	if set["scale"] || !*short {
		if cfg.Scale, err = bench.ParseScale(*scale); err != nil {
			fmt.Fprintln(os.Stderr, "vsbench:", err)
			return 2
		}
	}
	if set["scale-contenders"] || !*short {
		cfg.ScaleContenders = strings.Split(*scaleC, ",")
	}
	if set["scale-duration"] || !*short {
		cfg.ScaleDuration = *scaleDur
	}
	if set["scale-probes"] || !*short {
		cfg.ScaleProbes = *scaleProbe
	}
	if set["scale-load-pps"] || !*short {
		cfg.ScaleLoadPPS = *scaleLoad
	}
	cfg.VswitchdPath, cfg.VswctlPath = *vswitchd, *vswctl
	cfg.Progress = os.Stderr
	cfg.Generator = *generator

	// Ctrl-C / SIGTERM cancel the run; Run's teardown still removes every
	// namespace and process it created before we exit.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vsbench:", err)
		return 1
	}
	if err := res.WriteTable(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "vsbench:", err)
		return 1
	}
	if *jsonPath != "" {
		if err := res.WriteJSON(*jsonPath); err != nil {
			fmt.Fprintln(os.Stderr, "vsbench:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "wrote %s (%.0fs)\n", *jsonPath, time.Since(start).Seconds())
	}
	if ctx.Err() != nil {
		return 1
	}
	return 0
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}
