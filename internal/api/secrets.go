package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/moleculesai/molecule/internal/secrets"
	"github.com/moleculesai/molecule/internal/store"
)

// secretRequest is the body of a secret upsert. Value is a pointer so a
// missing value is told apart from an empty one.
type secretRequest struct {
	Key   string  `json:"key"`
	Value *string `json:"value"`
}

// readSecret validates an upsert body. Values are never echoed or logged.
func readSecret(c *gin.Context) (string, []byte, error) {
	var req secretRequest
	if err := bindJSON(c, &req); err != nil {
		return "", nil, err
	}
	if err := secrets.ValidateName(req.Key); err != nil {
		return "", nil, BadRequest(err.Error())
	}
	if req.Value == nil {
		return "", nil, BadRequest(`field "value" is required`)
	}
	if len(*req.Value) > maxSecretSize {
		return "", nil, BadRequest(`field "value" may be at most 65536 bytes`)
	}
	return req.Key, []byte(*req.Value), nil
}

// pathSecretKey validates a key in a path: a name that cannot exist is a
// 400, not a 404.
func pathSecretKey(c *gin.Context) (string, error) {
	key := c.Param("key")
	if err := secrets.ValidateName(key); err != nil {
		return "", BadRequest(err.Error())
	}
	return key, nil
}

// GET /workspaces/:id/secrets: keys (never values) with their scope,
// workspace keys overriding global ones.
func (s *Server) listWorkspaceSecrets(c *gin.Context) {
	keys, err := s.store.ListSecretKeys(c.Request.Context(), loadedWorkspace(c).ID)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"secrets": keys})
}

// PUT /workspaces/:id/secrets {key, value}: upsert, sealed with the
// workspace id and key bound as associated data.
func (s *Server) putWorkspaceSecret(c *gin.Context) {
	key, value, err := readSecret(c)
	if err != nil {
		Fail(c, err)
		return
	}
	ws := loadedWorkspace(c)
	sealed, err := s.keyring.Seal(value, ws.ID.String(), key)
	if err != nil {
		Fail(c, err)
		return
	}
	if err := s.store.PutWorkspaceSecret(c.Request.Context(), ws.ID, key, sealed, s.keyring.ActiveID()); err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "saved", "key": key, "scope": store.SecretScopeWorkspace})
}

// DELETE /workspaces/:id/secrets/:key
func (s *Server) deleteWorkspaceSecret(c *gin.Context) {
	key, err := pathSecretKey(c)
	if err != nil {
		Fail(c, err)
		return
	}
	err = s.store.DeleteWorkspaceSecret(c.Request.Context(), loadedWorkspace(c).ID, key)
	if errors.Is(err, store.ErrNotFound) {
		Fail(c, NotFound("secret not found"))
		return
	}
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "deleted", "key": key})
}

// GET /settings/secrets: global keys.
func (s *Server) listGlobalSecrets(c *gin.Context) {
	keys, err := s.store.ListGlobalSecretKeys(c.Request.Context())
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"secrets": keys})
}

// PUT /settings/secrets {key, value}: upsert a global secret.
func (s *Server) putGlobalSecret(c *gin.Context) {
	key, value, err := readSecret(c)
	if err != nil {
		Fail(c, err)
		return
	}
	sealed, err := s.keyring.Seal(value, store.GlobalSecretOwner, key)
	if err != nil {
		Fail(c, err)
		return
	}
	if err := s.store.PutGlobalSecret(c.Request.Context(), key, sealed, s.keyring.ActiveID()); err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "saved", "key": key, "scope": store.SecretScopeGlobal})
}

// DELETE /settings/secrets/:key
func (s *Server) deleteGlobalSecret(c *gin.Context) {
	key, err := pathSecretKey(c)
	if err != nil {
		Fail(c, err)
		return
	}
	err = s.store.DeleteGlobalSecret(c.Request.Context(), key)
	if errors.Is(err, store.ErrNotFound) {
		Fail(c, NotFound("secret not found"))
		return
	}
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "deleted", "key": key})
}
