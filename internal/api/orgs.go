package api

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/robfig/cron/v3"

	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/orgtemplate"
	"github.com/moleculesai/molecule/internal/provisioner"
	"github.com/moleculesai/molecule/internal/store"
)

// templateOptions are the parser's inputs from this server: global
// secrets (opened with the keyring, owner "global") and the server
// variables MOLECULE_TEMPLATE_ENV allows. A database or keyring failure
// while looking up a secret is kept in *lookupErr, because the parser can
// only see "not found"; the caller checks it before trusting a parse error.
func (s *Server) templateOptions(ctx context.Context, lookupErr *error) orgtemplate.Options {
	allowed := s.cfg.TemplateEnv
	if allowed == nil {
		allowed = []string{}
	}
	return orgtemplate.Options{
		AllowedEnv: allowed,
		Secrets: func(name string) (string, bool) {
			sealed, ok, err := s.store.GlobalSecretSealed(ctx, name)
			if err == nil && ok {
				var plain []byte
				if plain, err = s.keyring.Open(sealed, "global", name); err == nil {
					return string(plain), true
				}
			}
			if err != nil && *lookupErr == nil {
				*lookupErr = err
			}
			return "", false
		},
	}
}

// listOrgTemplates handles GET /org/templates.
func (s *Server) listOrgTemplates(c *gin.Context) {
	var lookupErr error
	list, err := orgtemplate.List(s.cfg.OrgTemplatesDir, s.templateOptions(c.Request.Context(), &lookupErr))
	if err == nil {
		err = lookupErr
	}
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, list)
}

type importRequest struct {
	Dir      *string         `json:"dir"`
	Template json.RawMessage `json:"template"`
}

// importedWorkspace is one entry of the import response.
type importedWorkspace struct {
	ID         uuid.UUID      `json:"id"`
	Name       string         `json:"name"`
	Role       string         `json:"role"`
	Status     string         `json:"status"`
	Created    bool           `json:"created"`
	Connection map[string]any `json:"connection,omitempty"`

	node *orgtemplate.Node
	org  *orgtemplate.Org
}

// importOrg handles POST /org/import: parse and validate the whole tree
// (nothing written on any error), write every workspace, schedule and
// channel in one transaction, then provision the new workspaces in the
// background.
func (s *Server) importOrg(c *gin.Context) {
	ctx := c.Request.Context()
	var req importRequest
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	hasTemplate := len(req.Template) > 0 && !bytes.Equal(bytes.TrimSpace(req.Template), []byte("null"))
	if (req.Dir != nil) == hasTemplate {
		Fail(c, BadRequest(`send exactly one of "dir" (a directory under the org templates directory) or "template" (an inline template)`))
		return
	}
	var lookupErr error
	opts := s.templateOptions(ctx, &lookupErr)
	var org *orgtemplate.Org
	var key string
	var err error
	if req.Dir != nil {
		if err := checkText("dir", *req.Dir, 255); err != nil {
			Fail(c, err)
			return
		}
		var root string
		if root, err = orgtemplate.ResolveDir(s.cfg.OrgTemplatesDir, *req.Dir); err == nil {
			org, err = orgtemplate.LoadDir(root, opts)
		}
		key = "dir:" + *req.Dir
	} else {
		text, terr := inlineTemplate(req.Template)
		if terr != nil {
			Fail(c, terr)
			return
		}
		if org, err = orgtemplate.ParseInline(text, opts); err == nil {
			key = "inline:" + org.Name
		}
	}
	if lookupErr != nil {
		Fail(c, lookupErr)
		return
	}
	if err != nil {
		var te *orgtemplate.Error
		switch {
		case orgtemplate.IsNotFound(err):
			Fail(c, NotFound(err.Error()))
		case errors.As(err, &te):
			Fail(c, BadRequest(err.Error()))
		default:
			Fail(c, err)
		}
		return
	}

	out, err := s.writeOrg(ctx, org, key, s.platformURL(c))
	if err != nil {
		Fail(c, err)
		return
	}
	created := 0
	var fresh []importedWorkspace
	for _, w := range out {
		if w.Created {
			created++
			fresh = append(fresh, w)
			s.recordTransition(ctx, store.StatusChange{ID: w.ID, Name: w.Name, New: w.Status},
				map[string]any{"org_template": key})
		}
	}
	go s.provisionImported(fresh)
	c.JSON(http.StatusCreated, gin.H{
		"org":        gin.H{"name": org.Name, "description": org.Description, "template": key},
		"workspaces": out,
		"count":      len(out),
		"created":    created,
	})
}

// inlineTemplate accepts the template as YAML text (a JSON string) or as a
// JSON object, which is YAML too.
func inlineTemplate(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	switch raw[0] {
	case '"':
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return nil, BadRequest(`field "template" must be a string of YAML or an object`)
		}
		return []byte(text), nil
	case '{':
		return raw, nil
	default:
		return nil, BadRequest(`field "template" must be a string of YAML or an object`)
	}
}

var scheduleParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// nextRun is the schedule's next fire time after now in its timezone, or
// nil when disabled (or unparsable, which the parser already refused).
func nextRun(sc orgtemplate.Schedule, now time.Time) *time.Time {
	if !sc.Enabled {
		return nil
	}
	loc, err := time.LoadLocation(sc.Timezone)
	if err != nil {
		return nil
	}
	sched, err := scheduleParser.Parse(sc.CronExpr)
	if err != nil {
		return nil
	}
	t := sched.Next(now.In(loc)).UTC()
	return &t
}

// writeOrg creates or matches every workspace of org in one transaction.
// Workspaces are matched to an earlier import of the same template by
// template key and node name; matched workspaces are left as they are
// (the canvas may have moved or renamed them) except for their
// template-owned schedules and channels, which are made to match the
// template.
func (s *Server) writeOrg(ctx context.Context, org *orgtemplate.Org, key, platformURL string) ([]importedWorkspace, error) {
	var out []importedWorkspace
	now := s.now()
	err := s.store.Tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		if err := store.LockOrgTemplateTx(ctx, tx, key); err != nil {
			return err
		}
		existing, err := store.OrgTemplateWorkspacesTx(ctx, tx, key)
		if err != nil {
			return err
		}
		ids := map[*orgtemplate.Node]uuid.UUID{}
		depthOf := map[*orgtemplate.Node]int{}
		perDepth := map[int]int{}
		return org.Walk(func(_ string, n, parent *orgtemplate.Node) error {
			depth := 0
			if parent != nil {
				depth = depthOf[parent] + 1
			}
			depthOf[n] = depth
			slot := perDepth[depth]
			perDepth[depth]++
			w := importedWorkspace{Name: n.Name, Role: n.Role, node: n, org: org}
			if ex, ok := existing[n.Name]; ok {
				w.ID, w.Name, w.Role, w.Status = ex.ID, ex.Name, ex.Role, ex.Status
			} else {
				ws := &store.Workspace{
					ID: uuid.New(), Name: n.Name, Role: n.Role, Tier: n.Tier, Runtime: n.Runtime,
					Status: store.StatusProvisioning, External: n.External, URL: n.URL,
					WorkspaceDir: n.WorkspaceDir, WorkspaceAccess: n.WorkspaceAccess, BudgetLimit: n.BudgetLimit,
					// Without a position, lay the tree out by depth.
					X: float64(slot * 260), Y: float64(depth * 180),
				}
				if n.Canvas != nil {
					ws.X, ws.Y = n.Canvas.X, n.Canvas.Y
				}
				if parent != nil {
					p := ids[parent]
					ws.ParentID = &p
				}
				if n.External {
					ws.Status = store.StatusAwaitingAgent
				}
				if err := store.InsertWorkspaceTx(ctx, tx, ws); err != nil {
					return err
				}
				if err := store.SetOrgNodeTx(ctx, tx, ws.ID, key, n.Name); err != nil {
					return err
				}
				w.ID, w.Status, w.Created = ws.ID, ws.Status, true
				if n.External {
					plain, hash, prefix := auth.NewToken()
					if err := store.InsertWorkspaceTokenTx(ctx, tx, store.NewTokenRow{ID: uuid.New(), WorkspaceID: ws.ID, Hash: hash, Prefix: prefix}); err != nil {
						return err
					}
					w.Connection = map[string]any{"auth_token": plain, "platform_url": platformURL, "workspace_id": ws.ID}
				}
			}
			ids[n] = w.ID
			if err := s.syncSchedules(ctx, tx, w.ID, n, now); err != nil {
				return err
			}
			if err := s.syncChannels(ctx, tx, w.ID, n); err != nil {
				return err
			}
			out = append(out, w)
			return nil
		})
	})
	return out, err
}

func (s *Server) syncSchedules(ctx context.Context, tx *sql.Tx, wsID uuid.UUID, n *orgtemplate.Node, now time.Time) error {
	scheds := make([]store.Schedule, 0, len(n.Schedules))
	for _, sc := range n.Schedules {
		scheds = append(scheds, store.Schedule{
			Name: sc.Name, CronExpr: sc.CronExpr, Timezone: sc.Timezone, Prompt: sc.Prompt,
			Enabled: sc.Enabled, NextRunAt: nextRun(sc, now),
		})
	}
	return store.SyncTemplateSchedulesTx(ctx, tx, wsID, scheds)
}

// syncChannels writes the node's channels as template-owned rows keyed by
// type and position among channels of that type ("slack#0"), with their
// config sealed to the row.
func (s *Server) syncChannels(ctx context.Context, tx *sql.Tx, wsID uuid.UUID, n *orgtemplate.Node) error {
	have, err := store.TemplateChannelIDsTx(ctx, tx, wsID)
	if err != nil {
		return err
	}
	seen := map[string]int{}
	keys := make([]string, 0, len(n.Channels))
	for _, ch := range n.Channels {
		tkey := fmt.Sprintf("%s#%d", ch.Type, seen[ch.Type])
		seen[ch.Type]++
		keys = append(keys, tkey)
		id, ok := have[tkey]
		if !ok {
			id = uuid.New()
		}
		plain, err := json.Marshal(ch.Config)
		if err != nil {
			return err
		}
		sealed, err := s.keyring.Seal(plain, wsID.String(), store.ChannelSecretName(id))
		if err != nil {
			return err
		}
		row := &store.Channel{ID: id, WorkspaceID: wsID, Type: ch.Type, ConfigSealed: sealed,
			KeyID: s.keyring.ActiveID(), Enabled: ch.Enabled, TemplateKey: tkey}
		if err := store.UpsertTemplateChannelTx(ctx, tx, row); err != nil {
			return err
		}
	}
	sort.Strings(keys)
	return store.DeleteTemplateChannelsExceptTx(ctx, tx, wsID, keys)
}

// provisionTimeout bounds each background provisioning call of an import.
const provisionTimeout = 30 * time.Second

// provisionImported runs after the import's response: it writes each new
// workspace's prompts into its /configs and asks the backend to start it.
// External workspaces wait for their agent. A workspace that cannot be
// provisioned (no backend: MOLECULE_PROVISIONER=none) goes failed with the
// reason in last_sample_error and WORKSPACE_PROVISION_FAILED, so the
// canvas shows it; POST /workspaces/:id/restart retries once a backend is
// configured.
func (s *Server) provisionImported(list []importedWorkspace) {
	for _, w := range list {
		if w.node.External {
			continue
		}
		select {
		case <-s.shutdown:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), provisionTimeout)
		err := s.writeRoleFiles(ctx, w.ID, roleFiles(w.org, w.node))
		if err == nil {
			err = s.lifecycle.Provision(ctx, w.ID)
		}
		if err != nil {
			reason := "provisioning failed"
			if errors.Is(err, provisioner.ErrNoBackend) {
				reason = provisioner.ErrNoBackend.Error()
			}
			s.log.Warn("org import: provisioning failed", "workspace_id", w.ID, "err", err)
			if ok, merr := s.store.MarkProvisionFailed(ctx, w.ID, reason); merr != nil {
				s.log.Error("org import: mark failed", "workspace_id", w.ID, "err", merr)
			} else if ok {
				s.events.Record(ctx, "WORKSPACE_PROVISION_FAILED", w.ID, gin.H{"error": reason})
			}
		}
		cancel()
	}
}

// writeRoleFiles puts the workspace's prompts and role files into
// /configs before the agent starts. Only ErrNoBackend stops provisioning;
// other write errors are logged and the agent starts with what the
// provisioner generates.
func (s *Server) writeRoleFiles(ctx context.Context, id uuid.UUID, files map[string][]byte) error {
	if len(files) == 0 {
		return nil
	}
	err := s.lifecycle.WriteFiles(ctx, id, files)
	if errors.Is(err, provisioner.ErrNoBackend) {
		return err
	}
	if err != nil {
		s.log.Warn("org import: writing role files failed", "workspace_id", id, "err", err)
	}
	return nil
}
