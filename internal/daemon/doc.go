// Package daemon is vswitchd's wiring: it opens the state store, picks and
// starts the datapath backends (the uplink's from --datapath, the VM
// ports' from --port-datapath; daemon.go), restores every configured port,
// follows interfaces coming and going through netlink (attaching a port the
// moment its tap appears), and implements the control API (api.Service) on
// top of all of that. Every configuration change is written to the store
// before the API answers, so a daemon killed at any point restarts with
// everything it acknowledged.
//
// Around the datapath it also runs:
//   - the 802.1Qbg EVB station (evb.go): LLDP on the uplink asking the
//     bridge for reflective relay; a refusal switches the datapath to VEB
//     while the configured mode stays VEPA;
//   - VSI registration (vdp.go): each MAC registered on an access port is a
//     VSI associated with the bridge over ECP/VDP;
//   - uplink hygiene (offload.go): receive coalescing (GRO/LRO) off while
//     running, restored at stop;
//   - Prometheus metrics (metrics.go) and the periodic FDB save (fdbsave.go).
package daemon
