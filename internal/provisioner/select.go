package provisioner

import (
	"context"
	"log/slog"
	"time"

	"github.com/moleculesai/molecule/internal/config"
)

// Select picks the backend (§12): MOLECULE_PROVISIONER when set; else
// MOLECULE_ORG_ID → controlplane; else docker when a daemon answers; else
// none (nil backend: only external workspaces). The choice and the reason
// are logged.
func Select(ctx context.Context, cfg *config.Config, log *slog.Logger) (Provisioner, error) {
	newDocker := func() (*Docker, error) {
		return NewDocker(DockerOptions{
			Images: cfg.RuntimeImages, Network: cfg.DockerNetwork, AllowPrivilegedTier4: cfg.AllowPrivilegedTier4,
			AgentAddr: cfg.DockerAgentAddr, PlatformID: PlatformIDFromDSN(cfg.DatabaseURL), Log: log,
		})
	}
	newCP := func() (Provisioner, error) {
		return NewControlPlane(ControlPlaneOptions{BaseURL: cfg.CPProvisionURL, SharedSecret: cfg.CPSharedSecret, OrgID: cfg.OrgID})
	}
	switch cfg.Provisioner {
	case "none":
		log.Info("provisioner: none (MOLECULE_PROVISIONER=none); only external workspaces can run")
		return nil, nil
	case "controlplane":
		log.Info("provisioner: controlplane (MOLECULE_PROVISIONER)", "url", cfg.CPProvisionURL)
		return newCP()
	case "docker":
		d, err := newDocker()
		if err != nil {
			return nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := d.Ping(pctx); err != nil {
			log.Warn("provisioner: docker (MOLECULE_PROVISIONER) but the daemon does not answer yet", "err", err)
		} else {
			log.Info("provisioner: docker (MOLECULE_PROVISIONER)")
		}
		return d, nil
	}
	if cfg.OrgID != "" {
		log.Info("provisioner: controlplane (MOLECULE_ORG_ID is set)", "url", cfg.CPProvisionURL)
		return newCP()
	}
	d, err := newDocker()
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err = d.Ping(pctx); err == nil {
			log.Info("provisioner: docker (a daemon answered)")
			return d, nil
		}
		_ = d.Close()
	}
	log.Info("provisioner: none (no MOLECULE_PROVISIONER, no MOLECULE_ORG_ID, no Docker daemon); only external workspaces can run", "docker_err", err)
	return nil, nil
}
