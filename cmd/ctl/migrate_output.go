package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/raftkv/raftkv/migrate"
)

// migrate prints the summary as one JSON object (bytes as base64, like
// every -o json output).
func (p *jsonPrinter) migrate(s *migrate.Summary) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode migration summary as json: %w", err)
	}
	return p.write(b)
}

// migrate prints the summary as aligned lines, then the listed keys.
func (p *tablePrinter) migrate(s *migrate.Summary) error {
	tw := p.table()
	verb := "copied"
	if s.DryRun {
		verb = "would copy"
	}
	rate := ""
	if secs := s.DurationSeconds; secs > 0 {
		rate = fmt.Sprintf(" (%.0f keys/s, %s/s)", float64(s.Copied)/secs, byteSize(int64(float64(s.Bytes)/secs)))
	}
	fmt.Fprintf(tw, "source\t%s\n", s.Source)
	fmt.Fprintf(tw, "target\t%s\n", s.Target)
	fmt.Fprintf(tw, "%s\t%d keys, %s\n", verb, s.Copied, byteSize(s.Bytes))
	if s.TTLDropped > 0 {
		fmt.Fprintf(tw, "ttl dropped\t%d keys copied without their TTL\n", s.TTLDropped)
	}
	fmt.Fprintf(tw, "skipped\t%d%s\n", s.Skipped, reasons(s.SkippedBy))
	fmt.Fprintf(tw, "failed\t%d\n", s.Failed)
	fmt.Fprintf(tw, "duration\t%s%s\n", time.Duration(s.DurationSeconds*float64(time.Second)).Round(time.Millisecond), rate)
	if s.Resumed {
		fmt.Fprintf(tw, "resumed\tyes (counts include the earlier runs)\n")
	}
	if c := s.Consistency; c != nil {
		fmt.Fprintf(tw, "consistency\t%s\n", c.Note)
		if c.Modified > 0 {
			fmt.Fprintf(tw, "\t%d keys changed during the copy (first listed below)\n", c.Modified)
		}
	}
	if v := s.Verification; v != nil {
		fmt.Fprintf(tw, "verify\t%s\n", v)
		if v.Note != "" {
			fmt.Fprintf(tw, "\tnote: %s\n", v.Note)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	list := func(title string, notes []migrate.KeyNote, total int64) {
		if len(notes) == 0 {
			return
		}
		fmt.Fprintf(p.w, "\n%s (%d of %d):\n", title, len(notes), total)
		tw := p.table()
		fmt.Fprintln(tw, "  KEY\tREASON")
		for _, n := range notes {
			fmt.Fprintf(tw, "  %s\t%s\n", printable(n.Key), n.Reason)
		}
		_ = tw.Flush()
	}
	list("failed keys", s.FailedKeys, s.Failed)
	list("skipped keys", s.SkippedKeys, s.Skipped)
	if c := s.Consistency; c != nil && len(c.ModifiedKeys) > 0 {
		fmt.Fprintf(p.w, "\nkeys changed during the copy (%d of %d):\n", len(c.ModifiedKeys), c.Modified)
		for _, k := range c.ModifiedKeys {
			fmt.Fprintf(p.w, "  %s\n", printable(k))
		}
	}
	if v := s.Verification; v != nil && len(v.FirstDifferences) > 0 {
		fmt.Fprintf(p.w, "\ndifferences (%d of %d):\n", len(v.FirstDifferences), v.Differences)
		tw := p.table()
		fmt.Fprintln(tw, "  KEY\tDIFFERENCE")
		for _, d := range v.FirstDifferences {
			fmt.Fprintf(tw, "  %s\t%s\n", printable(d.Key), d.Kind)
		}
		_ = tw.Flush()
	}
	return nil
}

// reasons renders counts by reason: " (exists: 3, expired: 1)".
func reasons(by map[string]int64) string {
	if len(by) == 0 {
		return ""
	}
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(by)) {
		parts = append(parts, fmt.Sprintf("%s: %d", r, by[r]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// migrateProgress redraws one status line on a terminal from the
// migration's Stats, five times a second, until stop.
type migrateProgress struct {
	w     io.Writer
	m     *migrate.Migration
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
	drawn bool
}

// startProgress starts the line on w when w is a terminal; otherwise it
// returns a progress that does nothing, so piped output stays clean.
func startProgress(w io.Writer, m *migrate.Migration) *migrateProgress {
	p := &migrateProgress{w: w, m: m, quit: make(chan struct{}), done: make(chan struct{})}
	if !isTerminal(w) {
		close(p.done)
		return p
	}
	go p.loop()
	return p
}

func (p *migrateProgress) loop() {
	defer close(p.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			if p.drawn {
				fmt.Fprint(p.w, "\r\x1b[K")
			}
			return
		case <-t.C:
			fmt.Fprint(p.w, "\r\x1b[K"+progressLine(p.m.Stats()))
			p.drawn = true
		}
	}
}

// stop erases the line and waits for the drawing goroutine.
func (p *migrateProgress) stop() {
	p.once.Do(func() { close(p.quit) })
	<-p.done
}

// progressLine renders s. keys/s and the ETA leave out what earlier runs
// of a resumed migration did.
func progressLine(s migrate.Stats) string {
	done := s.Copied + s.Skipped + s.Failed
	secs := s.Elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(done-s.Prior) / secs
	}
	if s.Phase == "verify" {
		return fmt.Sprintf("verifying: %d keys compared", s.Read)
	}
	line := fmt.Sprintf("%d keys  %s  %.0f keys/s", done, byteSize(s.Bytes), rate)
	if s.Total > 0 {
		const width = 24
		frac := min(float64(done)/float64(s.Total), 1)
		filled := int(frac * width)
		line = fmt.Sprintf("[%s%s] %3.0f%%  %d/%d keys  %s  %.0f keys/s", strings.Repeat("#", filled),
			strings.Repeat(".", width-filled), frac*100, done, s.Total, byteSize(s.Bytes), rate)
		if rate > 0 && done < s.Total {
			eta := time.Duration(float64(s.Total-done) / rate * float64(time.Second)).Round(time.Second)
			line += "  ETA " + eta.String()
		}
	}
	if s.Failed > 0 {
		line += fmt.Sprintf("  (%d failed)", s.Failed)
	}
	return line
}
