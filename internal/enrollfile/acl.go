package enrollfile

import "slices"

// ace is one entry of a Windows file's access control list, reduced to
// what the check needs.
type ace struct {
	sid         string // the trustee, as S-1-5-...
	allow       bool   // an access-allowed entry (deny entries are not counted on)
	inheritOnly bool   // applies to children only, not to the file
	mask        uint32
}

// Well-known trustees that may always read a user's file: the system and
// the machine's administrators, who could take it anyway.
const (
	sidSystem = "S-1-5-18"
	sidAdmins = "S-1-5-32-544"
)

// Access bits that let a trustee read the file's contents: FILE_READ_DATA,
// GENERIC_READ, GENERIC_ALL and MAXIMUM_ALLOWED.
const readBits = 0x1 | 0x80000000 | 0x10000000 | 0x02000000

// readers returns the trustees other than owner, the system and the
// administrators that aces allow to read the file, in their order. A file
// without an access control list (nil aces with noDACL) lets everyone in.
func readers(owner string, aces []ace, noDACL bool) []string {
	if noDACL {
		return []string{"Everyone (the file has no access control list)"}
	}
	var out []string
	for _, a := range aces {
		if !a.allow || a.inheritOnly || a.mask&readBits == 0 {
			continue
		}
		if a.sid == owner || a.sid == sidSystem || a.sid == sidAdmins || slices.Contains(out, a.sid) {
			continue
		}
		out = append(out, a.sid)
	}
	return out
}
