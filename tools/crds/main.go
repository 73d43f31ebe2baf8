// Command crds fetches the CustomResourceDefinitions of Cluster API and of the infrastructure
// providers cairn targets from their Go modules (through `go mod download`, i.e. the module cache;
// nothing is vendored into the repository) and writes them as `clusterctl init` would install them:
//
//   - the CRD files listed as `resources` in each provider's config/crd/kustomization.yaml;
//   - the labels that kustomization adds (`labels[].pairs` / `commonLabels`: the contract labels
//     such as `cluster.x-k8s.io/v1beta2: v1beta2`, versions separated by "_");
//   - the labels clusterctl adds to every provider object: `clusterctl.cluster.x-k8s.io: ""` and
//     `cluster.x-k8s.io/provider: <provider>`;
//   - if a provider's kustomization declares no contract label at all, `cluster.x-k8s.io/v1beta2`
//     with the CRD's served versions (the format CAPI's internal/contract reads).
//
// Deliberate difference from a clusterctl install: spec.conversion is set to `strategy: None`.
// Upstream, kustomize patches each CRD with `conversion.strategy: Webhook` pointing at the
// provider's webhook Service (and cert-manager injects its CA). cairn's local environment runs no
// provider controllers and no webhooks; a CRD whose conversion webhook Service does not exist
// makes the API server fail every request that needs a conversion (reads or writes in any
// non-storage version, and listing). With `None` the API server only rewrites apiVersion, so
// clients must use the storage version (index.json lists it) for correct results.
//
// Usage: crds -out DIR [-components DIR] [-capi v1.14.N] [-capd v1.14.N] [-capv v1.M.N] [-capa v2.M.N]
// An empty provider version skips that provider. DIR must not exist or be empty. Writes
// DIR/<provider>/<crd name>.yaml, DIR/all.yaml (every CRD, multi-document), and DIR/index.json.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

type source struct {
	provider string // clusterctl provider label value
	module   string
	version  string
	crdDir   string // directory holding kustomization.yaml, relative to the module root
}

type kustomization struct {
	Resources    []string          `json:"resources"`
	CommonLabels map[string]string `json:"commonLabels"`
	Labels       []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
}

// Entry describes one written CRD in index.json.
type Entry struct {
	Provider   string            `json:"provider"`
	Module     string            `json:"module"`
	Version    string            `json:"version"`
	Source     string            `json:"source"`
	File       string            `json:"file"`
	Name       string            `json:"name"`
	Group      string            `json:"group"`
	Kind       string            `json:"kind"`
	Plural     string            `json:"plural"`
	Scope      string            `json:"scope"`
	Served     []string          `json:"served"`
	Storage    string            `json:"storage"`
	Deprecated []string          `json:"deprecated,omitempty"`
	Labels     map[string]string `json:"labels"`
}

const (
	contractPrefix  = "cluster.x-k8s.io/v1"
	providerLabel   = "cluster.x-k8s.io/provider"
	clusterctlLabel = "clusterctl.cluster.x-k8s.io"
	coreLabel       = "clusterctl.cluster.x-k8s.io/core"
	// The pseudo-provider of clusterctl's inventory CRD: labelled as clusterctl labels its own
	// objects (core: inventory), with no provider label and no contract.
	inventory = "clusterctl"
)

func main() {
	out := flag.String("out", "", "output directory (must not exist or be empty)")
	capi := flag.String("capi", "", "sigs.k8s.io/cluster-api version (core, bootstrap-kubeadm, control-plane-kubeadm)")
	capd := flag.String("capd", "", "sigs.k8s.io/cluster-api/test version (infrastructure-docker)")
	capv := flag.String("capv", "", "sigs.k8s.io/cluster-api-provider-vsphere version")
	capa := flag.String("capa", "", "sigs.k8s.io/cluster-api-provider-aws/v2 version")
	certManager := flag.String("cert-manager", "", "github.com/cert-manager/cert-manager version, built into the components (see certmanager.go)")
	components := flag.String("components", "", "also build the providers' components into this directory (see components.go)")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	var sources []source
	add := func(provider, module, version, dir string) {
		if version != "" {
			sources = append(sources, source{provider, module, version, dir})
		}
	}
	add("cluster-api", "sigs.k8s.io/cluster-api", *capi, "core/config/crd")
	add("bootstrap-kubeadm", "sigs.k8s.io/cluster-api", *capi, "bootstrap/kubeadm/config/crd")
	add("control-plane-kubeadm", "sigs.k8s.io/cluster-api", *capi, "controlplane/kubeadm/config/crd")
	// clusterctl's inventory (its Provider objects), which clusterctl itself installs.
	add(inventory, "sigs.k8s.io/cluster-api", *capi, "cmd/clusterctl/config/crd")
	add("infrastructure-docker", "sigs.k8s.io/cluster-api/test", *capd, "infrastructure/docker/config/crd")
	add("infrastructure-vsphere", "sigs.k8s.io/cluster-api-provider-vsphere", *capv, "config/default/crd")
	add("infrastructure-aws", "sigs.k8s.io/cluster-api-provider-aws/v2", *capa, "config/crd")
	if len(sources) == 0 {
		fatalf("no provider versions given")
	}
	if err := run(*out, sources); err != nil {
		fatalf("%v", err)
	}
	if *components != "" {
		if err := buildComponents(*components, componentSources(*capi, *capd, *capv, *capa), *certManager); err != nil {
			fatalf("components: %v", err)
		}
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "crds: "+format+"\n", args...)
	os.Exit(1)
}

func run(out string, sources []source) error {
	if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		return fmt.Errorf("output directory %s is not empty", out)
	}
	dirs := modules{}
	var index []Entry
	var all bytes.Buffer
	for _, src := range sources {
		key := src.module + "@" + src.version
		dir, err := dirs.dir(src.module, src.version)
		if err != nil {
			return err
		}
		entries, docs, err := process(out, src, dir)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", src.provider, key, err)
		}
		index = append(index, entries...)
		for _, d := range docs {
			all.WriteString("---\n")
			all.Write(d)
		}
		fmt.Fprintf(os.Stderr, "crds: %-24s %s: %d CRDs\n", src.provider, key, len(entries))
	}
	if err := os.WriteFile(filepath.Join(out, "all.yaml"), all.Bytes(), 0o644); err != nil {
		return err
	}
	js, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "index.json"), append(js, '\n'), 0o644)
}

// modules remembers the module directories already downloaded, by module@version.
type modules map[string]string

// dir returns the module's directory in the module cache, downloading it the first time.
func (m modules) dir(module, version string) (string, error) {
	key := module + "@" + version
	if d, ok := m[key]; ok {
		return d, nil
	}
	d, err := download(module, version)
	if err == nil {
		m[key] = d
	}
	return d, err
}

// download returns the module's directory in the module cache.
func download(module, version string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", module+"@"+version)
	cmd.Dir = os.TempDir() // outside any module: the download must not touch a go.mod
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GO111MODULE=on")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil || info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s failed: %v %s %s", module, version, runErr, info.Error, stderr.String())
	}
	return info.Dir, nil
}

func process(out string, src source, modDir string) ([]Entry, [][]byte, error) {
	kpath := filepath.Join(modDir, src.crdDir, "kustomization.yaml")
	raw, err := os.ReadFile(kpath)
	if err != nil {
		return nil, nil, err
	}
	var k kustomization
	if err := yaml.Unmarshal(raw, &k); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", kpath, err)
	}
	kLabels := map[string]string{}
	for key, v := range k.CommonLabels {
		kLabels[key] = v
	}
	for _, l := range k.Labels {
		for key, v := range l.Pairs {
			kLabels[key] = v
		}
	}
	hasContract := false
	for key := range kLabels {
		if strings.HasPrefix(key, contractPrefix) {
			hasContract = true
		}
	}
	if len(k.Resources) == 0 {
		return nil, nil, fmt.Errorf("%s lists no resources", kpath)
	}
	if err := os.MkdirAll(filepath.Join(out, src.provider), 0o755); err != nil {
		return nil, nil, err
	}
	var entries []Entry
	var docs [][]byte
	for _, res := range k.Resources {
		rel := filepath.Join(src.crdDir, res)
		data, err := os.ReadFile(filepath.Join(modDir, rel))
		if err != nil {
			return nil, nil, err
		}
		for _, doc := range splitYAML(data) {
			var crd map[string]any
			if err := yaml.Unmarshal(doc, &crd); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", rel, err)
			}
			if crd == nil {
				continue
			}
			if crd["kind"] != "CustomResourceDefinition" || crd["apiVersion"] != "apiextensions.k8s.io/v1" {
				return nil, nil, fmt.Errorf("%s: not an apiextensions.k8s.io/v1 CustomResourceDefinition", rel)
			}
			if bytes.Contains(doc, []byte("${")) {
				return nil, nil, fmt.Errorf("%s: contains a clusterctl ${VARIABLE} placeholder", rel)
			}
			e, err := fixup(crd, src, kLabels, hasContract)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", rel, err)
			}
			e.Source = rel
			e.File = filepath.Join(src.provider, e.Name+".yaml")
			y, err := yaml.Marshal(crd)
			if err != nil {
				return nil, nil, err
			}
			if err := os.WriteFile(filepath.Join(out, e.File), append([]byte("---\n"), y...), 0o644); err != nil {
				return nil, nil, err
			}
			entries = append(entries, e)
			docs = append(docs, y)
		}
	}
	return entries, docs, nil
}

// fixup applies the labels and removes the webhook-dependent parts of one CRD in place.
func fixup(crd map[string]any, src source, kLabels map[string]string, hasContract bool) (Entry, error) {
	meta, _ := crd["metadata"].(map[string]any)
	spec, _ := crd["spec"].(map[string]any)
	if meta == nil || spec == nil {
		return Entry{}, errors.New("no metadata or spec")
	}
	delete(meta, "creationTimestamp")
	if ann, ok := meta["annotations"].(map[string]any); ok {
		delete(ann, "cert-manager.io/inject-ca-from")
		delete(ann, "cert-manager.io/inject-ca-from-secret")
	}
	spec["conversion"] = map[string]any{"strategy": "None"}

	names, _ := spec["names"].(map[string]any)
	e := Entry{
		Provider: src.provider,
		Module:   src.module,
		Version:  src.version,
		Name:     str(meta["name"]),
		Group:    str(spec["group"]),
		Kind:     str(names["kind"]),
		Plural:   str(names["plural"]),
		Scope:    str(spec["scope"]),
	}
	versions, _ := spec["versions"].([]any)
	for _, v := range versions {
		vm, _ := v.(map[string]any)
		name := str(vm["name"])
		if vm["served"] == true {
			e.Served = append(e.Served, name)
		}
		if vm["storage"] == true {
			if e.Storage != "" {
				return Entry{}, errors.New("more than one storage version")
			}
			e.Storage = name
		}
		if vm["deprecated"] == true {
			e.Deprecated = append(e.Deprecated, name)
		}
	}
	if e.Name == "" || e.Group == "" || e.Kind == "" || e.Storage == "" || len(e.Served) == 0 {
		return Entry{}, fmt.Errorf("incomplete CRD (name %q group %q kind %q storage %q)", e.Name, e.Group, e.Kind, e.Storage)
	}

	labels := map[string]string{}
	if l, ok := meta["labels"].(map[string]any); ok {
		for key, v := range l {
			labels[key] = str(v)
		}
	}
	for key, v := range kLabels {
		labels[key] = v
	}
	labels[clusterctlLabel] = ""
	switch {
	case src.provider == inventory:
		labels[coreLabel] = "inventory"
	case !hasContract && src.provider != "cluster-api":
		labels["cluster.x-k8s.io/v1beta2"] = strings.Join(e.Served, "_")
		fallthrough
	default:
		labels[providerLabel] = src.provider
	}
	lm := map[string]any{}
	for key, v := range labels {
		lm[key] = v
	}
	meta["labels"] = lm
	e.Labels = labels
	return e, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// splitYAML splits a multi-document YAML stream on `---` separator lines.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if len(bytes.TrimSpace(cur.Bytes())) > 0 {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
		}
		cur.Reset()
	}
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if t := bytes.TrimRight(line, " \t\r\n"); bytes.Equal(t, []byte("---")) {
			flush()
			continue
		}
		cur.Write(line)
	}
	flush()
	return docs
}
