package daemon

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// One lock per uplink: a second taker is refused and told who holds it;
// after release the uplink can be locked again; another uplink is free.
func TestLockUplink(t *testing.T) {
	dir := t.TempDir()
	release, err := lockUplinkIn(dir, "eth1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockUplinkIn(dir, "eth1")
	if err == nil {
		t.Fatal("a second lock on eth1 was granted")
	}
	if want := fmt.Sprintf("already served by vswitchd pid %d", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Fatalf("refusal %q does not say %q", err, want)
	}
	other, err := lockUplinkIn(dir, "eth2")
	if err != nil {
		t.Fatalf("eth2 refused while only eth1 is held: %v", err)
	}
	other()
	release()
	again, err := lockUplinkIn(dir, "eth1")
	if err != nil {
		t.Fatalf("eth1 refused after release: %v", err)
	}
	again()
}
