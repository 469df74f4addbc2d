package provisioner

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestQuoteYAMLRoundTrip(t *testing.T) {
	nasty := []string{
		"", "plain", "legit\nruntime: malicious", `quote " and \ backslash`, "tab\there", "cr\rlf\r\n",
		"- list", "key: value", "# comment", "{flow: map}", "[a, b]", "&anchor *alias", "!!binary x",
		"\x00nul", "\x1b[31mred", "line\u2028sep\u2029para", "\u0085nel", "bom\ufeff", "yes", "~", "null", "123",
		"\xff\xfe invalid utf8", "日本語", "---", "...", "'single'", "%TAG",
	}
	for _, s := range nasty {
		q := QuoteYAML(s)
		if strings.ContainsAny(q, "\n\r") {
			t.Errorf("QuoteYAML(%q) spans lines: %q", s, q)
		}
		var got map[string]any
		if err := yaml.Unmarshal([]byte("k: "+q+"\n"), &got); err != nil {
			t.Errorf("QuoteYAML(%q) = %s: %v", s, q, err)
			continue
		}
		if len(got) != 1 {
			t.Errorf("QuoteYAML(%q) added keys: %v", s, got)
		}
		want := strings.Map(func(r rune) rune { return r }, s) // each invalid byte → U+FFFD
		if got["k"] != want {
			t.Errorf("QuoteYAML(%q) decodes to %q", s, got["k"])
		}
	}
}

func TestConfigDocFileNamesAddNoKeys(t *testing.T) {
	doc := ConfigDoc{
		Name: "tpl\nruntime: evil", Template: "tpl",
		Skills:      []string{"legit\nruntime: malicious", "ok"},
		PromptFiles: []string{"prompts/a.md\nmodel: x", "b.md"},
	}
	var got map[string]any
	if err := yaml.Unmarshal(doc.YAML(), &got); err != nil {
		t.Fatalf("%v\n%s", err, doc.YAML())
	}
	for k := range got {
		switch k {
		case "name", "template", "skills", "prompt_files":
		default:
			t.Errorf("unexpected key %q in\n%s", k, doc.YAML())
		}
	}
	skills := got["skills"].([]any)
	if len(skills) != 2 || skills[0] != "legit\nruntime: malicious" {
		t.Errorf("skills = %v", skills)
	}
	if got["name"] != "tpl\nruntime: evil" {
		t.Errorf("name = %q", got["name"])
	}
}

func TestCleanRelPath(t *testing.T) {
	ok := map[string]string{
		"": "", "a": "a", "a/b.md": "a/b.md", "./a//b/": "a/b", "a/./b": "a/b", "skills/x\ny/SKILL.md": "skills/x\ny/SKILL.md", ".": "",
	}
	for in, want := range ok {
		got, good := CleanRelPath(in)
		if !good || got != want {
			t.Errorf("CleanRelPath(%q) = %q,%v want %q", in, got, good, want)
		}
	}
	for _, bad := range []string{"/etc/passwd", "..", "../x", "a/../../x", "a/..", "x\x00y", `a\..\b`, "//x"} {
		if got, good := CleanRelPath(bad); good {
			t.Errorf("CleanRelPath(%q) accepted as %q", bad, got)
		}
	}
}

func TestValidTemplateName(t *testing.T) {
	for _, good := range []string{"a", "my-template_1.0", strings.Repeat("x", 128)} {
		if ValidTemplateName(good) != nil {
			t.Errorf("%q rejected", good)
		}
	}
	for _, bad := range []string{"", ".hidden", "..", "a/b", "a b", "x\x00", strings.Repeat("x", 129), "ü"} {
		if ValidTemplateName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
