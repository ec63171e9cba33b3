package hugepage

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// TestAdvise: after Advise, the mapping that holds the memory is marked
// for huge pages ("hg" in /proc/self/smaps' VmFlags), where the kernel has
// transparent huge pages at all.
func TestAdvise(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		t.Skip("skipping: this kernel has no transparent huge pages")
	}
	const huge = 2 << 20
	buf := make([]byte, 3*huge)
	off := (huge - int(uintptr(unsafe.Pointer(&buf[0]))%huge)) % huge
	b := buf[off : off+huge]
	Advise(b)
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	addr := uintptr(unsafe.Pointer(&b[0]))
	var inside bool
	for line := range strings.Lines(string(smaps)) {
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			inside = lo <= addr && addr < hi
			continue
		}
		if inside && strings.HasPrefix(line, "VmFlags:") {
			if !strings.Contains(line, " hg") {
				t.Errorf("mapping of the advised memory: %s: no hg flag", strings.TrimSpace(line))
			}
			return
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
}
