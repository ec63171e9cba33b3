//go:build !linux

package listener

// adviseHuge does nothing: huge pages are asked for on Linux only.
func adviseHuge([]byte) {}
