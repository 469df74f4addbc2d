// Package a2a holds agent-to-agent rules and proxying (§6). Access is
// decided here, in one place, for discovery, the proxy, delegation, TEAM
// memory and the WebSocket event filter alike.
package a2a

import "github.com/google/uuid"

// CanCommunicate reports whether caller may talk to target (§6): the same
// workspace; parent and child; siblings (same parent); ancestor and
// descendant; two roots. Everyone else (cousins, an uncle and a nephew) is
// denied.
//
// Each chain lists a workspace's ancestry starting with itself and ending
// at its root: [self, parent, grandparent, …, root]. An empty chain (an
// unknown workspace) is denied.
func CanCommunicate(caller, target []uuid.UUID) bool {
	if len(caller) == 0 || len(target) == 0 {
		return false
	}
	a, b := caller[0], target[0]
	if a == b {
		return true
	}
	if len(caller) == 1 && len(target) == 1 {
		return true // root ↔ root
	}
	if len(caller) > 1 && len(target) > 1 && caller[1] == target[1] {
		return true // siblings
	}
	// Ancestor ↔ descendant (parent ↔ child included).
	for _, id := range target[1:] {
		if id == a {
			return true
		}
	}
	for _, id := range caller[1:] {
		if id == b {
			return true
		}
	}
	return false
}
