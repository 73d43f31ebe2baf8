// The provider components `clusterctl init` installs, built from the providers' Go modules the
// way each provider's `make release-manifests` builds its release asset: `kustomize build
// config/default` with kustomize's own Go API (krusty), the manager image set to the release's,
// and `${VARIABLES}` left in place for the installer (clusterctl's variable rules). To every
// object it adds the labels clusterctl adds at install time (`cluster.x-k8s.io/provider:
// <provider>`, `clusterctl.cluster.x-k8s.io: ""`), so the files read as what a management
// cluster holds. Written to -components DIR: DIR/<provider>.yaml (multi-document, in
// kustomize's order) and DIR/index.json (provider, type, name, version, namespace, file,
// variables per provider).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

type componentSource struct {
	provider     string // clusterctl's manifest label: <type>-<name>, or cluster-api
	name         string // clusterctl's provider name
	providerType string // clusterctl's provider type
	module       string
	version      string
	dir          string // the kustomization release-manifests builds, relative to the module root
	image        string // the release's manager image, without tag
}

// ComponentsEntry describes one provider in components/index.json.
type ComponentsEntry struct {
	Provider  string   `json:"provider"`
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Version   string   `json:"version"`
	Module    string   `json:"module"`
	Namespace string   `json:"namespace"`
	File      string   `json:"file"`
	Objects   int      `json:"objects"`
	Variables []string `json:"variables"`
}

// componentSources lists the providers whose versions are given (an empty version skips one).
func componentSources(capi, capd, capv, capa string) []componentSource {
	var sources []componentSource
	add := func(s componentSource, version string) {
		if version != "" {
			s.version = version
			sources = append(sources, s)
		}
	}
	const capiModule, capiImages = "sigs.k8s.io/cluster-api", "registry.k8s.io/cluster-api/"
	add(componentSource{"cluster-api", "cluster-api", "CoreProvider", capiModule, "", "core/config/default", capiImages + "cluster-api-controller"}, capi)
	add(componentSource{"bootstrap-kubeadm", "kubeadm", "BootstrapProvider", capiModule, "", "bootstrap/kubeadm/config/default", capiImages + "kubeadm-bootstrap-controller"}, capi)
	add(componentSource{"control-plane-kubeadm", "kubeadm", "ControlPlaneProvider", capiModule, "", "controlplane/kubeadm/config/default", capiImages + "kubeadm-control-plane-controller"}, capi)
	add(componentSource{"infrastructure-docker", "docker", "InfrastructureProvider", capiModule + "/test", "", "infrastructure/docker/config/default", capiImages + "capd-manager"}, capd)
	add(componentSource{"infrastructure-vsphere", "vsphere", "InfrastructureProvider", "sigs.k8s.io/cluster-api-provider-vsphere", "", "config/default", "registry.k8s.io/cluster-api-vsphere/cluster-api-vsphere-controller"}, capv)
	add(componentSource{"infrastructure-aws", "aws", "InfrastructureProvider", "sigs.k8s.io/cluster-api-provider-aws/v2", "", "config/default", "registry.k8s.io/cluster-api-aws/cluster-api-aws-controller"}, capa)
	return sources
}

// buildComponents writes cert-manager's components (when certManager names a version) and those
// of every source into out.
func buildComponents(out string, sources []componentSource, certManager string) error {
	if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		return fmt.Errorf("output directory %s is not empty", out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	dirs := modules{}
	var index []ComponentsEntry
	if certManager != "" {
		entry, err := buildCertManager(out, certManager, dirs)
		if err != nil {
			return err
		}
		index = append(index, entry)
		fmt.Fprintf(os.Stderr, "components: %-24s %s: %d objects in %s\n", entry.Provider, certManagerModule+"@"+certManager, entry.Objects, entry.Namespace)
	}
	for _, src := range sources {
		key := src.module + "@" + src.version
		dir, err := dirs.dir(src.module, src.version)
		if err != nil {
			return err
		}
		entry, err := build(out, src, dir)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", src.provider, key, err)
		}
		index = append(index, entry)
		fmt.Fprintf(os.Stderr, "components: %-24s %s: %d objects in %s\n", src.provider, key, entry.Objects, entry.Namespace)
	}
	js, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "index.json"), append(js, '\n'), 0o644)
}

// variable matches clusterctl's `${NAME}` and `${NAME:=default}` placeholders.
var variable = regexp.MustCompile(`\$\{\s*([A-Za-z_][A-Za-z0-9_]*)`)

func build(out string, src componentSource, modDir string) (ComponentsEntry, error) {
	opts := krusty.MakeDefaultOptions()
	resources, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), filepath.Join(modDir, src.dir))
	if err != nil {
		return ComponentsEntry{}, fmt.Errorf("kustomize build %s: %w", src.dir, err)
	}
	var doc bytes.Buffer
	entry := ComponentsEntry{Provider: src.provider, Name: src.name, Type: src.providerType, Version: src.version, Module: src.module, File: src.provider + ".yaml"}
	for _, res := range resources.Resources() {
		obj, err := res.Map()
		if err != nil {
			return ComponentsEntry{}, err
		}
		meta, err := addMetadata(obj, "labels", map[string]string{providerLabel: src.provider, clusterctlLabel: ""})
		if err != nil {
			return ComponentsEntry{}, err
		}
		if obj["kind"] == "Namespace" {
			if entry.Namespace != "" {
				return ComponentsEntry{}, fmt.Errorf("more than one Namespace (%s, %v)", entry.Namespace, meta["name"])
			}
			entry.Namespace, _ = meta["name"].(string)
		}
		if obj["kind"] == "Deployment" {
			setImages(obj, src)
		}
		if err := writeDoc(&doc, obj); err != nil {
			return ComponentsEntry{}, err
		}
		entry.Objects++
	}
	if entry.Namespace == "" {
		return ComponentsEntry{}, fmt.Errorf("no Namespace among the components")
	}
	seen := map[string]bool{}
	for _, m := range variable.FindAllSubmatch(doc.Bytes(), -1) {
		seen[string(m[1])] = true
	}
	for v := range seen {
		entry.Variables = append(entry.Variables, v)
	}
	sort.Strings(entry.Variables)
	return entry, os.WriteFile(filepath.Join(out, entry.File), doc.Bytes(), 0o644)
}

// setImages gives the provider's manager container the release image (`make release-manifests`
// does it with `kustomize edit set image`); other containers keep theirs.
func setImages(deployment map[string]any, src componentSource) {
	spec, _ := deployment["spec"].(map[string]any)
	template, _ := spec["template"].(map[string]any)
	podSpec, _ := template["spec"].(map[string]any)
	containers, _ := podSpec["containers"].([]any)
	for _, c := range containers {
		container, _ := c.(map[string]any)
		if container["name"] == "manager" {
			container["image"] = src.image + ":" + src.version
		}
	}
}

// addMetadata merges values into obj's metadata.<field> (labels or annotations), and returns
// the metadata.
func addMetadata(obj map[string]any, field string, values map[string]string) (map[string]any, error) {
	meta, _ := obj["metadata"].(map[string]any)
	if meta == nil {
		return nil, fmt.Errorf("an object without metadata: %v", obj["kind"])
	}
	merged, _ := meta[field].(map[string]any)
	if merged == nil {
		merged = map[string]any{}
	}
	for k, v := range values {
		merged[k] = v
	}
	meta[field] = merged
	return meta, nil
}

// writeDoc appends obj to doc as one YAML document.
func writeDoc(doc *bytes.Buffer, obj map[string]any) error {
	y, err := yaml.Marshal(obj)
	if err != nil {
		return err
	}
	doc.WriteString("---\n")
	doc.Write(y)
	return nil
}
