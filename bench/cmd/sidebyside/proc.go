package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one child process the harness started: a raftkvd or an etcd
// member. Only procs are ever signalled, by their own PID.
type proc struct {
	name string
	bin  string
	args []string
	log  string // stdout and stderr go here (appended across restarts)
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs the process with its output appended to p.log.
func (p *proc) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", p.name, err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a node we stop is not interesting
		f.Close()
		close(p.done)
	}()
	return nil
}

// running reports whether the process has been started and not exited.
func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// pid returns the process id, 0 when not running.
func (p *proc) pid() int {
	if !p.running() {
		return 0
	}
	return p.cmd.Process.Pid
}

// stop sends sig, waits up to grace for the exit, then kills the process.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(sig) // it may have exited meanwhile
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// cpuTime is the CPU time (user plus system) the process has used, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func (p *proc) cpuTime() (time.Duration, error) {
	pid := p.pid()
	if pid == 0 {
		return 0, fmt.Errorf("%s is not running", p.name)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of %s: %w", p.name, err)
	}
	// The command name (field 2) may hold spaces; fields after it start
	// after its closing parenthesis.
	rest := string(b)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time of %s: short /proc stat line", p.name)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cpu time of %s: parse %q %q", p.name, f[11], f[12])
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// serverCPU sums the CPU time of procs.
func serverCPU(procs []*proc) (time.Duration, error) {
	var sum time.Duration
	for _, p := range procs {
		t, err := p.cpuTime()
		if err != nil {
			return 0, err
		}
		sum += t
	}
	return sum, nil
}

// rssBytes reads VmRSS of the process from /proc/PID/status.
func (p *proc) rssBytes() (int64, error) {
	pid := p.pid()
	if pid == 0 {
		return 0, fmt.Errorf("%s is not running", p.name)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("rss of %s: %w", p.name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS of %s %q: %w", p.name, rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for %s", p.name)
}

// freeAddrs returns n loopback addresses that were free a moment ago. The
// harness passes them to child processes, so there is a small window in
// which another program could take one; a start then fails loudly.
func freeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		lns = append(lns, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// diskUsage is the size of a directory tree: apparent (file sizes) and
// allocated (blocks on disk).
type diskUsage struct {
	ApparentBytes  int64 `json:"apparent_bytes"`
	AllocatedBytes int64 `json:"allocated_bytes"`
}

func dirUsage(dir string) (diskUsage, error) {
	var u diskUsage
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking (a compacted segment)
			}
			return err
		}
		u.ApparentBytes += fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			u.AllocatedBytes += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("size of %s: %w", dir, err)
	}
	return u, nil
}
