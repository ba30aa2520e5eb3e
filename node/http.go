package node

import (
	"encoding/json"
	"net/http"
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
	return mux
}
