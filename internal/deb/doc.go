// Package deb builds vswitch's Debian binary package from a staging
// directory that `make install DESTDIR=STAGE PREFIX=/usr` filled, with
// dpkg-deb alone (no debhelper, no source package): `make deb` runs its
// command, mkdeb.
//
// What it adds to the staging directory:
//
//   - DEBIAN/control from contrib/debian/control with the version, the
//     architecture and the Installed-Size filled in;
//   - DEBIAN/conffiles: every file under /etc (the libvirt hook, the
//     configuration), which dpkg then leaves alone when the operator
//     changed it;
//   - DEBIAN/md5sums of every other file;
//   - the maintainer scripts contrib/debian/{postinst,prerm,postrm};
//   - /usr/share/doc/vswitch/copyright (contrib/debian/copyright,
//     machine-readable: vswitch and the Go modules linked into it) and
//     changelog.Debian.gz, one entry for the commit it was built from;
//   - /usr/share/lintian/overrides/vswitch: the lintian warnings the
//     package accepts, each with its reason (contrib/debian/lintian-overrides).
//
// The version comes from `git describe` (internal/version's VERSION) and
// the commit's date, by Version: Debian versions must start with a digit
// and sort by age, which a bare commit hash does not. Without a tag:
// 0.0~gitYYYYMMDD.HHMMSS.HASH-1 ('~' sorts before anything, so the first tagged
// release, 0.1-1, is newer); on tag v1.2: 1.2-1; three commits after it:
// 1.2+gitYYYYMMDD.HHMMSS.HASH-1 (the commit's time in UTC, so that two
// commits of one day sort by age, not by hash); a tree with uncommitted changes adds ".dirty".
// The time is the commit's, not the build's, so two builds of one commit
// get the same version: bump the Debian revision (mkdeb -revision) to ship
// a rebuild of it.
package deb
