package secrets

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		want error // nil = valid
	}{
		{"ANTHROPIC_API_KEY", nil},
		{"_PRIVATE", nil},
		{"A", nil},
		{"_", nil},
		{"KEY_2", nil},
		{"GITHUB_TOKEN", nil},
		{"GIT_AUTHOR_NAME", nil}, // a secret may set the agent's git identity
		{"MOLECULEX", nil},       // only the MOLECULE_ prefix is reserved
		{"WORKSPACE_IDS", nil},
		{"A" + strings.Repeat("B", 127), nil},

		{"", ErrInvalidName},
		{"api_key", ErrInvalidName},
		{"Api_Key", ErrInvalidName},
		{"1KEY", ErrInvalidName},
		{"9", ErrInvalidName},
		{"A" + strings.Repeat("B", 128), ErrInvalidName},
		{"KEY\x00", ErrInvalidName},
		{"\x00", ErrInvalidName},
		{"KEY-NAME", ErrInvalidName},
		{"KEY NAME", ErrInvalidName},
		{"KEY=VALUE", ErrInvalidName},
		{"KEY\n", ErrInvalidName},
		{"ÄKEY", ErrInvalidName},
		{"molecule_url", ErrInvalidName},

		{"WORKSPACE_ID", ErrReservedName},
		{"PLATFORM_URL", ErrReservedName},
		{"MOLECULE_URL", ErrReservedName},
		{"WORKSPACE_CONFIG_PATH", ErrReservedName},
		{"TIER", ErrReservedName},
		{"PYTHONPATH", ErrReservedName},
		{"PATH", ErrReservedName},
		{"LD_PRELOAD", ErrReservedName},
		{"LD_LIBRARY_PATH", ErrReservedName},
		{"HOME", ErrReservedName},
		{"HOSTNAME", ErrReservedName},
		{"MOLECULE_", ErrReservedName},
		{"MOLECULE_ANYTHING", ErrReservedName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.name)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ValidateName: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			other := ErrInvalidName
			if tt.want == ErrInvalidName {
				other = ErrReservedName
			}
			if errors.Is(err, other) {
				t.Errorf("err %v matches both sentinels", err)
			}
		})
	}
}

func TestValidateNameMessage(t *testing.T) {
	err := ValidateName("LD_PRELOAD")
	if err == nil || !strings.Contains(err.Error(), `"LD_PRELOAD"`) {
		t.Fatalf("error should name the key: %v", err)
	}
	err = ValidateName("bad\x00name")
	if err == nil || strings.ContainsRune(err.Error(), 0) {
		t.Fatalf("error should escape control bytes: %q", err)
	}
	long := strings.Repeat("x", 10000)
	err = ValidateName(long)
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error for a long name should be short, got %d bytes", len(err.Error()))
	}
}
