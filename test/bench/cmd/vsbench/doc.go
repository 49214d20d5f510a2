// Command vsbench runs the vswitch benchmark harness: every contender switch
// in its own namespace topology, the same generator and sink, a table on
// stdout and the same results as JSON.
//
//	go run ./test/bench/cmd/vsbench -json bench-results.json
//	go run ./test/bench/cmd/vsbench -short
//	go run ./test/bench/cmd/vsbench -contenders macvlan-vepa,linux-bridge -duration 2s -reps 1
//	go run ./test/bench/cmd/vsbench -contenders none -scale 2,16,64   # only the scaling phase
package main
