package afxdp

// MaxFrame is the largest frame an AF_XDP queue carries without multi-buffer
// XDP: a 4096-byte UMEM chunk less the 256 bytes of XDP headroom the kernel
// keeps in front of every received frame.
const MaxFrame = 4096 - 256

// MaxMTU is the largest MTU a VM port or uplink on AF_XDP supports: MaxFrame
// less the Ethernet header and two VLAN tags (802.1ad S-tag + 802.1Q C-tag).
const MaxMTU = MaxFrame - 14 - 8
