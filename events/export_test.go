package events

// Waiting is how many appends wait in g for the batch on its way to be done.
func (g *Group) Waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}
