package node

import (
	"fmt"

	"github.com/hashicorp/raft"
)

// peerOverrides is raft's ServerAddressProvider for
// Config.RaftPeerOverrides: it names the address to dial for an overridden
// peer. For any other peer it returns an error, on which
// raft.NetworkTransport falls back to the address in the raft
// configuration (getProviderAddressOrFallback), so only the listed links
// change.
type peerOverrides map[string]string

var _ raft.ServerAddressProvider = peerOverrides(nil)

// newPeerOverrides returns the provider for overrides plus this node's own
// id mapped to its advertised address: raft asks the provider for the local
// id too, when it writes its own address into RPC headers
// (NetworkTransport.EncodePeer), and would log a fallback warning on every
// RPC otherwise.
func newPeerOverrides(self, advertise string, overrides map[string]string) peerOverrides {
	p := make(peerOverrides, len(overrides)+1)
	for id, addr := range overrides {
		p[id] = addr
	}
	p[self] = advertise
	return p
}

// ServerAddr implements raft.ServerAddressProvider.
func (p peerOverrides) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	if addr, ok := p[string(id)]; ok {
		return raft.ServerAddress(addr), nil
	}
	return "", fmt.Errorf("no raft address override for %s", id)
}

// grpcPeerAddr returns the gRPC address to dial to reach server id, whose
// registered address is registered: Config.GRPCPeerOverrides[id] when set,
// else registered. Only dialing uses it; what a node reports (Status, leader
// hints) stays the registered address.
func (n *Node) grpcPeerAddr(id, registered string) string {
	if addr, ok := n.cfg.GRPCPeerOverrides[id]; ok {
		return addr
	}
	return registered
}
