package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/vswitch/vswitch/internal/capture"
	"github.com/vswitch/vswitch/internal/pcapfile"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
)

// captureOpts are vswctl capture's flags.
type captureOpts struct {
	file      string
	count     int
	timeout   time.Duration
	direction string
	format    string
	snaplen   int
	bufferKiB int
	local     bool
}

// captureCmd records a port's (or the uplink's) frames into a capture
// file: streamed by vswitchd from inside its datapath (GET /v1/capture),
// or, with --local, taken by vswctl itself with a packet socket in its own
// network namespace.
func (a *app) captureCmd() *cobra.Command {
	var o captureOpts
	cmd := &cobra.Command{
		Use:   "capture IF -w FILE|- [-c COUNT] [--direction in|out|both] [--format pcapng|pcap]",
		Short: "Capture a port's or the uplink's frames as vswitchd sees them, to a pcapng or pcap file",
		Long: `Capture the frames of port or uplink IF into FILE (- for stdout), taken by
vswitchd inside its datapath, so on every backend (AF_PACKET, AF_XDP) it
holds both directions:

  port in      what the VM sent, before any check (frames vswitchd drops too)
  port out     what vswitchd delivered to the VM
  uplink out   what vswitchd sent to the network, with its 802.1Q tag (VID
               and PCP) and S-tag, and its own LLDP and ECP frames
  uplink in    what the network sent, as received (tags on, LLDP/ECP too)

The file is pcapng, where every frame says its direction (tshark:
frame.packet_flags_direction; 1 inbound, 2 outbound), or classic pcap
(--format pcap, or a FILE named *.pcap, as before), which cannot say it
(capture one --direction).
Output is written as frames come, so "vswctl capture vnet0 -w - | tshark -r -"
or "| wireshark -k -i -" shows them live.

The capture stops after COUNT frames, after --timeout, on Ctrl-C or
SIGTERM, or when vswitchd ends it (the port was deleted, vswitchd stopped);
the file is complete in every case and ends with the capture's statistics.
vswitchd never waits for a capture: frames that come faster than they are
written (a slow disk, a reader of stdout that stops) are dropped and
counted, in the summary line ("N dropped") and in the file. At most 8
captures run at once; one more is refused, naming the running ones. The
summary goes to stdout, or to stderr with -w -.

With --local, vswctl captures IF itself, without vswitchd: a packet socket
(AF_PACKET) in vswctl's own network namespace, for any interface, or when
vswitchd is down. It needs root. It sees what IF receives and what the
host's stack sends, not what vswitchd sends (PACKET_QDISC_BYPASS) nor, under
AF_XDP, what vswitchd receives; VLAN tags the kernel keeps as metadata are
put back. At most 8 local captures run at once on a host.`,
		Example: `  vswctl capture vnet1 -w vnet1.pcapng
  vswctl capture vnet1 -w - | tshark -r -
  vswctl capture eth1 -w - -c 100 --format pcap | tcpdump -e -n -r -
  vswctl capture vnet2 -w /tmp/x.pcapng --direction out --timeout 30s
  vswctl capture vnet2 -w /tmp/x.pcapng --local`,
		Args: exactArgs(1, "one interface name (IF)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.file == "" {
				return usagef(cmd, "capture needs -w FILE (- for stdout)")
			}
			ifname := args[0]
			if err := o.check(ifname); err != nil {
				return err
			}
			// Not cmd.Context(): its request timeout is for API calls, and a
			// capture runs until told to stop.
			ctx, stop := signal.NotifyContext(context.WithoutCancel(cmd.Context()), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			// The first signal ends the capture well; a second one, while
			// the end is written, kills vswctl as usual.
			context.AfterFunc(ctx, stop)
			if o.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, o.timeout)
				defer cancel()
			}
			if o.local {
				return a.captureLocal(ctx, ifname, o)
			}
			return a.captureDaemon(ctx, ifname, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "write", "w", "", "capture `FILE` to write (- for stdout)")
	f.IntVarP(&o.count, "count", "c", 0, "stop after `COUNT` frames (0 = until interrupted)")
	f.DurationVar(&o.timeout, "timeout", 0, "stop after `DURATION`, e.g. 30s (0 = no limit)")
	f.StringVar(&o.direction, "direction", "both", "`WHICH` frames: in (received on IF), out (sent on IF) or both")
	f.StringVar(&o.format, "format", "", "file `FORMAT`: pcapng (with each frame's direction) or pcap (default: pcap for a FILE ending in .pcap, else pcapng)")
	f.IntVarP(&o.snaplen, "snaplen", "s", 0, "keep at most `BYTES` of each frame (0 = whole frames)")
	f.IntVarP(&o.bufferKiB, "buffer-size", "B", 0, "vswitchd's buffer for this capture in `KiB` (0 = its default, 4096)")
	f.BoolVar(&o.local, "local", false, "capture with a packet socket in vswctl's namespace, without vswitchd")
	_ = cmd.RegisterFlagCompletionFunc("direction", cobra.FixedCompletions([]string{"in", "out", "both"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"pcapng", "pcap"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// check judges the flags (the daemon bounds the snaplen and buffer
// itself and says so).
func (o *captureOpts) check(ifname string) error {
	if err := port.CheckName(ifname); err != nil {
		return err
	}
	if o.count < 0 {
		return fmt.Errorf("invalid count %d: must be 0 (no limit) or more", o.count)
	}
	if o.timeout < 0 {
		return fmt.Errorf("invalid timeout %v: must be 0 (no limit) or more, e.g. 30s", o.timeout)
	}
	if o.direction == "" {
		o.direction = api.DirectionBoth
	}
	if err := api.CheckDirection(o.direction); err != nil {
		return err
	}
	if o.format == "" {
		o.format = defaultFormat(o.file)
	}
	if _, err := pcapfile.ParseFormat(o.format); err != nil {
		return err
	}
	if o.snaplen < 0 || o.snaplen > pcapfile.MaxSnaplen {
		return fmt.Errorf("invalid snaplen %d: must be 1-%d (0: whole frames)", o.snaplen, pcapfile.MaxSnaplen)
	}
	if o.bufferKiB < 0 {
		return fmt.Errorf("invalid buffer size %d KiB: must be 0 (vswitchd's default) or more", o.bufferKiB)
	}
	if o.local && o.bufferKiB != 0 {
		return errors.New("-B sets vswitchd's buffer: a --local capture has none (it uses an 8 MiB socket buffer)")
	}
	return nil
}

// defaultFormat is the format of a capture to file without --format:
// classic pcap for FILE.pcap, as vswctl capture always wrote there (and
// scripts read it with pcap-only readers), else pcapng.
func defaultFormat(file string) string {
	if file != "-" && strings.EqualFold(filepath.Ext(file), ".pcap") {
		return pcapfile.Pcap.String()
	}
	return pcapfile.Pcapng.String()
}

// output is where a capture writes: FILE (created only once the capture
// started, so a refused one leaves it alone) or stdout.
type output struct {
	w       io.Writer
	f       *os.File
	where   string    // "stdout" or the file name
	summary io.Writer // where the summary line goes
}

func (a *app) openOutput(file string) (*output, error) {
	if file == "-" {
		return &output{w: a.stdout, where: "stdout", summary: a.stderr}, nil
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %v (choose a writable path with -w)", file, pathErr(err))
	}
	return &output{w: f, f: f, where: file, summary: a.stdout}, nil
}

// close closes FILE; err is the capture's error so far.
func (o *output) close(err error) error {
	if o.f == nil {
		return err
	}
	if cerr := o.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close %s: %w", o.where, cerr)
	}
	return err
}

// captureSummary is the -o json summary of a capture to a file.
type captureSummary struct {
	Interface string `json:"interface"`
	File      string `json:"file"`
	Frames    uint64 `json:"frames"`
	Dropped   uint64 `json:"dropped"`
	// Seen (vswitchd's captures): frames of the direction(s) that
	// crossed IF while it ran (frames + dropped).
	Seen      uint64 `json:"seen,omitempty"`
	Direction string `json:"direction"`
	Format    string `json:"format"`
	// Source: vswitchd (its datapath) or local (vswctl's packet socket).
	Source string `json:"source"`
}

// summarize prints the summary: a line, or JSON with -o json and a file.
func (a *app) summarize(o *output, s captureSummary, line string) error {
	if a.output == "json" && o.f != nil {
		out, _ := json.MarshalIndent(s, "", "  ")
		_, err := fmt.Fprintf(o.summary, "%s\n", out)
		return err
	}
	_, err := fmt.Fprintln(o.summary, line)
	return err
}

// stopGrace is how long vswctl waits, once it asked vswitchd to end a
// capture, for the rest of the stream while nothing arrives.
const stopGrace = 5 * time.Second

// captureDaemon streams vswitchd's capture of IF into the output until
// vswitchd ends it or ctx is done (signal, --timeout), when it asks
// vswitchd to end it and writes what still comes: the file ends complete,
// with its statistics.
func (a *app) captureDaemon(ctx context.Context, ifname string, o captureOpts) error {
	req := api.CaptureRequest{Port: ifname, Direction: o.direction, Count: o.count, Snaplen: o.snaplen,
		BufferKiB: o.bufferKiB, Format: o.format}
	// The stream lives until it ends, not until ctx: Stop ends it well.
	// Until vswitchd answers, though, ctx (a signal, --timeout) and the
	// request timeout of every vswctl call end the wait: a vswitchd that
	// is stuck must not hold a script's capture past its --timeout.
	cr, err := a.startCapture(ctx, req)
	switch {
	case api.IsUnreachable(err):
		return fmt.Errorf("%v; vswctl capture --local %s captures with a packet socket instead", err, ifname)
	case api.CodeOf(err) == api.CodeNotFound:
		return fmt.Errorf("%v; vswctl capture --local %s captures any interface", err, ifname)
	case err != nil:
		return err
	}
	defer cr.Close()
	out, err := a.openOutput(o.file)
	if err != nil {
		return err
	}

	// Copy in the background; stop asks vswitchd to end, and the copy
	// ends with the stream.
	var writing atomic.Bool // the copy waits for the output, not the stream
	var bytes atomic.Int64
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := cr.Read(buf)
			if n > 0 {
				writing.Store(true)
				_, werr := out.w.Write(buf[:n])
				writing.Store(false)
				bytes.Add(int64(n))
				if werr != nil {
					done <- fmt.Errorf("write %s: %w", out.where, werr)
					return
				}
			}
			if err != nil {
				done <- err
				return
			}
		}
	}()
	var copyErr error
	select {
	case copyErr = <-done:
	case <-ctx.Done():
		if err := cr.Stop(); err != nil {
			cr.Close()
		}
		copyErr = waitStream(done, &writing, &bytes, cr)
	}
	if errors.Is(copyErr, io.EOF) {
		copyErr = nil
	}
	sum, ok := cr.Summary()
	err = out.close(nil)
	switch {
	case copyErr != nil:
		return fmt.Errorf("the capture on %s was cut short: %v; the frames so far are in %s, its last one may be partial", ifname, copyErr, out.where)
	case !ok:
		return fmt.Errorf("vswitchd ended the capture on %s without its summary (did vswitchd stop?); the frames so far are in %s, its last one may be partial", ifname, out.where)
	case err != nil:
		return err
	case sum.Ended != "":
		return fmt.Errorf("vswitchd ended the capture on %s after %d frames (%d dropped): %s; they are saved in %s",
			ifname, sum.Frames, sum.Dropped, strings.TrimPrefix(sum.Ended, "capture ended: "), out.where)
	}
	// The first line is the one vswctl always printed (scripts read the
	// file name at its end); the drops follow on their own, as tcpdump's
	// "dropped by kernel" does.
	line := fmt.Sprintf("captured %d frames on %s to %s\n%d frames dropped", sum.Frames, ifname, out.where, sum.Dropped)
	if sum.Dropped > 0 {
		line += " (the capture was not read fast enough: write to a faster disk, capture one --direction, or raise -B)"
	}
	return a.summarize(out, captureSummary{Interface: ifname, File: o.file, Frames: sum.Frames, Dropped: sum.Dropped,
		Seen: sum.Seen, Direction: o.direction, Format: o.format, Source: "vswitchd"}, line)
}

// startCapture asks vswitchd for the capture and waits for its answer
// until ctx is done or requestTimeout passes; the stream it returns lives
// on without them.
func (a *app) startCapture(ctx context.Context, req api.CaptureRequest) (*api.CaptureReader, error) {
	wait, cancelWait := context.WithTimeout(ctx, requestTimeout)
	defer cancelWait()
	stream, abort := context.WithCancel(context.WithoutCancel(ctx))
	var mu sync.Mutex
	answered := false
	stop := context.AfterFunc(wait, func() {
		mu.Lock()
		defer mu.Unlock()
		if !answered {
			abort()
		}
	})
	defer stop()
	cr, err := a.api().Capture(stream, req)
	mu.Lock()
	answered = true
	aborted := stream.Err() != nil
	mu.Unlock()
	if aborted {
		if cr != nil {
			cr.Close()
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("vswitchd at %s did not start the capture on %s before --timeout or the signal", a.api().Socket(), req.Port)
		}
		return nil, fmt.Errorf("vswitchd at %s did not answer the capture request on %s within %v (is it stuck? see its log)", a.api().Socket(), req.Port, requestTimeout)
	}
	if err != nil {
		abort()
		return nil, err
	}
	return cr, nil // stream stays live: it is the stream's context
}

// waitStream waits for the end of a stream vswitchd was asked to end. It
// gives up (closing the stream) after stopGrace without a byte from
// vswitchd; time spent writing to a slow output does not count.
func waitStream(done <-chan error, writing *atomic.Bool, bytes *atomic.Int64, cr *api.CaptureReader) error {
	t := time.NewTicker(stopGrace)
	defer t.Stop()
	last := bytes.Load()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			if n := bytes.Load(); n != last || writing.Load() {
				last = n
				continue
			}
			cr.Close()
			err := <-done
			if err == nil || errors.Is(err, io.EOF) {
				err = errors.New("vswitchd did not end it")
			}
			return fmt.Errorf("no answer %v after asking vswitchd to end it (%v)", stopGrace, err)
		}
	}
}

// captureLocal captures IF with a packet socket in vswctl's namespace.
func (a *app) captureLocal(ctx context.Context, ifname string, o captureOpts) error {
	format, _ := pcapfile.ParseFormat(o.format) // checked
	// Socket first: a wrong interface name must not truncate FILE.
	c, err := a.captureLimit.Open(ifname)
	switch {
	case errors.Is(err, capture.ErrTooManySessions):
		return fmt.Errorf("%v: stop one of them (Ctrl-C, or kill PID) and try again", err)
	case errors.Is(err, capture.ErrNoInterface):
		return fmt.Errorf("no interface %s in this network namespace (see ip link; vswctl must run where vswitchd runs)", ifname)
	case errors.Is(err, capture.ErrPermission):
		return fmt.Errorf("capture needs root (CAP_NET_RAW): run vswctl capture as root")
	case err != nil:
		return err
	}
	defer c.Close()
	out, err := a.openOutput(o.file)
	if err != nil {
		return err
	}
	st, err := c.Run(ctx, out.w, capture.Options{Count: o.count, Format: format, Direction: o.direction, Snaplen: o.snaplen})
	err = out.close(err)
	if err != nil {
		if errors.Is(err, capture.ErrInterfaceGone) {
			return fmt.Errorf("interface %s disappeared (deleted or moved to another namespace) after %d frames; they are saved in %s", ifname, st.Frames, out.where)
		}
		return fmt.Errorf("%v (%d frames saved in %s)", err, st.Frames, out.where)
	}
	line := fmt.Sprintf("captured %d frames on %s to %s", st.Frames, ifname, out.where)
	if st.Drops > 0 {
		line += fmt.Sprintf(" (%d more dropped by the kernel: write to a faster disk or add -c)", st.Drops)
	}
	return a.summarize(out, captureSummary{Interface: ifname, File: o.file, Frames: uint64(st.Frames), Dropped: uint64(st.Drops),
		Direction: o.direction, Format: o.format, Source: "local"}, line)
}

// pathErr drops the "open FILE:" prefix of an *os.PathError.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
