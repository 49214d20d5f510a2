// Package pcapfile writes (and reads back) the capture files of vswitch:
// pcapng, with each frame's direction, and classic pcap. It is the one
// home of the file formats: vswitchd's capture stream (GET /v1/capture,
// pkg/api) and vswctl's local packet-socket capture (internal/capture)
// both write through Writer.
//
// # pcapng (the default)
//
// A pcapng file (draft-ietf-opsawg-pcapng) is a sequence of blocks, each
// framed by its type and its total length at both ends. Writer writes, in
// little-endian byte order:
//
//	Section Header Block     shb_userappl "vswitch"
//	Interface Description    link type Ethernet, the snaplen, if_name,
//	                         if_description, if_tsresol 9 (nanoseconds)
//	Enhanced Packet Block    one per frame: timestamp, captured and original
//	  ...                    length, the bytes, and epb_flags bits 0-1 for
//	                         the direction: 01 inbound, 10 outbound
//	Interface Statistics     written by WriteStats at the end: isb_starttime,
//	                         isb_endtime, isb_ifrecv (frames the capture point
//	                         saw), isb_ifdrop (frames lost because the reader
//	                         was too slow), isb_usrdeliv (frames written),
//	                         and a comment saying the same in words
//
// Wireshark and tshark show the direction (frame.packet_flags_direction,
// and "Inbound"/"Outbound" in the frame details) and the drops in the
// capture file properties; tcpdump -r reads the file (libpcap 1.1 and
// later) but prints no direction. gopacket's pcapgo.NgReader reads the
// frames and the statistics, and ignores the flags.
//
// pcapgo.NgWriter (gopacket v1.1.19) has no way to write epb_flags: that is
// why the writer is ours. It is small, allocates nothing per frame and
// buffers its output (Flush).
//
// # Classic pcap
//
// Format Pcap writes the classic file (magic a1b23c4d: nanosecond
// timestamps, link type Ethernet) that every tool reads. It has no place
// for a frame's direction or for drops: they are lost (a capture of one
// direction, --direction in or out, keeps the meaning), and WriteStats
// writes nothing.
//
// # Reading
//
// Reader reads both formats back, flags and statistics included: vswitch's
// tests check captures with it, and with pcapgo as a second, independent
// reader. It reads what this package writes and what other tools write in
// the same formats (either byte order; pcapng Enhanced and Simple Packet
// Blocks, several interfaces), bounds every length it is given, and
// returns an error, never a panic, on damaged input.
package pcapfile
