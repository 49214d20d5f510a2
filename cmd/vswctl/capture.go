package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/vswitch/vswitch/internal/capture"
	"github.com/vswitch/vswitch/pkg/port"
)

// captureCmd records a port's (or the uplink's) frames into a pcap file. It
// does not talk to vswitchd: it opens a packet socket in vswctl's own
// network namespace, which must be the one vswitchd runs in.
func (a *app) captureCmd() *cobra.Command {
	var (
		file    string
		count   int
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "capture IF -w FILE.pcap [-c COUNT]",
		Short: "Capture an interface's frames (VLAN tags intact) to a pcap file",
		Long: `Capture the frames of interface IF into a pcap file (Ethernet, snaplen 65535,
nanosecond timestamps): those it receives, and those the host's stack sends.
Frames vswitchd itself sends bypass the kernel's capture point
(PACKET_QDISC_BYPASS) and are not seen: on a VM port you see what the VM sends,
on the uplink what the bridge sends (with its tags; in VEPA that includes the
VMs' frames it reflects). VLAN tags the kernel keeps as metadata are put back
into the frames. Runs locally: vswctl must run as root in vswitchd's network
namespace. Stops after COUNT frames, after --timeout, on Ctrl-C/SIGTERM, or
when IF disappears; what was captured is always saved. At most 8 captures run
at once on a host (each costs an 8 MiB socket buffer and a copy of every frame
of its interface); one more is refused and the message names the running ones.`,
		Example: `  vswctl capture vnet1 -w vnet1.pcap
  vswctl capture uplink0 -w - -c 100 | tcpdump -e -n -r -
  vswctl capture vnet2 -w /tmp/x.pcap --timeout 30s`,
		Args: exactArgs(1, "one interface name (IF)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usagef(cmd, "capture needs -w FILE.pcap")
			}
			ifname := args[0]
			if err := port.CheckName(ifname); err != nil {
				return err
			}
			if count < 0 {
				return fmt.Errorf("invalid count %d: must be 0 (no limit) or more", count)
			}
			if timeout < 0 {
				return fmt.Errorf("invalid timeout %v: must be 0 (no limit) or more, e.g. 30s", timeout)
			}
			// Not cmd.Context(): its request timeout is for API calls, and a
			// capture runs until told to stop.
			ctx, stop := signal.NotifyContext(context.WithoutCancel(cmd.Context()), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return a.capture(ctx, ifname, file, capture.Options{Count: count, Timeout: timeout})
		},
	}
	cmd.Flags().StringVarP(&file, "write", "w", "", "pcap `FILE` to write (- for stdout)")
	cmd.Flags().IntVarP(&count, "count", "c", 0, "stop after `COUNT` frames (0 = until interrupted)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "stop after `DURATION`, e.g. 30s (0 = no limit)")
	return cmd
}

func (a *app) capture(ctx context.Context, ifname, file string, opt capture.Options) error {
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

	var (
		w       io.Writer = a.stdout
		f       *os.File
		where   = file
		summary = a.stdout // where the "captured N frames" line goes
	)
	if file == "-" {
		where, summary = "stdout", a.stderr
	} else {
		if f, err = os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
			return fmt.Errorf("cannot write %s: %v (choose a writable path with -w)", file, pathErr(err))
		}
		w = f
	}

	st, err := c.Run(ctx, w, opt)
	if f != nil {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", file, cerr)
		}
	}
	if err != nil {
		if errors.Is(err, capture.ErrInterfaceGone) {
			return fmt.Errorf("interface %s disappeared (deleted or moved to another namespace) after %d frames; they are saved in %s", ifname, st.Frames, where)
		}
		return fmt.Errorf("%v (%d frames saved in %s)", err, st.Frames, where)
	}
	if a.output == "json" && file != "-" {
		out, _ := json.MarshalIndent(struct {
			Interface string `json:"interface"`
			File      string `json:"file"`
			Frames    int    `json:"frames"`
			Dropped   uint32 `json:"dropped"`
		}{ifname, file, st.Frames, st.Drops}, "", "  ")
		_, err := fmt.Fprintf(summary, "%s\n", out)
		return err
	}
	msg := fmt.Sprintf("captured %d frames on %s to %s", st.Frames, ifname, where)
	if st.Drops > 0 {
		msg += fmt.Sprintf(" (%d more dropped by the kernel: write to a faster disk or add -c)", st.Drops)
	}
	_, err = fmt.Fprintln(summary, msg)
	return err
}

// pathErr drops the "open FILE:" prefix of an *os.PathError.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
