package failpoint

import (
	"strings"
	"testing"
)

func TestInjectFiresOnNthHit(t *testing.T) {
	fired := 0
	old := kill
	kill = func() { fired++ }
	t.Cleanup(func() { kill = old; _ = Arm("") })

	Inject(FSMApplyBeforeCommit) // disarmed: nothing
	if err := Arm(FSMApplyBeforeCommit + "=3"); err != nil {
		t.Fatalf("Arm: %v", err)
	}
	if !Armed() {
		t.Fatal("Armed() = false after Arm, want true")
	}
	for i := 1; i <= 5; i++ {
		Inject(FSMApplyBeforeCommit)
		Inject(FSMSnapshotPersist) // not armed
		want := 0
		if i >= 3 {
			want = 1
		}
		if fired != want {
			t.Fatalf("after hit %d: fired %d times, want %d", i, fired, want)
		}
	}
	if err := Arm(""); err != nil || Armed() {
		t.Fatalf("Arm(\"\") = %v, Armed() = %v; want nil, false", err, Armed())
	}
}

func TestParse(t *testing.T) {
	m, err := parse("fsm-apply-before-commit, fsm-snapshot-persist=7")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if m[FSMApplyBeforeCommit].fireAt != 1 || m[FSMSnapshotPersist].fireAt != 7 {
		t.Fatalf("parse: fire at %d and %d, want 1 and 7", m[FSMApplyBeforeCommit].fireAt, m[FSMSnapshotPersist].fireAt)
	}
	for _, bad := range []string{"nope", "fsm-snapshot-persist=0", "fsm-snapshot-persist=x"} {
		if _, err := parse(bad); err == nil || !strings.Contains(err.Error(), "failpoint") {
			t.Errorf("parse(%q) = %v, want a failpoint error", bad, err)
		}
	}
}
