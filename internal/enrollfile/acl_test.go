package enrollfile

import (
	"slices"
	"testing"
)

// TestReaders is the decision behind the Windows check, on the entries a
// file can carry: only the owner, the system and the administrators may
// read a secret.
func TestReaders(t *testing.T) {
	const owner = "S-1-5-21-1-2-3-1001"
	tests := []struct {
		name   string
		aces   []ace
		noDACL bool
		want   []string
	}{
		{"private", []ace{{owner, true, false, 0x1f01ff}, {sidSystem, true, false, 0x1f01ff}, {sidAdmins, true, false, 0x1f01ff}}, false, nil},
		{"users read", []ace{{owner, true, false, 0x1f01ff}, {"S-1-5-32-545", true, false, 0x120089}}, false, []string{"S-1-5-32-545"}},
		{"everyone generic read", []ace{{"S-1-1-0", true, false, 0x80000000}}, false, []string{"S-1-1-0"}},
		{"another user full", []ace{{"S-1-5-21-1-2-3-1002", true, false, 0x10000000}}, false, []string{"S-1-5-21-1-2-3-1002"}},
		{"write only", []ace{{"S-1-5-11", true, false, 0x2}}, false, nil},
		{"denied", []ace{{"S-1-5-11", false, false, 0x1f01ff}}, false, nil},
		{"inherit only", []ace{{"S-1-3-0", true, true, 0x1f01ff}}, false, nil},
		{"twice", []ace{{"S-1-5-11", true, false, 0x1}, {"S-1-5-11", true, false, 0x80000000}}, false, []string{"S-1-5-11"}},
		{"no list", nil, true, []string{"Everyone (the file has no access control list)"}},
	}
	for _, tt := range tests {
		if got := readers(owner, tt.aces, tt.noDACL); !slices.Equal(got, tt.want) {
			t.Errorf("%s: readers = %q, want %q", tt.name, got, tt.want)
		}
	}
}
