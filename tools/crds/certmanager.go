// cert-manager's static install manifest, which `clusterctl init` installs before any provider
// (the providers' webhooks serve certificates cert-manager issues), built the way cert-manager's
// release builds `cert-manager.yaml` (its make/manifests.mk): `helm template` of the chart in the
// cert-manager Go module, with Helm's own Go library, release name and namespace `cert-manager`,
// `--kube-version 1.29.0`, `creator=static`, `startupapicheck.enabled=false` and
// `crds.enabled=true`, the chart's version and appVersion set to the release, and the
// `cert-manager` Namespace first. To every object it adds what clusterctl adds when it installs
// cert-manager (cert_manager.go: the `clusterctl.cluster.x-k8s.io` label,
// `clusterctl.cluster.x-k8s.io/core: cert-manager`, and the version annotation).
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	"sigs.k8s.io/yaml"
)

const (
	certManagerModule            = "github.com/cert-manager/cert-manager"
	certManagerNamespace         = "cert-manager"
	certManagerVersionAnnotation = "cert-manager.clusterctl.cluster.x-k8s.io/version"
)

// buildCertManager writes DIR/cert-manager.yaml and returns its index entry.
func buildCertManager(out, version string, dirs modules) (ComponentsEntry, error) {
	modDir, err := dirs.dir(certManagerModule, version)
	if err != nil {
		return ComponentsEntry{}, err
	}
	manifest, err := renderCertManager(filepath.Join(modDir, "deploy", "charts", "cert-manager"), version)
	if err != nil {
		return ComponentsEntry{}, fmt.Errorf("helm template cert-manager %s: %w", version, err)
	}
	entry := ComponentsEntry{
		Provider: "cert-manager", Name: "cert-manager", Type: "CertManager", Version: version,
		Module: certManagerModule, Namespace: certManagerNamespace, File: "cert-manager.yaml",
		Variables: []string{},
	}
	namespace := map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": certManagerNamespace}}
	objects := append([]map[string]any{namespace}, manifest...)
	var doc bytes.Buffer
	for _, obj := range objects {
		labels := map[string]string{clusterctlLabel: "", coreLabel: "cert-manager"}
		if _, err := addMetadata(obj, "labels", labels); err != nil {
			return ComponentsEntry{}, err
		}
		annotations := map[string]string{certManagerVersionAnnotation: version}
		if _, err := addMetadata(obj, "annotations", annotations); err != nil {
			return ComponentsEntry{}, err
		}
		if err := writeDoc(&doc, obj); err != nil {
			return ComponentsEntry{}, err
		}
		entry.Objects++
	}
	return entry, os.WriteFile(filepath.Join(out, entry.File), doc.Bytes(), 0o644)
}

// renderCertManager runs `helm template` on the chart directory, client-only, and returns the
// objects in Helm's install order (CRDs among them, as crds.enabled renders them as templates).
func renderCertManager(chartDir, version string) ([]map[string]any, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	setReleaseVersion(ch, version)
	install := action.NewInstall(action.NewConfiguration())
	install.DryRunStrategy = action.DryRunClient
	install.Replace = true
	install.ReleaseName = "cert-manager"
	install.Namespace = certManagerNamespace
	kube, err := common.ParseKubeVersion("1.29.0")
	if err != nil {
		return nil, err
	}
	install.KubeVersion = kube
	values := map[string]any{
		"creator":         "static",
		"startupapicheck": map[string]any{"enabled": false},
		"crds":            map[string]any{"enabled": true},
	}
	rel, err := install.Run(ch, values)
	if err != nil {
		return nil, err
	}
	r, ok := rel.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("unexpected release type %T", rel)
	}
	if len(r.Hooks) > 0 {
		return nil, fmt.Errorf("the chart rendered %d hooks; the static manifest has none", len(r.Hooks))
	}
	var objects []map[string]any
	for _, doc := range splitYAML([]byte(r.Manifest)) {
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, err
		}
		if obj != nil {
			objects = append(objects, obj)
		}
	}
	return objects, nil
}

// setReleaseVersion does what cert-manager's release does to Chart.yaml (version and
// appVersion are v0.0.0 in the source), so image tags and labels name the release.
func setReleaseVersion(ch *chart.Chart, version string) {
	ch.Metadata.Version = version
	ch.Metadata.AppVersion = version
}
