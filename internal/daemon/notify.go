package daemon

import (
	"errors"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// sdNotify sends state to the service manager (sd_notify(3)): one
// datagram to the unix socket named by $NOTIFY_SOCKET ("@name" for an
// abstract socket). Without $NOTIFY_SOCKET (not started by systemd with
// Type=notify) it does nothing. The protocol is a few lines over a
// datagram; a library for it would bring more than it saves.
func sdNotify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] != '/' && name[0] != '@' {
		return errors.New("NOTIFY_SOCKET: want an absolute path or @abstract name, got " + strconv.Quote(name))
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, the MONOTONIC_USEC
// that systemd wants beside RELOADING=1.
func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return strconv.FormatInt(time.Now().UnixMicro(), 10) // never on Linux
	}
	return strconv.FormatInt(ts.Nano()/1000, 10)
}
