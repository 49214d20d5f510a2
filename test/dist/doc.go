// Package dist tests what ships: `make install` into a DESTDIR lays out
// the binaries, manual pages, completion scripts, the systemd unit, the
// libvirt hook and the docs where README.md says, with the paths inside
// them rewritten; `make uninstall` takes them away again; `make deb`
// builds a package that lintian accepts without an error or a warning,
// whose control fields, conffiles and contents (dpkg-deb -f, -c) are what
// an operator's dpkg will see, and whose programs run; dpkg installs,
// removes and purges it in an empty tree (dpkg --root: the maintainer
// scripts honour DPKG_ROOT and touch no service of the machine).
//
// The tests run make in the source tree with their own BUILD and BIN
// directories (temporary), so a developer's build/ and bin/ are left
// alone. They need make, git and the go tool; the package test needs
// dpkg-deb and lintian (`make deps` installs lintian): without them it
// skips, and under CI (CI set) it fails instead. -short skips both (each
// builds the programs: about a minute on a 2-CPU machine).
package dist
