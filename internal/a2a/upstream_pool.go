package a2a

import (
	"net"
	"syscall"
	"time"
)

// get takes the most recently used idle connection to addr that is still
// open, closing any that sat idle past the timeout or that the agent has
// closed meanwhile (nil when there is none).
func (u *Upstream) get(addr string) *upConn {
	now := u.now()
	for {
		u.mu.Lock()
		list := u.idle[addr]
		if len(list) == 0 {
			delete(u.idle, addr)
			u.mu.Unlock()
			return nil
		}
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		u.idle[addr] = list[:len(list)-1]
		u.mu.Unlock()
		if now.Sub(pc.idleAt) < u.idleTimeout && !peerClosed(pc.Conn) {
			return pc
		}
		pc.Close()
	}
}

// peerClosed peeks at an idle connection without blocking: an agent that
// closed it (its idle timeout, a restart) has left an EOF or a reset
// there, and bytes nobody asked for make it unusable too. One non-blocking
// syscall; it is what lets Post send each call exactly once.
func peerClosed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
			closed = false // open and quiet: reusable
		default:
			closed = true // EOF (n == 0), an error, or unsolicited bytes
		}
		_ = n
		return true // never wait
	})
	return closed || err != nil
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
