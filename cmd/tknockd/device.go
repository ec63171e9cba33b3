package main

import (
	"fmt"
	"strings"

	"github.com/tknock/tknock/totpseq"
)

// Devices. One person with two devices (a laptop and a phone) behind one
// public address cannot share one enrollment: the daemon accepts a
// sequence once per (user, service, window, source), so the second
// device's knock in a window the first used is refused as a replay, and
// neither device is told. Each device gets an enrollment of its own
// instead, as user NAME@DEVICE with its own secret: `tknockd enroll alice
// --device phone` writes users/alice@phone.uri. `tknockd revoke alice`
// removes alice and every alice@DEVICE; `tknockd revoke alice@phone` (or
// `revoke alice --device phone`) removes one device.

// deviceUser returns the user name of user's device: NAME@DEVICE. The user
// name must not hold an '@' already (it would be read as a device of
// another user) and the device is [A-Za-z0-9][A-Za-z0-9._-]*.
func deviceUser(user, device string) (string, error) {
	if strings.Contains(user, "@") {
		return "", fmt.Errorf("user name %q with --device %q: the name holds '@' already (NAME@DEVICE is the device's user): give the name without it", user, device)
	}
	if !validDevice(device) {
		return "", fmt.Errorf("--device %q: want [A-Za-z0-9][A-Za-z0-9._-]*", device)
	}
	name := user + "@" + device
	if !totpseq.ValidName(name) {
		return "", fmt.Errorf("user %q: longer than 64 bytes: choose a shorter --device", name)
	}
	return name, nil
}

func validDevice(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// isDeviceOf reports whether user name is one of user's devices,
// user@DEVICE.
func isDeviceOf(name, user string) bool {
	device, ok := strings.CutPrefix(name, user+"@")
	return ok && validDevice(device)
}
