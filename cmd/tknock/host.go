package main

import (
	"fmt"
	"strings"
)

// checkHost refuses a host that starts with '-': ssh would read it as an
// option, and so would anything else that is handed it. The README's
// ProxyCommand puts "--" before %h, so such a host reaches this check
// rather than kong's flag parser.
func checkHost(host string) error {
	if strings.HasPrefix(host, "-") {
		return fmt.Errorf("host %q starts with '-': not a host name or address", host)
	}
	return nil
}

// Validate is called by kong after parsing.
func (c *sshProxyCmd) Validate() error { return checkHost(c.Host) }

// Validate is called by kong after parsing.
func (c *knockCmd) Validate() error {
	if err := checkHost(c.Target); err != nil {
		return err
	}
	return checkHost(c.Host)
}
