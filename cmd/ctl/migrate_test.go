package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/migrate"
	"github.com/raftkv/raftkv/node/nodetest"
)

func TestMigrateUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"migrate"}, "--from and --to are required"},
		{[]string{"migrate", "--from", "file:a", "--to", "file:b", "extra"}, "no arguments"},
		{[]string{"migrate", "--from", "file:a", "--to", "file:b", "--overwrite", "--skip-existing"}, "mutually exclusive"},
		{[]string{"migrate", "--from", "file:a", "--to", "raftkv://", "--ttl", "forever"}, "--ttl must be keep, drop or skip"},
		{[]string{"migrate", "--from", "file:a", "--to", "raftkv://", "--rename-prefix", "a"}, "OLD=NEW"},
		{[]string{"migrate", "--from", "file:a", "--to", "raftkv://", "--rename-prefix", "a=b", "--prefix", "c"}, "must start with the renamed prefix"},
		{[]string{"migrate", "--from", "file:a", "--to", "raftkv://", "--batch", "0"}, "--batch must be positive"},
		{[]string{"migrate", "--from", "file:a", "--to", "raftkv://", "--dry-run", "--resume", "ck"}, "cannot --resume"},
		{[]string{"export"}, "expected FILE"},
		{[]string{"export", "d.jsonl", "--skip-existing"}, "does not apply to a file target"},
		{[]string{"import", "a", "b"}, "expected FILE"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, stderr := ctl(t, "", tt.args...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, exitUsage, tt.want)
			}
		})
	}
}

// TestExportImport drives export, import and migrate through the command
// line against in-process clusters.
func TestExportImport(t *testing.T) {
	src := nodetest.NewCluster(t, 3)
	dst := nodetest.NewCluster(t, 3)
	cli := src.Client()
	for i := range 300 {
		k := fmt.Sprintf("app/%03d", i)
		if i%50 == 0 {
			k = "app/\xff\x00" + k // not UTF-8
		}
		if _, err := cli.Put(t.Context(), &kvpb.PutRequest{Key: []byte(k), Value: bytes.Repeat([]byte{byte(i)}, i)}); err != nil {
			t.Fatal(err)
		}
	}
	srcEPs, dstEPs := strings.Join(src.Endpoints(), ","), strings.Join(dst.Endpoints(), ",")
	dir := t.TempDir()
	dump := filepath.Join(dir, "app.jsonl.gz")

	code, out, stderr := ctl(t, "", "--endpoints", srcEPs, "-o", "json", "export", dump, "--prefix", "app/", "--verify")
	if code != exitOK {
		t.Fatalf("export: exit %d\n%s\n%s", code, out, stderr)
	}
	var sum migrate.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("export -o json printed %q: %v", out, err)
	}
	if sum.Copied != 300 || !sum.Verified || sum.Failed != 0 || sum.DurationSeconds <= 0 {
		t.Errorf("export summary %+v, want 300 copied and verified", sum)
	}
	if stderr != "" {
		t.Errorf("export wrote %q to stderr, want nothing when it is not a terminal", stderr)
	}

	code, out, stderr = ctl(t, "", "--endpoints", dstEPs, "import", dump, "--verify", "--rename-prefix", "app/=restored/")
	if code != exitOK {
		t.Fatalf("import: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{"copied", "300 keys", "verify", "ok: 300 keys on both sides"} {
		if !strings.Contains(out, want) {
			t.Errorf("import table output lacks %q:\n%s", want, out)
		}
	}

	// Exporting again over the file needs --overwrite.
	if code, _, stderr = ctl(t, "", "--endpoints", srcEPs, "export", dump); code != exitError || !strings.Contains(stderr, "--overwrite") {
		t.Errorf("export over an existing file: exit %d, %q; want exit 1 pointing at --overwrite", code, stderr)
	}

	// A record raftkv can't hold fails the import with exit 6, after the
	// rest was copied.
	bad := filepath.Join(dir, "bad.jsonl")
	lines := `{"key":"b2s=","value":"MQ=="}` + "\n" + fmt.Sprintf(`{"key":%q,"value":""}`, strings.Repeat("QUFB", 1500)) + "\n"
	if err := os.WriteFile(bad, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = ctl(t, "", "--endpoints", dstEPs, "import", bad)
	if code != exitIncomplete || !strings.Contains(stderr, "1 records failed") || !strings.Contains(out, "key is 4500 bytes") {
		t.Errorf("import of an oversize key: exit %d\nstdout: %s\nstderr: %s\nwant exit %d, the failure listed", code, out, stderr, exitIncomplete)
	}

	// --dry-run --verify compares without copying and finds differences.
	code, out, _ = ctl(t, "", "migrate", "--from", "raftkv://"+srcEPs, "--to", "raftkv://"+dstEPs,
		"--prefix", "app/", "--dry-run", "--verify", "-o", "json")
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("migrate -o json printed %q: %v", out, err)
	}
	if code != exitIncomplete || sum.Verification == nil || sum.Verification.Differences != 300 || sum.Verified {
		t.Errorf("dry-run verify of app/ against a cluster without it: exit %d, %+v; want exit %d and 300 differences",
			code, sum.Verification, exitIncomplete)
	}
}

func TestProgressLine(t *testing.T) {
	s := migrate.Stats{Phase: "copy", Copied: 500, Skipped: 10, Failed: 2, Bytes: 3 << 20, Total: 1000, Elapsed: 2 * time.Second}
	got := progressLine(s)
	for _, want := range []string{"51%", "512/1000 keys", "3.0 MiB", "256 keys/s", "ETA 2s", "(2 failed)"} {
		if !strings.Contains(got, want) {
			t.Errorf("progressLine = %q, want it to contain %q", got, want)
		}
	}
	s.Total, s.Prior = -1, 12
	if got := progressLine(s); strings.Contains(got, "ETA") || !strings.Contains(got, "250 keys/s") {
		t.Errorf("progressLine without a total = %q, want no ETA and this run's rate", got)
	}
	s.Phase, s.Read = "verify", 42
	if got := progressLine(s); got != "verifying: 42 keys compared" {
		t.Errorf("progressLine while verifying = %q", got)
	}
	// Piped output stays quiet.
	var buf bytes.Buffer
	m, err := migrate.New(func() migrate.Config {
		c := migrate.DefaultConfig()
		c.From, c.To = "file:a", "file:b"
		return c
	}(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := startProgress(&buf, m)
	p.stop()
	if buf.Len() != 0 {
		t.Errorf("progress wrote %q to a non-terminal", buf.String())
	}
}
