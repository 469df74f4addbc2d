// Command molecule-agent is the reference agent runtime a provisioned
// workspace runs (CONTRACT §20). It is a single static binary and the image's
// entrypoint; the image is FROM scratch, so there is no shell and every tool
// the container needs is a subcommand:
//
//	molecule-agent [run]                 serve A2A on :8000, register, heartbeat
//	molecule-agent git-credential get    git credential helper (also store/erase)
//	molecule-agent version               print the version
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd := "run"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "run":
		logger := newLogger(stderr, getenv("LOG_LEVEL"), getenv("LOG_FORMAT"))
		if err := run(ctx, getenv, logger); err != nil {
			logger.Error("agent stopped", "error", err)
			return 1
		}
		return 0
	case "git-credential":
		action := ""
		if len(args) > 1 {
			action = args[1]
		}
		gitCredential(ctx, action, stdin, stdout, getenv)
		// Always 0: a failing helper must not break git's fallthrough.
		return 0
	case "rm-config":
		// Used by the platform's Docker provisioner (in a short-lived helper
		// container) to delete a path of the config volume: the image has
		// no shell, so the agent binary carries the tool.
		if len(args) != 2 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		return rmConfig(getenv, args[1], stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "molecule-agent %s\n", version)
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "molecule-agent: unknown command %q\n%s", cmd, usage)
		return 2
	}
}

const usage = `usage:
  molecule-agent [run]               serve A2A, register and heartbeat
  molecule-agent git-credential get  git credential helper (store/erase are no-ops)
  molecule-agent version             print the version
  molecule-agent rm-config PATH      delete PATH under $WORKSPACE_CONFIG_PATH (exit 3: not found)
`

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.TrimSpace(level))); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if strings.EqualFold(format, "text") {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
