// Package store keeps vswitchd's configuration on disk so that a restarted
// daemon comes back with the same uplink, forwarding mode and ports.
//
// The state lives in one bbolt file (default /var/lib/vswitchd/state.db):
//
//	meta   schema  -> "2"          (decimal schema version)
//	       uplink  -> "eth0"
//	       mode    -> "vepa"|"veb"
//	ports  <name>  -> JSON port.Config ({"name":"vnet1","vlan":100,...})
//
// Ports go in and come out as port.Config: PutPort refuses one that does not
// validate, and reading a record validates it again (port.Config's JSON
// form does). A record that cannot be used, corrupt or against the port
// rules (written by hand, or by a version whose rules were looser), is a
// *RecordError whose message says how to repair it (vswctl del-port, then
// add the port again); Ports returns the other ports with it.
//
// Every write is its own bbolt Update transaction, which bbolt fsyncs before
// it returns: when a Put/Delete/SetUplink call returns nil the change survives
// a crash, so the API answers only after the state is durable.
//
// bbolt takes an exclusive flock on the file. Open waits a short time for it
// and then fails with ErrLocked ("state file X is locked by another
// vswitchd"), which is how a second daemon on the same state file is refused.
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
//     does not decode fails the migration; one that breaks the port rules
//     is left as it is and reported by Ports.
//   - v2: the current schema.
//
// To add v3: bump currentSchema, write migrateV2toV3 and append it to the
// migrations table, and add a test that builds a v2 file by hand.
package store
