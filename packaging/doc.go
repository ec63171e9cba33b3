// Package packaging holds the definition of the tknock .deb and .rpm
// (nfpm.yaml, the maintainer scripts, sysusers.d and tmpfiles.d entries);
// `make package` builds them. Its test builds the packages, checks them
// with lintian, installs the .deb on this machine, checks the installed
// daemon's configuration and unit, and purges it again.
package packaging
