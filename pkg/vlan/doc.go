// Package vlan parses, pushes and pops IEEE 802.1Q (C-tag) and 802.1ad
// (S-tag) VLAN tags on Ethernet frames, and parses VID sets such as
// "10,20-30".
//
// It is pure: no I/O, no allocation on the frame paths. A tagged frame looks
// like this on the wire:
//
//	dst(6) src(6) [TPID(2) TCI(2)]... ethertype(2) payload
//
// TPID is 0x8100 for a customer tag, 0x88a8 for a service (S-)tag, and the
// pre-standard 0x9100 is recognised as a tag too. TCI packs PCP (bits 15-13),
// DEI (bit 12) and the VID (bits 11-0).
//
// Push and pop work in place on a buffer that has headroom in front of the
// frame (the datapath's receive buffers do), moving only the 12 address
// bytes, so the payload is never copied.
package vlan
