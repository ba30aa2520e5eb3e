package node

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func (n *Node) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"status":     "ok",
			"node_id":    n.cfg.ID,
			"raft_state": n.raft.State().String(),
			"applied":    n.fsm.AppliedIndex(),
		})
	})
	// /readyz: 200 when this node can serve clients, 503 with the reason
	// otherwise (see readiness).
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := n.readiness()
		w.Header().Set("Content-Type", "application/json")
		if !r.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(r)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.registry, promhttp.HandlerOpts{
		ErrorLog:      slogPromLogger{n.logger},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	if n.cfg.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// slogPromLogger routes promhttp's scrape errors into the node's logger.
type slogPromLogger struct{ logger *slog.Logger }

func (l slogPromLogger) Println(v ...any) {
	l.logger.Warn("metrics scrape error", "err", fmt.Sprint(v...))
}
