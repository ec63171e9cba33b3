package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	nsexec "github.com/tknock/tknock/internal/netns"
)

// netns is a named network namespace that the harness created (as
// `ip netns add` makes it). The harness deletes every one it created,
// also on failure and on Ctrl-C.
type netns struct {
	Name string
	Path string
}

// newNetns creates a namespace named prefix+role with its loopback up.
func newNetns(prefix, role string) (*netns, error) {
	n := &netns{Name: prefix + role}
	n.Path = filepath.Join("/run/netns", n.Name)
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", n.Name, err, strings.TrimSpace(string(out)))
	}
	if _, err := n.run("ip", "link", "set", "lo", "up"); err != nil {
		n.del()
		return nil, err
	}
	return n, nil
}

// randomPrefix returns "tkb" and six hex digits: short enough that every
// name derived from it fits IFNAMSIZ, random so two runs never collide.
func randomPrefix() (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "tkb" + hex.EncodeToString(b[:]), nil
}

// del removes the namespace. Its interfaces go with it.
func (n *netns) del() error {
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %v: %s", n.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// command returns a command that runs inside the namespace. `ip netns
// exec` enters the namespace and then executes the program in its own
// place, so the command's PID is the program's.
func (n *netns) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// run runs a command inside the namespace and returns its combined output.
func (n *netns) run(name string, args ...string) (string, error) {
	out, err := n.command(context.Background(), name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netns %s: %s %s: %v: %s", n.Name, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// do runs f on a fresh OS thread that has entered the namespace, and waits
// for it. The thread stays locked so the Go runtime discards it instead of
// reusing a thread that sits in another namespace. Sockets f opens stay in
// the namespace.
func (n *netns) do(f func() error) error {
	return (&nsexec.NS{Name: n.Name, Path: n.Path}).Do(f)
}

// dialer returns a DialContext function that opens TCP connections from
// inside the namespace (for the daemon's metrics endpoint).
func (n *netns) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := n.do(func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// linkStats are an interface's counters, as `ip -s -j link` prints them.
type linkStats struct {
	RxPackets, RxDropped, TxPackets int64
}

// stats reads the counters of interface ifname in the namespace.
func (n *netns) stats(ifname string) (linkStats, error) {
	out, err := n.run("ip", "-s", "-j", "link", "show", "dev", ifname)
	if err != nil {
		return linkStats{}, err
	}
	return parseLinkStats(out)
}

func parseLinkStats(out string) (linkStats, error) {
	var links []struct {
		Stats struct {
			Rx struct {
				Packets int64 `json:"packets"`
				Dropped int64 `json:"dropped"`
			} `json:"rx"`
			Tx struct {
				Packets int64 `json:"packets"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return linkStats{}, fmt.Errorf("ip -s -j link: %w", err)
	}
	if len(links) != 1 {
		return linkStats{}, fmt.Errorf("ip -s -j link: %d links, want 1", len(links))
	}
	s := links[0].Stats
	return linkStats{RxPackets: s.Rx.Packets, RxDropped: s.Rx.Dropped, TxPackets: s.Tx.Packets}, nil
}

// mac returns the hardware address of interface ifname in the namespace.
func (n *netns) mac(ifname string) (net.HardwareAddr, error) {
	var hw net.HardwareAddr
	err := n.do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		hw = ifi.HardwareAddr
		return nil
	})
	return hw, err
}

// sysctlDAD turns IPv6 duplicate address detection off in the namespace so
// addresses are usable at once.
func (n *netns) sysctlDAD() error {
	_, err := n.run("sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return err
}

// ipBatch runs `ip -batch -` in the namespace with the given lines.
func (n *netns) ipBatch(lines []string) error {
	cmd := n.command(context.Background(), "ip", "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("netns %s: ip -batch: %v: %s", n.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// requireRoot returns a clear error unless the process is root.
func requireRoot() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("knockbench needs root (network namespaces, nftables, AF_PACKET): run `sudo make bench`")
	}
	return nil
}
