package nft

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
)

// nlSocket is the netlink socket under a Table's nftables.Conn, recorded
// when the library dials it (the library keeps it private), so that each
// operation can set its deadline.
type nlSocket struct {
	mu sync.Mutex // guards c
	c  *netlink.Conn
}

// record is the nftables.SockOption that notes each socket the Conn
// dials (at Open, and again after discard).
func (s *nlSocket) record(c *netlink.Conn) error {
	s.mu.Lock()
	s.c = c
	s.mu.Unlock()
	return nil
}

// arm sets the deadline of the operation about to start on t.conn. A
// socket without deadlines (the tests' fake kernel) goes without. Called
// with t.mu held.
func (t *Table) arm() {
	if t.timeout <= 0 {
		return
	}
	t.nl.mu.Lock()
	c := t.nl.c
	t.nl.mu.Unlock()
	if c != nil {
		_ = c.SetReadDeadline(time.Now().Add(t.timeout))
	}
}

// settle passes err on; when it is a deadline that passed, it replaces the
// socket first (discard): the kernel's late answer must not be read as the
// next operation's. Called with t.mu held.
func (t *Table) settle(err error) error {
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return t.discard(fmt.Errorf("no answer from the kernel within %v: %w", t.timeout, err))
}
