package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pinFromEnv pins the calling (locked) thread to the CPU VSBENCH_PIN names
// for role ("prober=0,reader=0,responder=1"): a debugging aid for studying
// where wake-ups land.
func pinFromEnv(role string) {
	for _, kv := range strings.Split(os.Getenv("VSBENCH_PIN"), ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k != role {
			continue
		}
		cpu, err := strconv.Atoi(v)
		if err != nil || cpu < 0 {
			fmt.Fprintf(os.Stderr, "vsbench: VSBENCH_PIN %s=%q: not a CPU number, not pinned\n", role, v)
			return
		}
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			fmt.Fprintf(os.Stderr, "vsbench: VSBENCH_PIN %s=%d: %v, not pinned\n", role, cpu, err)
		}
	}
}
