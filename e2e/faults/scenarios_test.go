//go:build e2e

package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/raftkv/raftkv/internal/failpoint"
)

// scenarios is the fault matrix (docs/faults.md). Each entry's run uses the
// same cluster, workload and checks.
var scenarios = []scenario{
	{name: "F0", title: "no fault", rounds: 1, run: func(s *scenarioRun, _ int) {
		waitFor(15 * time.Second)
	}},
	{name: "F1", title: "kill -9 the leader, restart", rounds: 3, run: func(s *scenarioRun, _ int) {
		l := s.c.mustLeader()
		s.c.kill(l)
		waitFor(3 * time.Second)
		s.c.start(l)
		s.healed()
		waitFor(2 * time.Second)
	}},
	{name: "F2", title: "kill a follower until it needs a snapshot", rounds: 1, run: killFollowerPastCompaction},
	{name: "F3", title: "kill both followers, restart", rounds: 1, run: func(s *scenarioRun, _ int) {
		l := s.c.mustLeader()
		for _, f := range s.c.others(l) {
			s.c.kill(f)
		}
		waitFor(4 * time.Second)
		for _, f := range s.c.others(l) {
			s.c.start(f)
		}
		s.healed()
		waitFor(2 * time.Second)
	}},
	{name: "F4", title: "isolate the leader", rounds: 2, run: func(s *scenarioRun, _ int) {
		l := s.c.mustLeader()
		s.c.isolate(l)
		waitFor(6 * time.Second)
		s.c.setAllLinks(linkFaults{})
		s.healed()
		waitFor(2 * time.Second)
	}},
	{name: "F5", title: "asymmetric: leader->followers blackholed", rounds: 1, run: func(s *scenarioRun, _ int) {
		l := s.c.mustLeader()
		for _, f := range s.c.others(l) {
			s.c.setLink(l, f, linkFaults{mode: modeBlackhole})
		}
		s.log.Info("blackholed the leader's outgoing links", "leader", s.c.nodes[l].id)
		waitFor(8 * time.Second)
		s.c.setAllLinks(linkFaults{})
		s.healed()
		waitFor(2 * time.Second)
	}},
	{name: "F6", title: "bridge: A-C cut, B sees both", rounds: 2, run: func(s *scenarioRun, round int) {
		l := s.c.mustLeader()
		// Round 1 bridges through the leader, round 2 through a follower.
		b := l
		if round%2 == 1 {
			b = s.pick(s.c.others(l))
		}
		o := s.c.others(b)
		a, c := o[0], o[1]
		s.c.setLink(a, c, linkFaults{mode: modeBlackhole})
		s.c.setLink(c, a, linkFaults{mode: modeBlackhole})
		s.log.Info("bridge partition", "bridge", s.c.nodes[b].id, "cut", s.c.nodes[a].id+"<->"+s.c.nodes[c].id)
		waitFor(8 * time.Second)
		s.c.setAllLinks(linkFaults{})
		s.healed()
		waitFor(2 * time.Second)
	}},
	{name: "F7", title: "SIGSTOP the leader 5s, then a follower", rounds: 2, run: func(s *scenarioRun, round int) {
		l := s.c.mustLeader()
		target := l
		if round%2 == 1 {
			target = s.pick(s.c.others(l))
		}
		s.c.signal(target, syscall.SIGSTOP)
		waitFor(5 * time.Second)
		s.c.signal(target, syscall.SIGCONT)
		s.healed()
		waitFor(2 * time.Second)
	}},
	{name: "F8", title: "delay 75±50ms on all links, then 30% drop", rounds: 2, run: func(s *scenarioRun, round int) {
		if round%2 == 0 {
			s.c.setAllLinks(linkFaults{delay: 75 * time.Millisecond, jitter: 50 * time.Millisecond})
		} else {
			s.c.setAllLinks(linkFaults{drop: 0.3})
		}
		waitFor(10 * time.Second)
		s.c.setAllLinks(linkFaults{})
		s.healed()
		waitFor(2 * time.Second)
	}},
	{name: "F9", title: "kill -9 all three mid-load, restart", rounds: 2, run: func(s *scenarioRun, round int) {
		waitFor(3 * time.Second)
		for i := range s.c.nodes {
			s.c.kill(i)
		}
		// The FSM commits without fsync between syncs (docs/write-path.md,
		// "FSM durability"); a node killed with unsynced commits must
		// rebuild its store from the raft snapshot and log. Under load
		// nearly every kill lands there: make sure the rounds covered it.
		for i := range s.c.nodes {
			if _, err := os.Stat(filepath.Join(s.c.nodes[i].dataDir, "store.unsynced")); err == nil {
				s.unsyncedKills++
			}
		}
		for i := range s.c.nodes {
			s.c.start(i)
		}
		s.healed()
		if round == 1 && s.unsyncedKills == 0 {
			s.t.Fatal("F9: no node was killed with an unsynced store in either round, so the rebuild path went untested")
		}
		s.log.Info("F9: nodes killed with an unsynced store (rebuilt at start)", "count", s.unsyncedKills)
		waitFor(2 * time.Second)
	}},
	{name: "F10", title: "crash at persistence boundaries (failpoints)", rounds: 2, run: func(s *scenarioRun, round int) {
		l := s.c.mustLeader()
		switch round % 2 {
		case 0:
			// The old leader, restarted armed, replays and then follows;
			// it dies with entries in its raft log that its store lacks.
			crashAt(s, l, fmt.Sprintf("%s=%d", failpoint.FSMApplyBeforeCommit, 20+s.rng.IntN(60)))
		case 1:
			crashAt(s, s.pick(s.c.others(l)), failpoint.FSMSnapshotPersist)
		}
		s.healed()
		waitFor(2 * time.Second)
	}},
	{name: "F11", title: "backup under load, online restore, two epochs", rounds: 1, run: backupRestore},
	{name: "F12", title: "replace a follower under a new id, transfer leadership", rounds: 1, run: replaceFollower},
}

// killFollowerPastCompaction kills a follower and keeps it down until the
// leader compacted its log past the follower's last entry, so on restart
// the follower can only catch up through InstallSnapshot; then checks that
// it did.
func killFollowerPastCompaction(s *scenarioRun, _ int) {
	l := s.c.mustLeader()
	f := s.pick(s.c.others(l))
	st, err := s.c.status(f)
	if err != nil {
		s.t.Fatalf("status of %s: %v", s.c.nodes[f].id, err)
	}
	followerLast := st.GetLastLogIndex()
	installsBefore := strings.Count(readLog(s.c, f), "Installed remote snapshot")
	s.c.kill(f)
	err = eventually(60*time.Second, func() error {
		for _, i := range s.c.others(f) {
			st, err := s.c.status(i)
			if err != nil || st.GetRaftState() != "Leader" {
				continue
			}
			// raft keeps the entries after min(snapshot, last-trailing).
			kept := min(st.GetLastSnapshotIndex(), st.GetLastLogIndex()-64)
			if kept > followerLast {
				return nil
			}
			return fmt.Errorf("leader compacted up to %d, follower's log ends at %d", kept, followerLast)
		}
		return fmt.Errorf("no leader among the survivors")
	})
	if err != nil {
		s.t.Fatalf("F2 setup: %v", err)
	}
	s.c.start(f)
	err = eventually(30*time.Second, func() error {
		if n := strings.Count(readLog(s.c, f), "Installed remote snapshot"); n <= installsBefore {
			return fmt.Errorf("%s has not installed a snapshot since its restart", s.c.nodes[f].id)
		}
		return nil
	})
	if err != nil {
		s.t.Errorf("F2: %v", err)
	}
	s.healed()
	waitFor(2 * time.Second)
}

// crashAt restarts node i with failpoint spec armed, waits until the
// failpoint SIGKILLs it, and starts it again disarmed.
func crashAt(s *scenarioRun, i int, spec string) {
	id := s.c.nodes[i].id
	if err := s.c.stop(i); err != nil {
		s.t.Fatalf("F10: stop %s to arm it: %v", id, err)
	}
	s.c.start(i, failpoint.EnvVar+"="+spec)
	st, err := s.c.waitExit(i, 60*time.Second)
	if err != nil {
		s.t.Fatalf("F10: failpoint %s never fired on %s: %v", spec, id, err)
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	name, _, _ := strings.Cut(spec, "=")
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL || !s.c.logContains(i, "failpoint "+name+" fired") {
		s.t.Fatalf("F10: %s exited with %v, want SIGKILL by failpoint %s", id, st, name)
	}
	s.log.Info("failpoint fired", "node", id, "failpoint", spec)
	s.c.start(i)
}

func readLog(c *cluster, i int) string {
	b, _ := os.ReadFile(c.nodes[i].logPath)
	return string(b)
}
