package enrollfile

import (
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"
)

// checkACL refuses a file that a trustee other than its owner, the system
// and the administrators may read, the way the Unix check refuses group and
// other permission bits.
func checkACL(path string) error {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("%s: cannot read its access control list to check that only you may read it: %w", path, err)
	}
	owner, _, err := sd.Owner()
	if err != nil {
		return fmt.Errorf("%s: owner: %w", path, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil && err != windows.ERROR_OBJECT_NOT_FOUND {
		return fmt.Errorf("%s: access control list: %w", path, err)
	}
	var aces []ace
	if dacl != nil {
		for i := uint32(0); i < uint32(dacl.AceCount); i++ {
			var e *windows.ACCESS_ALLOWED_ACE
			if err := windows.GetAce(dacl, i, &e); err != nil {
				return fmt.Errorf("%s: access control entry %d: %w", path, i, err)
			}
			sid := (*windows.SID)(unsafe.Pointer(&e.SidStart))
			aces = append(aces, ace{
				sid:         sid.String(),
				allow:       e.Header.AceType == windows.ACCESS_ALLOWED_ACE_TYPE,
				inheritOnly: e.Header.AceFlags&windows.INHERIT_ONLY_ACE != 0,
				mask:        uint32(e.Mask),
			})
		}
	}
	who := readers(owner.String(), aces, dacl == nil)
	if len(who) == 0 {
		return nil
	}
	for i, s := range who {
		if sid, err := windows.StringToSid(s); err == nil {
			if account, domain, _, err := sid.LookupAccount(""); err == nil {
				who[i] = fmt.Sprintf("%s\\%s (%s)", domain, account, s)
			}
		}
	}
	return fmt.Errorf("%s: %w: %s may read the secret; fix it with: icacls \"%s\" /inheritance:r /grant:r \"%%USERNAME%%:F\"",
		path, ErrLoosePermissions, strings.Join(who, ", "), path)
}

// restrict gives the file at path an access control list of its own that
// lets only its owner, the system and the administrators in, whatever the
// directory would pass on.
func restrict(path string) error {
	sd, err := windows.SecurityDescriptorFromString("D:P(A;;FA;;;OW)(A;;FA;;;SY)(A;;FA;;;BA)")
	if err != nil {
		return err
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return err
	}
	return windows.SetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
}
