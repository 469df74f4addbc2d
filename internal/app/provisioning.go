package app

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/moleculesai/molecule/internal/githubapp"
	"github.com/moleculesai/molecule/internal/provisioner"
	"github.com/moleculesai/molecule/pkg/provisionhook"
)

// buildProvisioning selects the provisioner backend (§12), registers the
// built-in provision hooks and builds the Manager the API calls.
func (a *App) buildProvisioning(ctx context.Context) error {
	cfg, log := a.Config, a.Log
	a.Hooks = provisionhook.NewRegistry()
	gh := map[string]string{
		githubapp.EnvAppID: cfg.GitHubAppID, githubapp.EnvInstallationID: cfg.GitHubInstallationID,
		githubapp.EnvPrivateKeyFile: cfg.GitHubPrivateKeyFile, githubapp.EnvAPIURL: cfg.GitHubAPIURL,
	}
	p, err := githubapp.NewFromEnv(func(k string) string { return gh[k] }, &http.Client{Timeout: 30 * time.Second}, log)
	if err != nil {
		return err
	}
	if p != nil {
		a.Hooks.Register(p)
		log.Info("GitHub App token provider registered")
	}

	backend, err := provisioner.Select(ctx, cfg, log)
	if err != nil {
		return err
	}
	if d, ok := backend.(*provisioner.Docker); ok {
		a.closers = append(a.closers, d.Close)
	}
	_, isDocker := backend.(*provisioner.Docker)
	a.Provisioning = provisioner.NewManager(provisioner.ManagerOptions{
		Store: a.Store, Backend: backend, Keyring: a.Keyring, Hooks: a.Hooks, Events: a.Broadcaster,
		Invalidate: a.Auth.Invalidate, TemplatesDir: cfg.TemplatesDir, OrgTemplatesDir: cfg.OrgTemplatesDir,
		Log: log.With("component", "provisioner"),
		PlatformURL: func() string {
			if cfg.AgentPlatformURL != "" {
				return cfg.AgentPlatformURL
			}
			u := a.platformURL()
			if isDocker {
				u = provisioner.AgentPlatformURL(u)
			}
			return u
		},
	})
	// Closed before the store (closers run in reverse order).
	a.closers = append(a.closers, a.Provisioning.Close)
	a.Lifecycle = a.Provisioning
	return nil
}

// platformURL is MOLECULE_PUBLIC_URL, else derived from the address the
// server listens on (an unspecified host becomes 127.0.0.1).
func (a *App) platformURL() string {
	if a.Config.PublicURL != "" {
		return a.Config.PublicURL
	}
	addr := a.Config.Listen
	if a.listener != nil {
		addr = a.listener.Addr().String()
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://127.0.0.1:8080"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
