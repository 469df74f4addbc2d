package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moleculesai/molecule/cmd/molecule-agent/internal/config"
	"github.com/moleculesai/molecule/cmd/molecule-agent/internal/gitcred"
	"github.com/moleculesai/molecule/cmd/molecule-agent/internal/llm"
	"github.com/moleculesai/molecule/cmd/molecule-agent/internal/platform"
	"github.com/moleculesai/molecule/cmd/molecule-agent/internal/server"
)

// defaultHome is where .gitconfig goes when $HOME is not writable; the image
// creates it owned by the agent user.
const defaultHome = "/home/agent"

// run serves until ctx ends. The listener is opened before registering so
// the platform never gets a URL that refuses connections.
func run(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	setupGit(getenv, log)

	responder := llm.Select(llm.Options{
		AnthropicKey: cfg.AnthropicKey, AnthropicBase: cfg.AnthropicBase,
		OpenAIKey: cfg.OpenAIKey, OpenAIBase: cfg.OpenAIBase,
	})
	state := server.NewState(nil)
	card := buildCard(cfg)
	srv := server.New(server.Options{
		Card: card, Responder: responder, State: state, Logger: log,
		Model: cfg.Model, System: cfg.SystemPrompt, MaxTokens: cfg.MaxTokens,
		InputUSDPerMTok: cfg.InputUSDPerMTok, OutputUSDPerMTok: cfg.OutputUSDPerMTok,
	})

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.ListenAddr, err)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: an LLM answer may legitimately take minutes; the
		// platform proxy enforces the caller's deadline.
	}
	log.Info("agent listening", "addr", ln.Addr().String(), "provider", responder.Provider(),
		"workspace_id", cfg.WorkspaceID, "version", version)

	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	loopDone := make(chan struct{})
	if cfg.PlatformURL != "" && cfg.WorkspaceID != "" {
		loop := newLoop(cfg, card, state, log)
		go func() { defer close(loopDone); loop.Run(ctx) }()
	} else {
		close(loopDone)
		log.Warn("PLATFORM_URL or WORKSPACE_ID unset: running standalone, not registering")
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = hs.Shutdown(shutCtx)
	<-loopDone
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func newLoop(cfg *config.Config, card server.Card, state *server.State, log *slog.Logger) *platform.Loop {
	started := time.Now()
	return &platform.Loop{
		Client:   newPlatformClient(cfg, log),
		AgentURL: cfg.AgentURL,
		Card:     card,
		Logger:   log,
		Interval: cfg.HeartbeatInterval,
		Beat: func() (platform.Heartbeat, func()) {
			snap := state.Snapshot()
			hb := platform.Heartbeat{
				ErrorRate:     snap.ErrorRate,
				SampleError:   snap.SampleError,
				ActiveTasks:   snap.ActiveTasks,
				CurrentTask:   snap.CurrentTask,
				UptimeSeconds: int64(time.Since(started).Seconds()),
				MonthlySpend:  snap.MonthlySpend,
			}
			return hb, func() { state.Ack(snap) }
		},
	}
}

// newPlatformClient reads the token file on every request (falling back to
// the last good value if the file is briefly unreadable mid-rotation).
func newPlatformClient(cfg *config.Config, log *slog.Logger) *platform.Client {
	var (
		mu     sync.Mutex
		last   string
		warned bool
	)
	return &platform.Client{
		BaseURL:     cfg.PlatformURL,
		WorkspaceID: cfg.WorkspaceID,
		HTTP:        &http.Client{Timeout: 15 * time.Second},
		Token: func() (string, error) {
			mu.Lock()
			defer mu.Unlock()
			t, err := config.ReadToken(cfg.TokenPath)
			if err == nil {
				last, warned = t, false
				return t, nil
			}
			if log != nil && !warned {
				warned = true
				log.Warn("cannot read workspace token", "path", cfg.TokenPath, "error", err)
			}
			if last != "" {
				return last, nil
			}
			return "", err
		},
	}
}

func buildCard(cfg *config.Config) server.Card {
	name := cfg.File.Name
	if name == "" {
		name = "molecule-agent"
		if cfg.WorkspaceID != "" {
			name += " " + cfg.WorkspaceID
		}
	}
	desc := cfg.File.Description
	if desc == "" {
		desc = cfg.File.Role
	}
	if desc == "" {
		desc = "Molecule reference agent"
	}
	ver := cfg.File.Version
	if ver == "" {
		ver = version
	}
	skills := make([]server.CardSkill, 0, len(cfg.File.Skills))
	for _, s := range cfg.File.Skills {
		if s.ID == "" {
			continue
		}
		tags := s.Tags
		if tags == nil {
			tags = []string{}
		}
		skills = append(skills, server.CardSkill{ID: s.ID, Name: s.Name, Description: s.Description, Tags: tags})
	}
	return server.Card{
		Name: name, Description: desc, URL: cfg.AgentURL, Version: ver,
		ProtocolVersion: "0.3.0", PreferredTransport: "JSONRPC",
		DefaultInputModes: []string{"text"}, DefaultOutputModes: []string{"text"},
		Skills: skills,
	}
}

// setupGit points git at this binary as credential helper. Failure is logged,
// not fatal: the agent's own job does not need git.
func setupGit(getenv func(string) string, log *slog.Logger) {
	home, ok := gitcred.PickHome(getenv("HOME"), defaultHome, os.TempDir())
	if !ok {
		log.Warn("no writable home directory; git credential helper not configured")
		return
	}
	path, err := gitcred.EnsureGitConfig(home)
	if err != nil {
		log.Warn("cannot write git config", "error", err)
		return
	}
	if home != getenv("HOME") {
		// Child processes (git run by tools) must find the same .gitconfig.
		_ = os.Setenv("HOME", home)
	}
	log.Debug("git credential helper configured", "path", path)
}

// gitCredential is "molecule-agent git-credential <action>".
func gitCredential(ctx context.Context, action string, in io.Reader, out io.Writer, getenv func(string) string) {
	var getter gitcred.Getter
	cfg, err := config.Load(func(k string) string {
		// Only the platform settings matter here; ignore LLM/heartbeat
		// values so a typo there can't break git.
		switch k {
		case "WORKSPACE_ID", "PLATFORM_URL", "MOLECULE_URL", "WORKSPACE_CONFIG_PATH":
			return getenv(k)
		}
		return ""
	})
	if err == nil && cfg.PlatformURL != "" && cfg.WorkspaceID != "" {
		getter = &platform.Client{
			BaseURL:     cfg.PlatformURL,
			WorkspaceID: cfg.WorkspaceID,
			HTTP:        &http.Client{Timeout: gitcred.DefaultTimeout},
			Token:       func() (string, error) { return config.ReadToken(cfg.TokenPath) },
		}
	}
	var extra gitcred.Hosts
	for _, h := range strings.Split(getenv("MOLECULE_GIT_CREDENTIAL_HOSTS"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			extra = append(extra, h)
		}
	}
	gitcred.Run(ctx, action, in, out, getter, extra, gitcred.DefaultTimeout)
}
