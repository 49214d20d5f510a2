// Package store keeps vswitchd's configuration on disk so that a restarted
// daemon comes back with the same uplink, forwarding mode and ports.
//
// The state lives in one bbolt file (default /var/lib/vswitchd/state.db):
//
//	meta   schema  -> "2"          (decimal schema version)
//	       uplink  -> "eth0"
//	       mode    -> "vepa"|"veb"
//	       fdb     -> JSON [FDBRecord...] (learned MACs, at most MaxFDBRecords)
//	ports  <name>  -> JSON port.Config ({"name":"vnet1","vlan":100,...})
//
// Every write is its own bbolt Update transaction, which bbolt fsyncs before
// it returns: when a Put/Delete/SetUplink call returns nil the change survives
// a crash, so the API answers only after the state is durable. A new file is
// created complete (bbolt initialises it under another name, then it is
// renamed into place), so an empty file is never vswitchd's doing.
//
// # A file cannot crash the daemon
//
// The file is outside data, read before anything else runs, and bbolt
// trusts it: it maps the file and follows page numbers from it unchecked,
// so a truncated file would make it read past the end of the mapping
// (SIGBUS) and a damaged page would make it panic. Open therefore
//
//  1. locks the file (flock, as bbolt does; another holder is ErrLocked:
//     "state file X is locked by another vswitchd");
//  2. scans it with a reader of its own (boltfile.go) that checks the file
//     against its page size, both meta pages (magic, version, checksum),
//     the high-water page against the file's size, the freelist, and every
//     page reachable from the root: in range, what it says it is, reached
//     once, its elements inside it. Damage is a *DamageError, one line
//     that says what is wrong and how to recover (start with --state
//     NEWFILE, after `vswitchd --state FILE --check --salvage NEWFILE`);
//     the file is left as it is;
//  3. only then lets bbolt open it, and runs bbolt's consistency check
//     (tx.Check), whose findings are damage too, except pages neither in
//     use nor free (space lost, a note);
//  4. does all of it, and the reads the daemon makes at start, with memory
//     faults turned into panics (debug.SetPanicOnFault) and panics into
//     errors (guard): a last line for damage the scan does not foresee.
//
// What bbolt copes with is a note (Notes), which the daemon logs and shows
// in its status: one unusable meta page (bbolt uses the other; the next
// commit rewrites it), lost pages, and a file without vswitchd's buckets
// (an interrupted first start: the daemon starts with no ports, loudly).
// An empty (0-byte) file is refused: vswitchd never leaves one, so the
// ports it held are lost, which the operator must know.
//
// # Records
//
// Ports go in and come out as port.Config, judged by the rules the API
// applies (port.Config's JSON form validates): PutPort refuses a port that
// does not validate, and a record read back that cannot be used (corrupt,
// longer than a port record can be, or against the rules: written by hand,
// or by a version whose rules were looser) is a *RecordError. Records
// returns those apart from the usable ports; the daemon keeps them in the
// file, shows them as down with the reason, and never refuses to start for
// one. Sizes are bounded before decoding: a port record to 1 MiB (as an API
// request body), the FDB snapshot to 8 MiB and MaxFDBRecords entries.
//
// # Offline commands
//
// Check, DropPort and Salvage serve `vswitchd --check`, `--drop-port` and
// `--check --salvage`, which work while the daemon cannot start. They take
// the file's lock like the daemon (and so refuse a file a running daemon
// holds). Check and Salvage read a damaged file as far as the scan can:
// Salvage copies the uplink and every usable port record it reaches from
// the root into a new file (never a page merely left on disk, so nothing
// deleted comes back).
//
// # Schema versions
//
// The meta bucket records the schema version. Open refuses a file written by
// a newer vswitchd (ErrNewerSchema: upgrading the binary is the only safe
// fix, since an older one would silently drop fields it does not know) and
// migrates an older file in place, in a single transaction:
//
//   - v1: ports were stored as {"vlan":N} only (the name was the key) and
//     meta had no mode; v1 -> v2 rewrites each port as a full port.Config
//     and sets mode to "vepa" (the only mode v1 knew). A v1 record that
//     does not decode or breaks the port rules is left as it is, and
//     Records reports it.
//   - v2: the current schema.
//
// To add v3: bump currentSchema, write migrateV2toV3 and append it to the
// migrations table, and add a test that builds a v2 file by hand.
package store
