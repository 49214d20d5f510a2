package daemon

import (
	"os"
	"runtime"
)

// The Go runtime runs Go code on at most GOMAXPROCS Ps at a time (by
// default one per CPU), and a goroutine in a blocking system call keeps its
// P until the runtime's monitor thread (sysmon) takes it back: at once if
// no P is idle, else after 10 ms. Datapath workers do block in system calls
// while frames stream through their queue (they poll on their own thread
// then, see internal/rxwait; an idle worker waits in the netpoller and
// holds no P), one per uplink RX queue and one per attached port, so with
// one P per CPU every P can be held by a polling worker, and a goroutine
// that wakes (a worker whose frame came, the API) waits for sysmon to
// retake a P. sysmon runs at normal priority below the
// datapath (see pkg/datapath thread_linux.go): under load it waits for a
// CPU itself, and it keeps taking Ps from sleeping workers, tens of
// thousands of times a second, each a P that the worker must win back.
//
// So vswitchd keeps one P per worker on top of the CPUs the process started
// with. Extra Ps do not make more CPUs: they let a woken goroutine run at
// once while others sleep in poll(2). A GOMAXPROCS set in the environment
// is left alone.

// maxExtraProcs bounds the Ps added for workers.
const maxExtraProcs = 64

// procsFor is the GOMAXPROCS for base Ps (the CPUs) and workers workers.
func procsFor(base, workers int) int {
	return base + min(max(workers, 0), maxExtraProcs)
}

// procSizer keeps GOMAXPROCS at procsFor(the starting value, workers); its
// workers method is the datapath's Config.Workers.
type procSizer struct {
	base  int
	fixed bool // GOMAXPROCS came from the environment: not ours to change
}

func newProcSizer() *procSizer {
	return &procSizer{base: runtime.GOMAXPROCS(0), fixed: os.Getenv("GOMAXPROCS") != ""}
}

// workers sets GOMAXPROCS for n datapath workers.
func (p *procSizer) workers(n int) {
	if p.fixed {
		return
	}
	if want := procsFor(p.base, n); runtime.GOMAXPROCS(0) != want {
		runtime.GOMAXPROCS(want)
	}
}
