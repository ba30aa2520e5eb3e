package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressBar draws a one-line progress bar on a terminal, redrawn at most
// ten times a second. On anything else (a pipe, a file, /dev/null, nil) it
// prints nothing, so scripts see only the result.
type progressBar struct {
	w     io.Writer // nil when not a terminal
	last  time.Time
	start time.Time
	drawn bool
}

func newProgressBar(w io.Writer) *progressBar {
	if !isTerminal(w) {
		return &progressBar{}
	}
	return &progressBar{w: w, start: time.Now()}
}

// isTerminal reports whether w is a character device other than /dev/null,
// which is what a terminal looks like without a terminal library.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

// update shows phase at done of total bytes (total 0: unknown).
func (p *progressBar) update(phase string, done, total int64) {
	if !p.due() {
		return
	}
	line := fmt.Sprintf("%-9s %s", phase, humanBytes(done))
	if total > 0 {
		line = fmt.Sprintf("%-9s %s %s / %s", phase, bar(float64(done)/float64(total)), humanBytes(done), humanBytes(total))
	}
	if secs := time.Since(p.start).Seconds(); secs > 0 && done > 0 {
		line += fmt.Sprintf("  %s/s", humanBytes(int64(float64(done)/secs)))
	}
	p.draw(line)
}

// due reports whether a line should be drawn now: on a terminal, at most
// ten times a second. A true answer counts as drawing.
func (p *progressBar) due() bool {
	if p.w == nil || time.Since(p.last) < 100*time.Millisecond {
		return false
	}
	p.last = time.Now()
	return true
}

// draw replaces the bar's line with line.
func (p *progressBar) draw(line string) {
	fmt.Fprintf(p.w, "\r%-79s", line)
	p.drawn = true
}

// bar renders the fraction frac (clamped to [0, 1]) as "[###   ]  50%".
func bar(frac float64) string {
	const width = 30
	frac = min(max(frac, 0), 1)
	filled := int(frac * width)
	return fmt.Sprintf("[%s%s] %3.0f%%", strings.Repeat("#", filled), strings.Repeat(" ", width-filled), frac*100)
}

// finish ends the bar's line; it is safe to call more than once.
func (p *progressBar) finish() {
	if p.drawn {
		fmt.Fprint(p.w, "\r"+strings.Repeat(" ", 79)+"\r")
		p.drawn = false
	}
}
