package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// WorkspaceArtifact links a workspace to its Cloudflare Artifacts repo
// (CONTRACT §18). RemoteURL never carries credentials: the table refuses a
// URL with user-info.
type WorkspaceArtifact struct {
	ID          uuid.UUID `json:"id"`
	WorkspaceID uuid.UUID `json:"workspace_id"`
	RepoName    string    `json:"cf_repo_name"`
	Namespace   string    `json:"cf_namespace"`
	RemoteURL   string    `json:"remote_url"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Conflicts of the artifacts link; both answer 409 with their message.
var (
	ErrArtifactLinked    = &LimitError{Msg: "this workspace already has an artifacts repo"}
	ErrArtifactRepoTaken = &LimitError{Msg: "that artifacts repo is linked to another workspace"}
	ErrArtifactLinkBusy  = &LimitError{Msg: "an artifacts repo is being attached to this workspace; retry shortly"}
)

// artifactLockClass is the first key of the per-workspace advisory lock
// (the migration number, so that no other area's lock shares it).
const artifactLockClass = 60

const artifactColumns = `id, workspace_id, cf_repo_name, cf_namespace, remote_url, description, created_at, updated_at`

func scanArtifact(row interface{ Scan(...any) error }) (*WorkspaceArtifact, error) {
	var a WorkspaceArtifact
	if err := row.Scan(&a.ID, &a.WorkspaceID, &a.RepoName, &a.Namespace, &a.RemoteURL,
		&a.Description, &a.CreatedAt, &a.UpdatedAt); err != nil {
		return nil, err
	}
	return &a, nil
}

// GetWorkspaceArtifact returns the repo linked to a workspace, or
// ErrNotFound when none is.
func (s *Store) GetWorkspaceArtifact(ctx context.Context, workspaceID uuid.UUID) (*WorkspaceArtifact, error) {
	a, err := scanArtifact(s.DB.QueryRowContext(ctx,
		`SELECT `+artifactColumns+` FROM workspace_artifacts WHERE workspace_id = $1`, workspaceID))
	if err != nil {
		return nil, notFound(err)
	}
	return a, nil
}

// LinkWorkspaceArtifact links a new repo to a workspace without racing a
// concurrent link. It tries a per-workspace advisory lock (held by the
// transaction, so it also serializes replicas): when another link of the
// same workspace holds it, it answers ErrArtifactLinkBusy at once rather
// than wait, so that repeated requests cannot pile up pool connections
// behind a slow upstream call. Under the lock it answers ErrArtifactLinked
// if a repo is already linked, and only then calls create, which makes the
// repo upstream and returns the row to insert (ID, RepoName, Namespace,
// RemoteURL, Description). So create runs at most once at a time per
// workspace, and never once a repo is linked.
//
// create runs while a pool connection is held; it must be bounded by ctx.
// If it fails nothing is written. If the insert or commit fails after
// create succeeded, the error is returned and the caller owns the cleanup
// upstream: GetWorkspaceArtifact tells it whether the link exists. The
// unique constraints back the lock up: a duplicate workspace answers
// ErrArtifactLinked, a repo linked elsewhere ErrArtifactRepoTaken.
func (s *Store) LinkWorkspaceArtifact(ctx context.Context, workspaceID uuid.UUID,
	create func(ctx context.Context) (*WorkspaceArtifact, error)) (*WorkspaceArtifact, error) {
	var out *WorkspaceArtifact
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		var locked bool
		if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock($1, hashtext($2))`,
			artifactLockClass, workspaceID.String()).Scan(&locked); err != nil {
			return wrap(err)
		}
		if !locked {
			return ErrArtifactLinkBusy
		}
		var exists bool
		if err := tx.QueryRowContext(ctx,
			`SELECT EXISTS (SELECT 1 FROM workspace_artifacts WHERE workspace_id = $1)`, workspaceID).Scan(&exists); err != nil {
			return wrap(err)
		}
		if exists {
			return ErrArtifactLinked
		}
		a, err := create(ctx)
		if err != nil {
			return err
		}
		a.WorkspaceID = workspaceID
		if a.ID == uuid.Nil {
			a.ID = uuid.New()
		}
		row := tx.QueryRowContext(ctx, `
			INSERT INTO workspace_artifacts (id, workspace_id, cf_repo_name, cf_namespace, remote_url, description)
			VALUES ($1, $2, $3, $4, $5, $6)
			RETURNING `+artifactColumns,
			a.ID, a.WorkspaceID, a.RepoName, a.Namespace, a.RemoteURL, a.Description)
		out, err = scanArtifact(row)
		return artifactInsertErr(err)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// artifactInsertErr names the unique constraint that refused the row. The
// constraint name is part of the schema (migration 60), not message text.
func artifactInsertErr(err error) error {
	if err == nil {
		return nil
	}
	var pe *pq.Error
	if errors.As(err, &pe) && pe.Code == codeUniqueViolation {
		if pe.Constraint == "workspace_artifacts_workspace_id_key" {
			return ErrArtifactLinked
		}
		return ErrArtifactRepoTaken
	}
	return wrap(err)
}
