package main

import (
	"fmt"
	"time"

	"github.com/raftkv/raftkv/api/kvpb"
)

func (p *tablePrinter) memberList(r *kvpb.MemberListResponse) error {
	tw := p.table()
	fmt.Fprintln(tw, "ID\tSUFFRAGE\tLEADER\tRAFT_STATE\tGOSSIP\tVERSION\tHEALTHY\tLAST_CONTACT\tAPPLIED\tLAG\tGRPC_ADDR\tRAFT_ADDR\tGOSSIP_ADDR\tNOTE")
	for _, m := range r.GetMembers() {
		leader := ""
		if m.GetIsLeader() {
			leader = "*"
		}
		healthy, note := "no", m.GetUnhealthyReason()
		if m.GetHealthy() {
			healthy = "yes"
		}
		contact, applied, lag := "-", "-", "-"
		switch {
		case m.GetError() != "":
			note = m.GetError()
		case m.GetRaftState() == "":
			healthy = "-" // nothing known beyond the configuration
		default:
			applied, lag = fmt.Sprint(m.GetAppliedIndex()), fmt.Sprint(m.GetAppliedLag())
			contact = "never"
			if ms := m.GetLastContactMs(); ms >= 0 {
				contact = (time.Duration(ms) * time.Millisecond).String()
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			m.GetId(), m.GetSuffrage(), leader, dash(m.GetRaftState()), dash(m.GetGossipStatus()), dash(m.GetVersion()), healthy,
			contact, applied, lag, dash(m.GetGrpcAddr()), dash(m.GetRaftAddr()), dash(m.GetGossipAddr()), note)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (p *tablePrinter) memberChange(op, id string, r *kvpb.MemberChangeResponse) error {
	past := map[string]string{"add": "added", "remove": "removed", "promote": "promoted", "demote": "demoted"}[op]
	if r.GetConfigurationIndex() == 0 {
		fmt.Fprintf(p.w, "%s: nothing to change\n", id)
	} else {
		fmt.Fprintf(p.w, "%s %s (configuration index %d)\n", past, id, r.GetConfigurationIndex())
	}
	if w := r.GetWarning(); w != "" {
		fmt.Fprintf(p.w, "warning: %s\n", w)
	}
	return nil
}

func (p *tablePrinter) leaderTransfer(r *kvpb.LeaderTransferResponse) error {
	if r.GetLeaderId() == "" {
		fmt.Fprintln(p.w, "leadership transferred")
		return nil
	}
	fmt.Fprintf(p.w, "leadership transferred to %s\n", r.GetLeaderId())
	return nil
}

func (p *jsonPrinter) memberChange(_, _ string, r *kvpb.MemberChangeResponse) error {
	return p.message(r)
}

func (p *jsonPrinter) leaderTransfer(r *kvpb.LeaderTransferResponse) error {
	return p.message(r)
}
