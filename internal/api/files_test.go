package api_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/moleculesai/molecule/internal/api"
	"github.com/moleculesai/molecule/internal/provisioner"
	"github.com/moleculesai/molecule/internal/provisioner/provisionertest"
	"github.com/moleculesai/molecule/internal/store"
)

func TestFilesAPI(t *testing.T) {
	logs := &syncBuffer{}
	fake := provisionertest.New()
	ts := api.NewTestServer(t, api.TestServerOptions{Env: map[string]string{"ADMIN_TOKEN": "admin-files"}, Lifecycle: fake, Log: logs})
	// doRaw sends the path as it is ("..", "//", NUL) and no body when body is "".
	doRaw := func(method, path, bearer, body string) (int, string) {
		t.Helper()
		var b any
		if body != "" {
			b = body
		}
		r := ts.Serve(method, path, bearer, b)
		return r.Status, string(r.Body)
	}
	// The files API serves provisioned workspaces: "files" is one.
	wsID, tok := ts.Workspace(&store.Workspace{Name: "files"})
	_, other := ts.Workspace(&store.Workspace{Name: "other", External: true})
	extID, extTok := ts.Workspace(&store.Workspace{Name: "external", External: true})
	base := "/workspaces/" + wsID.String() + "/files"
	fake.SetFile(wsID, "config.yaml", []byte("name: \"x\"\n"))
	fake.SetFile(wsID, "bin.dat", []byte{0xff, 0x00, 0xfe})

	type tc struct {
		method, path, bearer, body string
		want                       int
		contains                   string
	}
	cases := []tc{
		{"GET", base, tok, "", 200, `"config.yaml"`},
		{"GET", base + "?depth=3", "admin-files", "", 200, `"depth":3`},
		{"GET", base + "?depth=0", tok, "", 400, "depth"},
		{"GET", base + "?depth=abc", tok, "", 400, "depth"},
		{"GET", base + "?depth=99", tok, "", 400, "depth"},
		{"GET", base + "?path=../etc", tok, "", 400, "relative"},
		{"GET", base + "?path=/etc", tok, "", 400, "relative"},
		{"GET", base + "/config.yaml", tok, "", 200, `"content":"name: \"x\"\n"`},
		{"GET", base + "/bin.dat", tok, "", 200, `"encoding":"base64"`},
		{"GET", base + "/missing.md", tok, "", 404, "no such file"},
		{"GET", base + "/../secrets", tok, "", 400, "relative"},
		{"GET", base + "/a/../../x", tok, "", 400, "relative"},
		{"GET", base + "//etc/passwd", tok, "", 400, "relative"},
		{"GET", base + "/a\x00b", tok, "", 400, ""},
		{"GET", base + `/a\..\b`, tok, "", 400, ""},
		{"GET", base + "/.auth_token", tok, "", 403, "token"},
		{"GET", base + "/config.yaml", other, "", 403, ""},
		{"GET", base + "/config.yaml", "", "", 401, ""},
		{"GET", "/workspaces/not-a-uuid/files/config.yaml", tok, "", 400, ""},
		{"PUT", base + "/notes/today.md", tok, `{"content":"hello"}`, 200, `"notes/today.md"`},
		{"PUT", base + "/b64.bin", tok, `{"content":"` + base64.StdEncoding.EncodeToString([]byte{1, 2}) + `","encoding":"base64"}`, 200, ""},
		{"PUT", base + "/x.bin", tok, `{"content":"!!","encoding":"base64"}`, 400, "base64"},
		{"PUT", base + "/x.bin", tok, `{"content":"a","encoding":"rot13"}`, 400, "encoding"},
		{"PUT", base + "/x.md", tok, `{}`, 400, "content"},
		{"PUT", base + "/x.md", tok, `{"content":5}`, 400, ""},
		{"PUT", base + "/x.md", tok, `{bad json`, 400, ""},
		{"PUT", base + "/.auth_token", tok, `{"content":"steal"}`, 403, ""},
		{"PUT", base + "/../x.md", tok, `{"content":"a"}`, 400, ""},
		{"PUT", base, tok, `{"files":{"a.md":"1","dir/b.md":"2"}}`, 200, `"dir/b.md"`},
		{"PUT", base, tok, `{"files":{"../a.md":"1"}}`, 400, ""},
		{"PUT", base, tok, `{"files":{"/abs":"1"}}`, 400, ""},
		{"PUT", base, tok, `{"files":{}}`, 400, "at least one"},
		{"PUT", base, tok, `{"files":["a"]}`, 400, ""},
		{"PUT", base, tok, `{"files":{".auth_token":"x"}}`, 403, ""},
		{"DELETE", base + "/a.md", tok, "", 200, "deleted"},
		{"DELETE", base + "/a.md", tok, "", 404, ""},
		{"DELETE", base + "/", tok, "", 400, "root"},
		{"DELETE", base + "/../..", tok, "", 400, ""},
		{"GET", "/workspaces/" + extID.String() + "/files", extTok, "", 400, "external"},
		{"PUT", "/workspaces/" + extID.String() + "/files/a.md", extTok, `{"content":"x"}`, 400, "external"},
		{"PUT", "/workspaces/" + extID.String() + "/files", extTok, `{"files":{"a.md":"x"}}`, 400, "external"},
		{"DELETE", "/workspaces/" + extID.String() + "/files/a.md", extTok, "", 400, "external"},
	}
	var many strings.Builder
	many.WriteString(`{"files":{`)
	for i := 0; i < 201; i++ {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `"f%d.md":"x"`, i)
	}
	many.WriteString("}}")
	cases = append(cases, tc{"PUT", base, tok, many.String(), 400, "at most 200"},
		tc{"PUT", base + "/big.md", tok, `{"content":"` + strings.Repeat("x", 11<<20) + `"}`, 413, ""})
	for _, c := range cases {
		code, body := doRaw(c.method, c.path, c.bearer, c.body)
		if code != c.want || !strings.Contains(body, c.contains) {
			t.Errorf("%s %q: %d %.200s, want %d containing %q", c.method, c.path, code, body, c.want, c.contains)
		}
	}
	today, _ := fake.File(wsID, "notes/today.md")
	b64, _ := fake.File(wsID, "b64.bin")
	dirB, _ := fake.File(wsID, "dir/b.md")
	if string(today) != "hello" || !bytes.Equal(b64, []byte{1, 2}) || string(dirB) != "2" {
		t.Errorf("writes not applied: %v", fake.Files(wsID))
	}

	// Backend failures are opaque 500s; their text is logged only.
	fake.SetFilesErr(errors.New("Error response from daemon: mount /var/lib/docker/volumes/ws-x failed"))
	for _, m := range []struct{ method, path, body string }{
		{"GET", base, ""}, {"GET", base + "/config.yaml", ""}, {"PUT", base + "/a.md", `{"content":"x"}`}, {"DELETE", base + "/a.md", ""},
	} {
		code, body := doRaw(m.method, m.path, tok, m.body)
		if code != 500 || strings.Contains(body, "daemon") || !strings.Contains(body, "request_id") {
			t.Errorf("%s %s with a failing backend: %d %s", m.method, m.path, code, body)
		}
	}
	if !strings.Contains(logs.String(), "/var/lib/docker/volumes") {
		t.Errorf("backend error not logged")
	}
	fake.SetFilesErr(provisioner.ErrUnsupported)
	if code, _ := doRaw("GET", base, tok, ""); code != 501 {
		t.Errorf("unsupported: %d", code)
	}
	fake.SetFilesErr(provisioner.ErrNoBackend)
	if code, _ := doRaw("GET", base+"/config.yaml", tok, ""); code != 503 {
		t.Errorf("no backend: %d", code)
	}
}
