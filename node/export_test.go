package node

// CoalescerSlots exposes the write coalescer's in-flight slots, so a test
// can hold them all and let Puts queue up.
func (n *Node) CoalescerSlots() chan struct{} { return n.coalescer.slots }

// CoalescerQueued returns how many Puts wait in the coalescer's queue.
func (n *Node) CoalescerQueued() int { return len(n.coalescer.queue) }
