package a2a

import (
	"testing"

	"github.com/google/uuid"
)

// The tree used by the tests:
//
//	root1                 root2
//	├── a                 └── x
//	│   ├── a1
//	│   │   └── a1x
//	│   └── a2
//	└── b
//	    └── b1
func TestCanCommunicate(t *testing.T) {
	ids := map[string]uuid.UUID{}
	for _, n := range []string{"root1", "root2", "a", "a1", "a1x", "a2", "b", "b1", "x"} {
		ids[n] = uuid.New()
	}
	parent := map[string]string{"a": "root1", "b": "root1", "a1": "a", "a2": "a", "a1x": "a1", "b1": "b", "x": "root2"}
	chain := func(n string) []uuid.UUID {
		var out []uuid.UUID
		for n != "" {
			out = append(out, ids[n])
			n = parent[n]
		}
		return out
	}
	cases := []struct {
		caller, target string
		want           bool
		why            string
	}{
		{"a", "a", true, "same workspace"},
		{"a", "a1", true, "parent to child"},
		{"a1", "a", true, "child to parent"},
		{"a1", "a2", true, "siblings"},
		{"a", "b", true, "siblings under a root"},
		{"root1", "a1x", true, "ancestor to descendant"},
		{"a1x", "root1", true, "descendant to ancestor"},
		{"a1x", "a", true, "grandchild to grandparent"},
		{"root1", "root2", true, "root to root"},
		{"a1", "b1", false, "cousins"},
		{"a1x", "a2", false, "nephew to uncle"},
		{"a2", "a1x", false, "uncle to nephew"},
		{"a", "x", false, "across trees below the roots"},
		{"root1", "x", false, "root to another tree's child"},
		{"b1", "root2", false, "child to another root"},
	}
	for _, c := range cases {
		if got := CanCommunicate(chain(c.caller), chain(c.target)); got != c.want {
			t.Errorf("%s → %s (%s): got %v, want %v", c.caller, c.target, c.why, got, c.want)
		}
	}
	if CanCommunicate(nil, chain("a")) || CanCommunicate(chain("a"), nil) {
		t.Error("an unknown workspace must be denied")
	}
}

func BenchmarkCanCommunicate(b *testing.B) {
	deep := make([]uuid.UUID, 12)
	for i := range deep {
		deep[i] = uuid.New()
	}
	other := []uuid.UUID{uuid.New(), uuid.New(), deep[5], deep[6], deep[7], deep[8], deep[9], deep[10], deep[11]}
	for b.Loop() {
		CanCommunicate(deep, other)
	}
}
