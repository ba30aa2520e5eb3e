package main

import (
	"fmt"
)

// cacheStatus prints a second table with each endpoint's read cache tiers,
// when any endpoint runs a cache. The hit ratio is hits / (hits + misses)
// since the node started.
func (p *tablePrinter) cacheStatus(rows []endpointStatus) error {
	any := false
	for _, r := range rows {
		if r.err == nil && len(r.resp.GetCache()) > 0 {
			any = true
		}
	}
	if !any {
		return nil
	}
	fmt.Fprintln(p.w)
	tw := p.table()
	fmt.Fprintln(tw, "ENDPOINT\tCACHE\tHITS\tMISSES\tHIT%\tEVICTIONS\tENTRIES\tBYTES\tMAX\tERRORS")
	for _, r := range rows {
		if r.err != nil {
			continue
		}
		for _, c := range r.resp.GetCache() {
			ratio := "-"
			if n := c.GetHits() + c.GetMisses(); n > 0 {
				ratio = fmt.Sprintf("%.1f", 100*float64(c.GetHits())/float64(n))
			}
			size, bound := "-", "-"
			if c.GetBytes() >= 0 {
				size = byteSize(c.GetBytes())
			}
			if c.GetMaxBytes() > 0 {
				bound = byteSize(c.GetMaxBytes())
			}
			entries := "-"
			if c.GetEntries() >= 0 {
				entries = fmt.Sprint(c.GetEntries())
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\t%s\t%d\n", r.endpoint, c.GetTier(),
				c.GetHits(), c.GetMisses(), ratio, c.GetEvictions(), entries, size, bound, c.GetErrors())
		}
	}
	return tw.Flush()
}
