package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Exit codes (DESIGN.md "CLI contract").
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// requestTimeout bounds one vswctl invocation's conversation with the daemon.
const requestTimeout = 30 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a mistake in how vswctl was invoked (exit 2).
type usageError struct {
	msg string
	cmd string // command path for the help hint, e.g. "vswctl add-port"
}

func (e *usageError) Error() string {
	if e.cmd == "" {
		return e.msg
	}
	return fmt.Sprintf("%s (see %s --help)", e.msg, e.cmd)
}

func usagef(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), cmd: cmd.CommandPath()}
}

// run executes vswctl with args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return runIO(args, os.Stdin, stdout, stderr)
}

// runIO is run with stdin given (the libvirt hook reads the domain XML).
func runIO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	a := &app{stdout: stdout, stderr: stderr}
	root := a.newRoot()
	root.SetArgs(hookArgv(root, args))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if a.client != nil {
		a.client.Close()
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "vswctl: "+oneLine(err.Error()))
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitError
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
