package loadgen

import (
	"encoding/json"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: microsecond resolution up to 60 s, 3 significant
// digits. Slower operations are recorded as 60 s.
const (
	histMinMicros = 1
	histMaxMicros = 60_000_000
	histSigFigs   = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)
}

// Result is what one run measured. Only operations that started after the
// warm-up count.
type Result struct {
	// Op is the workload.
	Op Op `json:"op"`
	// Clients and Conns are the run's concurrency.
	Clients int `json:"clients"`
	Conns   int `json:"conns"`
	// Ops is the number of measured operations that succeeded.
	Ops int64 `json:"ops"`
	// Reads and Writes split Ops by kind (a Txn counts as a write, a ping
	// as a read).
	Reads  int64 `json:"reads"`
	Writes int64 `json:"writes"`
	// Errors is the number of measured operations that failed, and
	// ErrorsByKind splits it by ErrorKinder's kinds. With Options.Total,
	// Ops + Errors equals Total.
	Errors       int64            `json:"errors"`
	ErrorsByKind map[string]int64 `json:"errors_by_kind"`
	// WarmupOps counts the operations (successful or not) of the warm-up.
	WarmupOps int64 `json:"warmup_ops"`
	// Duration is the measured time: from the end of the warm-up until the
	// last measured operation returned.
	Duration time.Duration `json:"-"`
	// OpsPerSec is Ops / Duration: successful operations per second.
	OpsPerSec float64 `json:"ops_per_sec"`
	// Latency summarises the latencies of the successful measured
	// operations.
	Latency Latency `json:"latency"`
}

// MarshalJSON adds duration_seconds to the fields.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		plain
		DurationSeconds float64 `json:"duration_seconds"`
	}{plain(r), r.Duration.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (r *Result) UnmarshalJSON(b []byte) error {
	type plain Result
	var v struct {
		plain
		DurationSeconds float64 `json:"duration_seconds"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Result(v.plain)
	r.Duration = time.Duration(v.DurationSeconds * float64(time.Second))
	return nil
}

// Latency is a latency distribution: mean, percentiles and maximum, with
// microsecond resolution. JSON carries milliseconds.
type Latency struct {
	Mean, P50, P90, P99, P999, Max time.Duration
}

type latencyJSON struct {
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
	Max  float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fromMS(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

// MarshalJSON writes every field in milliseconds.
func (l Latency) MarshalJSON() ([]byte, error) {
	return json.Marshal(latencyJSON{ms(l.Mean), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max)})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (l *Latency) UnmarshalJSON(b []byte) error {
	var v latencyJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*l = Latency{fromMS(v.Mean), fromMS(v.P50), fromMS(v.P90), fromMS(v.P99), fromMS(v.P999), fromMS(v.Max)}
	return nil
}

// latencyOf summarises h, whose values are microseconds.
func latencyOf(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return Latency{
		Mean: time.Duration(h.Mean() * float64(time.Microsecond)),
		P50:  us(h.ValueAtQuantile(50)),
		P90:  us(h.ValueAtQuantile(90)),
		P99:  us(h.ValueAtQuantile(99)),
		P999: us(h.ValueAtQuantile(99.9)),
		Max:  us(h.Max()),
	}
}

// Progress is a snapshot of a running run, passed to Options.Progress.
type Progress struct {
	// Warmup is true while the warm-up lasts; Ops and Errors are then the
	// warm-up's.
	Warmup bool
	// Ops and Errors count the operations finished so far.
	Ops, Errors int64
	// Total is Options.Total (0 for a timed run); Elapsed is the time since
	// the phase started and Duration is Options.Duration.
	Total    int64
	Elapsed  time.Duration
	Duration time.Duration
	// Rate is the operations per second finished since the previous call.
	Rate float64
}
