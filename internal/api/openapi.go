package api

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"sort"
	"sync"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"
)

// The OpenAPI document is kept in openapi/*.yaml: 00-base.yaml holds the
// header and shared components, and each area's file adds its paths and
// schemas. It is merged once and served as JSON; a test fails when the
// router and the document disagree.
//
//go:embed openapi/*.yaml
var openapiFS embed.FS

var openapiDoc = sync.OnceValues(func() ([]byte, error) {
	doc, err := LoadOpenAPI()
	if err != nil {
		return nil, err
	}
	return json.Marshal(doc)
})

// LoadOpenAPI merges the document's parts.
func LoadOpenAPI() (map[string]any, error) {
	names, err := fs.Glob(openapiFS, "openapi/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	doc := map[string]any{}
	for _, name := range names {
		data, err := openapiFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var part map[string]any
		if err := yaml.Unmarshal(data, &part); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := mergeDoc(doc, part, name); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

// mergeDoc merges maps recursively; the same leaf defined twice is an error
// so two parts cannot silently disagree.
func mergeDoc(dst, src map[string]any, file string) error {
	for k, v := range src {
		cur, exists := dst[k]
		if !exists {
			dst[k] = v
			continue
		}
		dm, ok1 := cur.(map[string]any)
		sm, ok2 := v.(map[string]any)
		if !ok1 || !ok2 {
			return fmt.Errorf("%s: %q is defined twice in the OpenAPI document", file, k)
		}
		if err := mergeDoc(dm, sm, file); err != nil {
			return err
		}
	}
	return nil
}

// GET /openapi.json
func (s *Server) openAPI(c *gin.Context) {
	data, err := openapiDoc()
	if err != nil {
		Fail(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json", data)
}
