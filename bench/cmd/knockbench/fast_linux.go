package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tknock/tknock/totpseq"
)

// Issue 17's figures: the time from starting the client to the first
// accepted connection, tknock against knockd's knock in the same run; the
// client under 10 % knock loss; the bound ports in reverse order.
const (
	fastTrials    = 10
	lossTrials    = 20
	reverseTrials = 10
	lossLimit     = 3 * time.Second
)

// knockdSequence is knockd's 3-port sequence: outside tknock's range, so
// each daemon sees only its own knocks.
var knockdSequence = []uint16{7001, 8002, 9003}

// fast adds the rows of issue 17.
func (s *sys) fast(ctx context.Context) error {
	if !s.useClient {
		return errors.New("the tknock client binary is missing or has no `knock --enrollment`")
	}
	s.logf("fast: command to open, tknock and knockd's knock, %d trials each", fastTrials)
	if err := s.commandToOpen(ctx); err != nil {
		s.t.Add(Row{Item: "17", Measure: "command to open", Result: errorResult(s.t, "command to open", err), Verdict: Missing})
	}
	s.logf("fast: bound ports in reverse order, %d trials", reverseTrials)
	if err := s.reverseOrder(); err != nil {
		s.t.Add(Row{Item: "17", Measure: "bound ports in reverse order", Result: errorResult(s.t, "reverse order", err), Verdict: Missing})
	}
	s.logf("fast: tknock knock --wait with 10 %% of knock packets dropped, %d trials", lossTrials)
	if err := s.underLoss(ctx); err != nil {
		s.t.Add(Row{Item: "17", Measure: "10 % knock loss", Result: errorResult(s.t, "10 % knock loss", err), Verdict: Missing})
	}
	return nil
}

// outbound returns a fresh client address (IPv4 while the pool has one)
// and the server's address of its family, and makes the address the
// client's outbound address towards the server with a host route.
func (s *sys) outbound() (src, dst netip.Addr, err error) {
	if src, err = s.topo.source(true); err != nil {
		if src, err = s.topo.source(false); err != nil {
			return src, dst, err
		}
	}
	dst, fam, bits := srvCli4, "-4", "/32"
	if src.Is6() {
		dst, fam, bits = srvCli6, "-6", "/128"
	}
	_, err = s.topo.cli.run("ip", fam, "route", "replace", dst.String()+bits, "dev", ifPeer, "src", src.String())
	return src, dst, err
}

// clientEnv is the environment of a tknock run: its own profile and
// window memory directories.
func (s *sys) clientEnv(src netip.Addr) []string {
	dir := filepath.Join(s.work, "fast-"+src.String())
	return append(os.Environ(), "TKNOCK_CONFIG_DIR="+dir+"/config", "TKNOCK_CACHE_DIR="+dir+"/cache")
}

// timeToOpen starts name with args from the client namespace (the process
// forked from a thread inside it: no `ip netns exec` in the measure) and
// polls port from src every millisecond from the moment it starts: it
// returns the time from the start to the first established connection.
func (s *sys) timeToOpen(src, dst netip.Addr, port uint16, env []string, name string, args ...string) (time.Duration, error) {
	var took time.Duration
	err := s.topo.cli.do(func() error {
		cmd := exec.Command(name, args...)
		cmd.Env = env
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		r, perr := probe(src, netip.AddrPortFrom(dst, port), start, time.Millisecond, 3*time.Second)
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("%s: %v: %s", filepath.Base(name), err, strings.TrimSpace(out.String()))
		}
		took = r.Connected
		return perr
	})
	return took, err
}

// commandToOpen measures tknock knock and knockd's knock, alternately,
// each trial from a fresh source address.
func (s *sys) commandToOpen(ctx context.Context) error {
	k, err := s.startKnockd(ctx)
	if err != nil {
		s.t.Note("knockd could not run, so tknock is measured alone: %v", err)
	}
	defer k.stop()
	var tk, kd []time.Duration
	var failures []string
	for i := 0; i < fastTrials && ctx.Err() == nil; i++ {
		src, dst, err := s.outbound()
		if err != nil {
			return err
		}
		took, err := s.timeToOpen(src, dst, protectedPort, s.clientEnv(src), s.tknock, "knock", "--enrollment", s.userFile, dst.String(), benchService)
		if err != nil {
			failures = append(failures, "tknock: "+err.Error())
		} else {
			tk = append(tk, took)
		}
		if k.cmd == nil {
			continue
		}
		if src, dst, err = s.outbound(); err != nil {
			return err
		}
		args := []string{"-4", dst.String()}
		for _, p := range knockdSequence {
			args = append(args, fmt.Sprint(p))
		}
		took, err = s.timeToOpen(src, dst, knockdPort, os.Environ(), k.client, args...)
		if err != nil {
			failures = append(failures, "knockd: "+err.Error())
		} else {
			kd = append(kd, took)
		}
	}
	if len(failures) > 0 {
		s.t.Note("command to open: %d trials did not open; the first: %s", len(failures), failures[0])
	}
	s.t.Add(Row{Item: "17", Measure: fmt.Sprintf("command to open, tknock knock (3 rounds, 1 ms after the anchor; connect polled every 1 ms; %d trials)", fastTrials),
		Result: describeSamples(tk, fastTrials)})
	if k.cmd == nil {
		return nil
	}
	s.t.Add(Row{Item: "17", Measure: fmt.Sprintf("command to open, knockd's knock (3-port TCP sequence, knockd %s; %d trials)", k.version, fastTrials),
		Result: describeSamples(kd, fastTrials)})
	ok, ratio := fastRatio(tk, kd, fastTrials)
	r := "n/a"
	if ratio > 0 {
		r = fmt.Sprintf("%.2f (medians %s / %s)", ratio, fmtMs(Percentile(tk, 50)), fmtMs(Percentile(kd, 50)))
	}
	s.t.Add(Row{Item: "17", Measure: "command to open, tknock / knockd (medians, same run)", Result: r,
		Target: "<= 1/3", Verdict: verdict(ok)})
	return nil
}

// knockd is the peer daemon of the comparison.
type knockd struct {
	cmd     *exec.Cmd
	client  string // the knock client
	version string
	cleanup []func()
}

// startKnockd sets up knockd in the server namespace: its nftables table,
// a listener on the port it guards, and the daemon, ready when its log
// says it listens.
func (s *sys) startKnockd(ctx context.Context) (*knockd, error) {
	k := &knockd{}
	bin, err := exec.LookPath("knockd")
	if err != nil {
		return k, fmt.Errorf("knockd (Debian package knockd) is not installed: %w", err)
	}
	if k.client, err = exec.LookPath("knock"); err != nil {
		return k, fmt.Errorf("knock (Debian package knockd) is not installed: %w", err)
	}
	if out, err := exec.Command(bin, "-V").CombinedOutput(); err == nil {
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		k.version = strings.TrimSpace(strings.TrimPrefix(first, "knockd"))
	}
	setup := knockdSetup{Interface: ifSrvCli, Sequence: knockdSequence, LogFile: filepath.Join(s.work, "knockd.log")}
	rules, err := writeFile(s.work, "knockd.nft", setup.Ruleset(), 0o600)
	if err != nil {
		return k, err
	}
	if _, err := s.topo.srv.run("nft", "-f", rules); err != nil {
		return k, err
	}
	k.cleanup = append(k.cleanup, func() { s.topo.srv.run("nft", "delete", "table", "inet", knockdTable) })
	ln, err := s.listen(knockdPort)
	if err != nil {
		return k, err
	}
	k.cleanup = append(k.cleanup, func() { ln.Close() })
	conf, err := writeFile(s.work, "knockd.conf", setup.Config(), 0o600)
	if err != nil {
		return k, err
	}
	cmd := s.topo.srv.command(ctx, bin, "-c", conf, "-i", ifSrvCli)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return k, err
	}
	k.cleanup = append(k.cleanup, func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(setup.LogFile); strings.Contains(string(b), "listening on") {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(setup.LogFile)
			return k, fmt.Errorf("knockd did not start listening within 5 s: %s %s", strings.TrimSpace(out.String()), strings.TrimSpace(string(b)))
		}
	}
	k.cmd = cmd
	return k, nil
}

// stop stops knockd and removes what startKnockd set up.
func (k *knockd) stop() {
	for i := len(k.cleanup) - 1; i >= 0; i-- {
		k.cleanup[i]()
	}
}

// reverseOrder sends, from fresh sources, the anchor and then the bound
// ports in reverse order (crafted, 1 ms apart) and probes the door.
func (s *sys) reverseOrder() error {
	opened := 0
	var firstErr error
	for range reverseTrials {
		src, dst, err := s.outbound()
		if err != nil {
			return err
		}
		ports, err := totpseq.Sequence(&s.user.Params, benchService, totpseq.Window(time.Now(), s.user.Period), src)
		if err != nil {
			return err
		}
		rev := slices.Clone(ports[1:])
		slices.Reverse(rev)
		err = s.topo.cli.do(func() error {
			last, err := sendKnocks(src, dst, append([]uint16{ports[0]}, rev...), time.Millisecond)
			if err != nil {
				return err
			}
			_, err = probe(src, netip.AddrPortFrom(dst, protectedPort), last, 5*time.Millisecond, 2*time.Second)
			return err
		})
		switch {
		case err == nil:
			opened++
		case !errors.Is(err, errNotOpened) && firstErr == nil:
			firstErr = err
		}
	}
	if firstErr != nil {
		s.t.Note("bound ports in reverse order: the first error: %v", firstErr)
	}
	s.t.Add(Row{Item: "17", Measure: fmt.Sprintf("bound ports sent in reverse order (crafted, %d fresh sources)", reverseTrials),
		Result: fmt.Sprintf("%d of %d opened", opened, reverseTrials), Target: "all open", Verdict: verdict(opened == reverseTrials)})
	return nil
}

var openAfter = regexp.MustCompile(`open after (\S+)`)

// underLoss runs tknock knock --wait from fresh sources while the
// client's namespace drops 10 % of its knock packets.
func (s *sys) underLoss(ctx context.Context) error {
	path, err := writeFile(s.work, "loss.nft", lossRuleset(s.user.Range), 0o600)
	if err != nil {
		return err
	}
	if _, err := s.topo.cli.run("nft", "-f", path); err != nil {
		return err
	}
	defer s.topo.cli.run("nft", "delete", "table", "inet", "tkloss")
	opened := 0
	var took []time.Duration
	var firstErr error
	for i := 0; i < lossTrials && ctx.Err() == nil; i++ {
		src, dst, err := s.outbound()
		if err != nil {
			return err
		}
		cmd := s.topo.cli.command(ctx, s.tknock, "knock", "--enrollment", s.userFile, dst.String(), benchService,
			"--wait", fmt.Sprint(protectedPort), "--wait-timeout", lossLimit.String())
		cmd.Env = s.clientEnv(src)
		out, err := cmd.CombinedOutput()
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("from %v: %v: %s", src, err, strings.TrimSpace(string(out)))
			}
			continue
		}
		opened++
		if m := openAfter.FindSubmatch(out); m != nil {
			if d, err := time.ParseDuration(string(m[1])); err == nil {
				took = append(took, d)
			}
		}
	}
	counters, _ := s.topo.cli.run("nft", "list", "chain", "inet", "tkloss", "out")
	dropped := "?"
	if m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(counters); m != nil {
		dropped = m[1]
	}
	if firstErr != nil {
		s.t.Note("10 %% knock loss: %d trials did not open within %v; the first: %v", lossTrials-opened, lossLimit, firstErr)
	}
	r := fmt.Sprintf("%d of %d opened within %v (%s knock packets dropped)", opened, lossTrials, lossLimit, dropped)
	if len(took) > 0 {
		r += fmt.Sprintf("; --wait's own time median %s, max %s", fmtMs(Percentile(took, 50)), fmtMs(slices.Max(took)))
	}
	s.t.Add(Row{Item: "17", Measure: fmt.Sprintf("tknock knock --wait with 10 %% of knock packets dropped (nftables numgen, client side; %d fresh sources)", lossTrials),
		Result: r, Target: ">= 19 of 20", Verdict: verdict(opened*20 >= 19*lossTrials)})
	return nil
}
