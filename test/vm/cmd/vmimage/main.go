// Command vmimage prepares the guest image of the VM tests (test/vm): it
// fetches Debian's cloud kernel into the cache when the cache has none and
// builds the initramfs. `make deps` runs it; it prints nothing when the
// image is already there, and one line per step otherwise.
//
//	go run ./test/vm/cmd/vmimage [-cache DIR] [-v]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/vswitch/vswitch/test/vm"
)

func main() {
	dir := flag.String("cache", vm.CacheDir(), "cache directory (VSWITCH_VM_CACHE)")
	verbose := flag.Bool("v", false, "print the image's paths and sizes even when nothing was built")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "vmimage: "+format+"\n", args...) }
	start := time.Now()
	_, hadKernel, _ := vm.FindKernel(*dir)
	img, built, err := vm.Prepare(ctx, *dir, logf)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmimage: %v\n", err)
		os.Exit(1)
	}
	if built || hadKernel == "" || *verbose {
		st, _ := os.Stat(img.Initrd)
		kst, _ := os.Stat(img.Kernel)
		var isz, ksz int64
		if st != nil {
			isz = st.Size()
		}
		if kst != nil {
			ksz = kst.Size()
		}
		logf("guest image ready in %.1f s: kernel %s (%.1f MB), initramfs %s (%.2f MB)",
			time.Since(start).Seconds(), img.Kernel, float64(ksz)/1e6, img.Initrd, float64(isz)/1e6)
	}
}
