package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// EnvVar is the environment variable that arms failpoints.
const EnvVar = "RAFTKV_FAILPOINTS"

// The failpoints the code base defines.
const (
	// FSMApplyBeforeCommit fires in fsm.ApplyBatch after the batch's ops were
	// written into the store transaction, before it commits: the entries are
	// in the raft log, not in the store.
	FSMApplyBeforeCommit = "fsm-apply-before-commit"
	// FSMSnapshotPersist fires in the FSM snapshot's Persist after the
	// header and the first record were flushed into the raft snapshot sink,
	// before the rest: a partial snapshot is on disk.
	FSMSnapshotPersist = "fsm-snapshot-persist"
)

// Known lists every failpoint name the code base defines; Arm rejects
// others.
var Known = []string{FSMApplyBeforeCommit, FSMSnapshotPersist}

var (
	armed  atomic.Bool
	mu     sync.Mutex
	points map[string]*point
	// kill is replaced by tests.
	kill = func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
)

type point struct {
	fireAt uint64 // hit number that fires
	hits   uint64
}

func init() {
	if v, ok := os.LookupEnv(EnvVar); ok && v != "" {
		if err := Arm(v); err != nil {
			// Refuse to run a test with a misspelled point rather than
			// silently never firing it.
			fmt.Fprintf(os.Stderr, "failpoint: %s=%q: %v\n", EnvVar, v, err)
			os.Exit(2)
		}
	}
}

// Arm arms the points of spec (the RAFTKV_FAILPOINTS syntax), replacing any
// armed before. An empty spec disarms everything.
func Arm(spec string) error {
	m, err := parse(spec)
	if err != nil {
		return err
	}
	mu.Lock()
	points = m
	mu.Unlock()
	armed.Store(len(m) > 0)
	return nil
}

// parse parses a RAFTKV_FAILPOINTS value into point name -> hit number that
// fires it.
func parse(spec string) (map[string]*point, error) {
	m := map[string]*point{}
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, count, hasCount := strings.Cut(part, "=")
		p := &point{fireAt: 1}
		if hasCount {
			n, err := strconv.ParseUint(count, 10, 64)
			if err != nil || n == 0 {
				return nil, fmt.Errorf("failpoint %q: count %q must be a positive integer", name, count)
			}
			p.fireAt = n
		}
		known := false
		for _, k := range Known {
			known = known || k == name
		}
		if !known {
			return nil, fmt.Errorf("unknown failpoint %q (known: %s)", name, strings.Join(Known, ", "))
		}
		m[name] = p
	}
	return m, nil
}

// Armed reports whether any failpoint is armed. Call sites that must prepare
// something before Inject (flush a buffer) check it first.
func Armed() bool { return armed.Load() }

// Inject is the failpoint called name: if it is armed and this is its N-th
// hit, it writes a line to stderr and SIGKILLs the process, so no deferred
// function, buffer flush or fsync runs. Otherwise it returns at once.
func Inject(name string) {
	if !armed.Load() {
		return
	}
	mu.Lock()
	p := points[name]
	fire := false
	if p != nil {
		p.hits++
		fire = p.hits == p.fireAt
	}
	mu.Unlock()
	if fire {
		fmt.Fprintf(os.Stderr, "failpoint %s fired on hit %d: killing pid %d\n", name, p.fireAt, os.Getpid())
		kill()
	}
}
