package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// report is everything one invocation measured; written as JSON.
type report struct {
	Machine  machine       `json:"machine"`
	Mode     string        `json:"mode"`
	Settings settings      `json:"settings"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	Rows     []rowResult   `json:"rows,omitempty"`
	Scale    []scaleResult `json:"scale,omitempty"`
}

// machine describes where the numbers were taken.
type machine struct {
	NProc     int    `json:"nproc"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	LoadAvg   string `json:"loadavg_at_start"`
}

func machineInfo() machine {
	m := machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.TrimSpace(string(b))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// settings are the knobs of the run.
type settings struct {
	Runs            int     `json:"runs"`
	DurationSeconds float64 `json:"duration_seconds"`
	WarmupSeconds   float64 `json:"warmup_seconds"`
	Conns           int     `json:"conns"`
	KeySize         int     `json:"key_size"`
	ValueSize       int     `json:"value_size"`
	KeySpace        int64   `json:"key_space"`
	ScaleKeys       int64   `json:"scale_keys,omitempty"`
	Target          string  `json:"target"`
}

func settingsOf(c *config) settings {
	s := settings{Runs: c.runs, DurationSeconds: c.duration.Seconds(), WarmupSeconds: c.warmup.Seconds(), Conns: c.conns,
		KeySize: c.keySize, ValueSize: c.valSize, KeySpace: c.keySpace, Target: "leader"}
	if c.mode == "scale" {
		s.ScaleKeys = c.scaleKeys
	}
	return s
}

// write prints the markdown table on stdout (and to --out-md) and the JSON
// to --out-json.
func (r *report) write(cfg *config, stdout io.Writer) error {
	var md strings.Builder
	if r.Mode == "scale" {
		r.scaleMarkdown(&md)
	} else {
		r.compareMarkdown(&md)
	}
	if _, err := io.WriteString(stdout, md.String()); err != nil {
		return fmt.Errorf("print table: %w", err)
	}
	if cfg.outMD != "" {
		if err := os.WriteFile(cfg.outMD, []byte(md.String()), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", cfg.outMD, err)
		}
	}
	if cfg.outJSON != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return fmt.Errorf("encode report: %w", err)
		}
		if err := os.WriteFile(cfg.outJSON, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", cfg.outJSON, err)
		}
	}
	return nil
}

func (r *report) header(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "%d× %s, Linux %s, %s; load average at start %s\n\n", m.NProc, m.CPUModel, m.Kernel, m.GoVersion, m.LoadAvg)
}

func (r *report) compareMarkdown(w io.Writer) {
	s := r.Settings
	r.header(w)
	fmt.Fprintf(w, "3 nodes each on 127.0.0.1, through the leader; %d-byte keys, %d-byte values, %d keys prefilled; "+
		"%d run(s) of %gs after %gs warm-up per row and system; up to %d connections.\n\n",
		s.KeySize, s.ValueSize, s.KeySpace, s.Runs, s.DurationSeconds, s.WarmupSeconds, s.Conns)
	fmt.Fprintln(w, "| workload | raftkv ops/s [min–max] | p50 | p99 | CPU/op | etcd ops/s [min–max] | p50 | p99 | CPU/op | raftkv/etcd |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var errs []string
	for _, row := range r.Rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.0f µs | %s | %s | %s | %.0f µs | %.2f |\n", row.Name,
			opsText(row.Raftkv), msText(row.Raftkv.P50Ms), msText(row.Raftkv.P99Ms), row.Raftkv.CPUPerOpUs,
			opsText(row.Etcd), msText(row.Etcd.P50Ms), msText(row.Etcd.P99Ms), row.Etcd.CPUPerOpUs, row.Ratio)
		for _, sr := range []struct {
			name string
			n    int64
		}{{"raftkv", row.Raftkv.Errors}, {"etcd", row.Etcd.Errors}} {
			if sr.n > 0 {
				errs = append(errs, fmt.Sprintf("%s %s: %d errors", row.Name, sr.name, sr.n))
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nErrors (not in ops/s or latencies): %s.\n", strings.Join(errs, "; "))
	}
}

func opsText(s systemRow) string {
	if len(s.Runs) == 1 {
		return thousands(s.OpsPerSec)
	}
	return fmt.Sprintf("%s [%s–%s]", thousands(s.OpsPerSec), thousands(s.OpsPerSecMin), thousands(s.OpsPerSecMax))
}

func msText(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// thousands formats v rounded, with commas: 12,345.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && c != '-' && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func (r *report) scaleMarkdown(w io.Writer) {
	r.header(w)
	if len(r.Scale) == 0 {
		return
	}
	fmt.Fprintf(w, "%s keys, %d-byte values, loaded through the leader by 64 clients.\n\n", thousands(float64(r.Scale[0].Keys)), r.Settings.ValueSize)
	fmt.Fprint(w, "| |")
	for _, s := range r.Scale {
		fmt.Fprintf(w, " %s |", s.System)
	}
	fmt.Fprint(w, "\n|---|")
	for range r.Scale {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	line := func(name string, f func(scaleResult) string) {
		fmt.Fprintf(w, "| %s |", name)
		for _, s := range r.Scale {
			fmt.Fprintf(w, " %s |", f(s))
		}
		fmt.Fprintln(w)
	}
	line("load (keys/s)", func(s scaleResult) string { return thousands(s.LoadOpsPerSec) })
	for i := range 3 {
		line(fmt.Sprintf("data dir node%d (on disk)", i+1), func(s scaleResult) string {
			if i >= len(s.DataDirs) {
				return "-"
			}
			return mib(s.DataDirs[i].AllocatedBytes)
		})
	}
	for i := range 3 {
		line(fmt.Sprintf("RSS node%d", i+1), func(s scaleResult) string {
			if i >= len(s.RSSBytes) {
				return "-"
			}
			return mib(s.RSSBytes[i])
		})
	}
	line("snapshot through the leader", func(s scaleResult) string {
		return fmt.Sprintf("%.2f s (%s)", s.SnapshotSeconds, mib(s.SnapshotBytes))
	})
	line("follower restart until it serves a read", func(s scaleResult) string {
		return fmt.Sprintf("%.2f s (node%d)", s.RestartSeconds, s.RestartNode)
	})
}
