package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/portmux/portmux/internal/daemon"
	"github.com/portmux/portmux/internal/testtool"
)

// TestSystemdUnits: systemd-analyze verify accepts the unit pair in
// deploy/systemd, with ExecStart pointing at a real portmux binary.
func TestSystemdUnits(t *testing.T) {
	analyze := testtool.Need(t, "systemd-analyze")
	bin := portmuxBinary(t)
	dir := t.TempDir()
	for _, name := range []string{"portmux.socket", "portmux.service"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/portmux"), []byte(bin))
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, "verify", filepath.Join(dir, "portmux.socket"), filepath.Join(dir, "portmux.service"))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestKubernetesExample: the manifests parse, and the portmux
// configuration in the ConfigMap passes the daemon's own checks.
func TestKubernetesExample(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "deploy", "kubernetes", "portmux.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	kinds := map[string]bool{}
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		kinds[doc.Kind] = true
		if doc.Kind == "ConfigMap" {
			if _, err := daemon.ParseConfig([]byte(doc.Data["portmux.yaml"])); err != nil {
				t.Errorf("the ConfigMap's configuration: %v", err)
			}
		}
	}
	if !kinds["ConfigMap"] || !kinds["Deployment"] || !kinds["Service"] {
		t.Errorf("kinds %v; want ConfigMap, Deployment and Service", kinds)
	}
}

// TestDocConfigs: every configuration that README.md and docs/ show is
// valid.
func TestDocConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "..", "README.md"))
	blocks := 0
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for {
			var text []byte
			var ok bool
			if _, b, ok = bytes.Cut(b, []byte("```yaml\n")); !ok {
				break
			}
			if text, b, ok = bytes.Cut(b, []byte("```")); !ok {
				t.Fatalf("%s: a yaml block that does not end", name)
			}
			blocks++
			if _, err := daemon.ParseConfig(text); err != nil {
				t.Errorf("%s: the configuration\n%s\n%v", name, text, err)
			}
		}
	}
	if blocks < 2 {
		t.Errorf("%d yaml blocks in README.md and docs/; want the README's and the reference's", blocks)
	}
}
