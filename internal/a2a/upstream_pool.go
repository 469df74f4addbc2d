package a2a

import "time"

// get takes the most recently used idle connection to addr, closing any
// that sat idle past the timeout. reused is false when there is none.
func (u *Upstream) get(addr string) (pc *upConn, reused bool) {
	now := u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	list := u.idle[addr]
	for len(list) > 0 {
		pc = list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		if now.Sub(pc.idleAt) < u.idleTimeout {
			u.idle[addr] = list
			return pc, true
		}
		pc.Close()
	}
	delete(u.idle, addr)
	return nil, false
}

// put returns a connection whose exchange ended cleanly to the pool; past
// the per-host cap (or after CloseIdle) it is closed instead.
func (u *Upstream) put(addr string, pc *upConn) {
	pc.idleAt = u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	list := u.idle[addr]
	if u.closed || len(list) >= u.maxIdle {
		pc.Close()
		return
	}
	u.idle[addr] = append(list, pc)
	if u.sweep == nil {
		u.sweep = time.AfterFunc(u.idleTimeout, u.sweepIdle)
	}
}

// sweepIdle closes connections idle past the timeout, so an agent that is
// no longer called does not keep sockets open; it reschedules itself
// while any connection is idle.
func (u *Upstream) sweepIdle() {
	now := u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	u.sweep = nil
	if u.closed {
		return
	}
	for addr, list := range u.idle {
		// The list is oldest first: drop the expired prefix.
		n := 0
		for n < len(list) && now.Sub(list[n].idleAt) >= u.idleTimeout {
			list[n].Close()
			n++
		}
		if n == len(list) {
			delete(u.idle, addr)
			continue
		}
		rest := make([]*upConn, len(list)-n, cap(list))
		copy(rest, list[n:])
		u.idle[addr] = rest
	}
	if len(u.idle) > 0 {
		u.sweep = time.AfterFunc(u.idleTimeout/2, u.sweepIdle)
	}
}

// CloseIdle closes every idle connection and stops pooling new ones; calls
// still work, each on a fresh connection. The server calls it on shutdown.
func (u *Upstream) CloseIdle() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	for addr, list := range u.idle {
		for _, pc := range list {
			pc.Close()
		}
		delete(u.idle, addr)
	}
	if u.sweep != nil {
		u.sweep.Stop()
		u.sweep = nil
	}
	if u.fallback != nil {
		u.fallback.CloseIdleConnections()
	}
}

// IdleConns reports how many idle connections the pool holds for addr.
func (u *Upstream) IdleConns(addr string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.idle[addr])
}
