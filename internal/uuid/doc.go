// Package uuid reads, writes and derives the RFC 4122 UUIDs that name a
// VM to the adjacent bridge: libvirt's domain UUIDs and the VSI instance
// IDs (VSIIDs of format 5) that 802.1Qbg VDP registers.
//
// Parse takes the text forms libvirt writes and accepts (8-4-4-4-12 hex
// digits, or the 32 digits without dashes; either case) and String writes
// the canonical lower-case 8-4-4-4-12 form, so a UUID read and written
// back compares equal as text:
//
//	u, _ := uuid.Parse("4DEA22B3-1D52-D8F3-2516-782E98AB3FA0")
//	u.String() // "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"
//
// NameBased derives a version 5 (SHA-1) UUID from a namespace UUID and a
// name, as RFC 4122 section 4.3 defines it: the same inputs give the same
// UUID on every host, which is what lets a VM keep its VSIID when it
// migrates. Python computes the same with uuid.uuid5(namespace, name).
package uuid
