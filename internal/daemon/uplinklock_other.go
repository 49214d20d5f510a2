//go:build !linux

package daemon

func lockUplink(string) (func(), error) { return func() {}, nil }
