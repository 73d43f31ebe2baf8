//! A synthetic fleet for benchmarks: a valid config repository with any number of clusters.
//!
//! The fleet is deterministic (the same `clusters` always yields the same files) and shaped
//! like a real one: mixed providers (vSphere, AWS, Docker), one to three worker pools, per-cluster
//! variables, patches on some clusters, pivot on most, and three profiles whose layers depend on
//! each other. Each cluster gets about 20 add-on objects (Namespaces, a CRD, RBAC, ConfigMaps,
//! Deployments, a DaemonSet, Services, classes, a NetworkPolicy) with `${VARS}` to substitute,
//! some of them per cluster (`${CLUSTER_NAME}`), so the manifest cache cannot serve every cluster
//! from one parse. Strings that YAML could mistake for numbers, booleans or null, multi-line
//! strings and strings with `: ` or `#` are included on purpose, to exercise the YAML writer.
//!
//! `cargo run --release --example synth_fleet -- DIR 10000` writes one to disk.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// The profile sets clusters use, with how many in every 20 clusters use each:
/// 19, 19 and 27 add-on objects, about 20.6 on average.
const PROFILE_SETS: [(&[&str], u64); 3] = [
    (&["base", "observability"], 9),
    (&["base", "ingress"], 7),
    (&["base", "observability", "ingress"], 4),
];

/// The files of a synthetic fleet with `clusters` clusters, as (repository-relative path, text).
pub fn synthetic_fleet(clusters: usize) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::with_capacity(clusters + STATIC_FILES.len() + 4);
    files.push(("fleet.yaml".into(), FLEET.into()));
    for (path, text) in STATIC_FILES {
        files.push(((*path).into(), (*text).into()));
    }
    for i in 0..clusters {
        let (path, text) = cluster_file(i);
        files.push((path, text));
    }
    files
}

/// Writes the synthetic fleet under `dir` (created when missing).
pub fn write_synthetic_fleet(dir: &Path, clusters: usize) -> io::Result<()> {
    for (path, text) in synthetic_fleet(clusters) {
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, text)?;
    }
    Ok(())
}

/// A small deterministic mix of `i` and `salt` (SplitMix64), so choices look random but repeat.
fn mix(i: usize, salt: u64) -> u64 {
    let mut z = (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick<T: Copy>(i: usize, salt: u64, items: &[T]) -> T {
    items[(mix(i, salt) % items.len() as u64) as usize]
}

fn cluster_file(i: usize) -> (String, String) {
    let provider = match mix(i, 1) % 20 {
        0..=7 => "vsphere",
        8..=14 => "aws",
        _ => "docker",
    };
    let env = match provider {
        "docker" => pick(i, 2, &["dev", "dev", "ci"]),
        _ => pick(i, 2, &["prod", "prod", "staging", "dev"]),
    };
    let short = match provider {
        "vsphere" => "vs",
        "aws" => "aws",
        _ => "dkr",
    };
    let name = format!("{env}-{short}-{i:05}");
    let mut y = String::with_capacity(1600);
    let _ = writeln!(
        y,
        "# Synthetic cluster {i} (cairn::synth).\napiVersion: cairn.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: {name}\n  labels:\n    env: {env}\n    region: r{}\nspec:",
        i % 7
    );
    match mix(i, 3) % 4 {
        0 => y.push_str("  kubernetesVersion: v1.33.6\n"),
        1 => y.push_str("  kubernetesVersion: v1.34.2\n"),
        _ => {} // the fleet default
    }
    y.push_str("  infrastructure:\n");
    let (a, b) = ((i / 250) % 250, i % 250 + 2);
    match provider {
        "vsphere" => {
            let dc = pick(i, 4, &["dc1", "dc2", "dc3"]);
            let _ = write!(
                y,
                "    provider: vsphere\n    vsphere:\n      server: vcenter.{dc}.example.com\n      thumbprint: \"5B:1F:9A:3C:E2:07:44:D8:19:6A:BB:0C:71:F3:28:9E:C5:40:1D:{:02X}\"\n      datacenter: {dc}\n      datastore: vsan-{env}\n      network: k8s-{env}-vlan{}\n      resourcePool: k8s-{env}\n      folder: k8s/{env}\n      template: ubuntu-2404-kube-v1.34.2\n      identitySecret: vsphere-credentials\n",
                i % 256,
                100 + i % 50
            );
        }
        "aws" => {
            let region = pick(i, 4, &["eu-west-1", "us-east-1", "us-west-2", "ap-south-1"]);
            let _ = write!(
                y,
                "    provider: aws\n    aws:\n      region: {region}\n      sshKeyName: platform-{env}\n"
            );
            if mix(i, 5).is_multiple_of(3) {
                y.push_str("      identityRef: {kind: AWSClusterRoleIdentity, name: platform}\n");
            }
        }
        _ => y.push_str("    provider: docker\n    docker: {}\n"),
    }
    let cp_replicas = match (env, mix(i, 6) % 4) {
        ("dev" | "ci", _) => 1,
        (_, 3) => 5,
        _ => 3,
    };
    let _ = writeln!(y, "  controlPlane:\n    replicas: {cp_replicas}");
    if provider == "vsphere" {
        let _ = writeln!(y, "    endpoint: {{host: 10.{a}.{b}.10, port: 6443}}");
    }
    y.push_str("    machine: ");
    y.push_str(&machine(provider, i, 0));
    y.push_str("\n  workers:\n");
    let pools = 1 + mix(i, 7) % 3;
    for p in 0..pools {
        let _ = writeln!(
            y,
            "    - name: md-{p}\n      replicas: {}\n      machine: {}",
            mix(i, 8 + p) % 10,
            machine(provider, i, p + 1)
        );
    }
    let (profiles, _) = {
        let roll = mix(i, 11) % 20;
        let mut acc = 0;
        *PROFILE_SETS
            .iter()
            .find(|(_, n)| {
                acc += n;
                roll < acc
            })
            .unwrap_or(&PROFILE_SETS[0])
    };
    let _ = writeln!(y, "  profiles: [{}]", profiles.join(", "));
    let mut vars = Vec::new();
    if profiles.contains(&"observability") {
        vars.push(format!(
            "ALERT_WEBHOOK: https://alerts.example.com/hooks/{name}"
        ));
        if env != "prod" {
            vars.push(format!(
                "LOG_LEVEL: {}",
                pick(i, 12, &["debug", "info", "warn"])
            ));
        }
    }
    if mix(i, 13).is_multiple_of(4) {
        vars.push(format!("POD_CIDR: 172.{}.0.0/16", 16 + i % 16));
    }
    if profiles.contains(&"ingress") && mix(i, 14).is_multiple_of(3) {
        vars.push(format!("INGRESS_REPLICAS: \"{}\"", 2 + i % 3));
    }
    if !vars.is_empty() {
        y.push_str("  variables:\n");
        for v in vars {
            let _ = writeln!(y, "    {v}");
        }
    }
    let mut patches = Vec::new();
    if mix(i, 15).is_multiple_of(5) {
        patches.push(
            "    - target: {kind: KubeadmControlPlane}\n      patch:\n        - {op: add, path: /metadata/labels/tier, value: gold}\n",
        );
    }
    if mix(i, 16).is_multiple_of(8) {
        patches.push(
            "    - target: {apiVersion: apps/v1, kind: Deployment, name: csi-controller, stage: addons}\n      patch:\n        - {op: replace, path: /spec/replicas, value: 2}\n        - {op: add, path: /metadata/annotations, value: {cairn.dev/patched: \"true\"}}\n",
        );
    }
    if !patches.is_empty() {
        y.push_str("  patches:\n");
        patches.iter().for_each(|p| y.push_str(p));
    }
    let pivot = match provider {
        "docker" => mix(i, 17).is_multiple_of(4),
        _ => !mix(i, 17).is_multiple_of(10),
    };
    let _ = writeln!(y, "  pivot: {pivot}");
    (format!("clusters/{env}/{provider}/{name}.yaml"), y)
}

/// A flow-style machine for `provider`; `pool` 0 is the control plane.
fn machine(provider: &str, i: usize, pool: u64) -> String {
    match provider {
        "vsphere" => {
            let cpus = [2, 4, 8, 16][(mix(i, 20 + pool) % 4) as usize];
            let mem = cpus * [2048, 4096, 8192][(mix(i, 30 + pool) % 3) as usize];
            let disk = [40, 80, 100, 200][(mix(i, 40 + pool) % 4) as usize];
            format!("{{cpus: {cpus}, memoryMiB: {mem}, diskGiB: {disk}}}")
        }
        "aws" => {
            let t = pick(
                i,
                20 + pool,
                &[
                    "m6i.large",
                    "m6i.xlarge",
                    "m6i.2xlarge",
                    "r6i.xlarge",
                    "c6i.2xlarge",
                ],
            );
            let disk = [50, 100, 200][(mix(i, 40 + pool) % 3) as usize];
            format!("{{instanceType: {t}, rootVolumeGiB: {disk}}}")
        }
        _ => {
            if mix(i, 20 + pool).is_multiple_of(3) {
                "{customImage: \"kindest/node:v1.34.2\"}".into()
            } else {
                "{}".into()
            }
        }
    }
}

const FLEET: &str = "\
# Synthetic fleet (cairn::synth).
apiVersion: cairn.dev/v1alpha1
kind: Fleet
metadata:
  name: synthetic
spec:
  defaults:
    kubernetesVersion: v1.34.2
    pivot: true
  agent:
    image: ghcr.io/acme/cairn:0.1.0
  source:
    url: https://git.example.com/platform/synthetic-fleet.git
    branch: main
    credentialsSecret: fleet-git-credentials
";

/// Profiles and add-on manifests (the same for every fleet size).
const STATIC_FILES: &[(&str, &str)] = &[
    (
        "profiles/base.yaml",
        "\
apiVersion: cairn.dev/v1alpha1
kind: ClusterProfile
metadata:
  name: base
spec:
  variables:
    POD_CIDR: {default: 192.168.0.0/16}
    CNI_MTU: {default: \"1440\"}
  layers:
    - name: cni
      namespace: cni-system
      manifests: [addons/cni/*.yaml]
    - name: storage
      namespace: csi-system
      manifests: [addons/storage/*.yaml]
      dependsOn: [cni]
",
    ),
    (
        "profiles/observability.yaml",
        "\
apiVersion: cairn.dev/v1alpha1
kind: ClusterProfile
metadata:
  name: observability
spec:
  variables:
    LOG_LEVEL: {default: info}
    RETENTION: {default: 15d}
    ALERT_WEBHOOK: {}
  layers:
    - name: metrics
      namespace: monitoring
      manifests: [addons/metrics/*.yaml]
      dependsOn: [cni]
    - name: dashboards
      namespace: monitoring
      dependsOn: [metrics]
      wait: false
      inline: |
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: dashboards
          labels:
            grafana_dashboard: \"1\"
        data:
          level: \"${LOG_LEVEL}\"
          enabled: \"yes\"
          overview.json: '{\"title\": \"${CLUSTER_NAME} overview\", \"refresh\": \"30s\"}'
",
    ),
    (
        "profiles/ingress.yaml",
        "\
apiVersion: cairn.dev/v1alpha1
kind: ClusterProfile
metadata:
  name: ingress
spec:
  variables:
    INGRESS_REPLICAS: {default: \"2\"}
    INGRESS_CLASS: {default: nginx}
  layers:
    - name: ingress
      namespace: ingress-system
      manifests: [addons/ingress/*.yaml]
      dependsOn: [cni]
    - name: ingress-policy
      namespace: ingress-system
      dependsOn: [ingress]
      inline: |
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata:
          name: allow-ingress
        spec:
          podSelector:
            matchLabels:
              app.kubernetes.io/name: ingress-controller
          policyTypes: [Ingress]
          ingress:
            - ports:
                - {port: 80, protocol: TCP}
                - {port: 443, protocol: TCP}
",
    ),
    (
        "addons/cni/namespace.yaml",
        "\
apiVersion: v1
kind: Namespace
metadata:
  name: cni-system
  labels:
    pod-security.kubernetes.io/enforce: privileged
",
    ),
    (
        "addons/cni/crd-ippools.yaml",
        "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ippools.cni.example.com
spec:
  group: cni.example.com
  names:
    kind: IPPool
    listKind: IPPoolList
    plural: ippools
    singular: ippool
  scope: Cluster
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          description: 'IPPool is a range of pod addresses. Note: blocks are /26 by default.'
          properties:
            spec:
              type: object
              required: [cidr]
              properties:
                cidr: {type: string, description: The pool CIDR.}
                blockSize: {type: integer, minimum: 20, maximum: 32}
                natOutgoing: {type: boolean, default: true}
                mode: {type: string, enum: [Never, Always, CrossSubnet, 'off', 'null']}
",
    ),
    (
        "addons/cni/rbac.yaml",
        "\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: cni-node
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cni-node
rules:
  - apiGroups: [\"\"]
    resources: [pods, nodes, namespaces, endpoints, services]
    verbs: [get, list, watch]
  - apiGroups: [cni.example.com]
    resources: [ippools]
    verbs: [get, list, watch, create, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: cni-node
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cni-node
subjects:
  - kind: ServiceAccount
    name: cni-node
    namespace: cni-system
",
    ),
    (
        "addons/cni/configmap.yaml",
        "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: cni-config
data:
  backend: bird
  veth_mtu: \"${CNI_MTU}\"
  ipv4_pool_cidr: \"${POD_CIDR}\"
  ipip: \"off\"
  nat_outgoing: \"true\"
  empty: \"\"
  padded: \"  leading and trailing  \"
  comment_like: \"value # not a comment\"
  cni_network_config: |-
    {
      \"name\": \"k8s-pod-network\",
      \"cniVersion\": \"0.3.1\",
      \"plugins\": [
        {\"type\": \"cni\", \"mtu\": ${CNI_MTU}, \"ipam\": {\"type\": \"host-local\", \"subnet\": \"${POD_CIDR}\"}},
        {\"type\": \"portmap\", \"snat\": true, \"capabilities\": {\"portMappings\": true}}
      ]
    }
",
    ),
    (
        "addons/cni/daemonset.yaml",
        "\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: cni-node
  labels:
    app.kubernetes.io/name: cni-node
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: cni-node
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 1}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: cni-node
    spec:
      serviceAccountName: cni-node
      hostNetwork: true
      priorityClassName: system-node-critical
      tolerations:
        - operator: Exists
      initContainers:
        - name: install-cni
          image: registry.example.com/cni/install:v3.30.1
          command: [/opt/cni/install.sh]
          env:
            - {name: CNI_MTU, valueFrom: {configMapKeyRef: {name: cni-config, key: veth_mtu}}}
            - {name: CNI_NETWORK_CONFIG, valueFrom: {configMapKeyRef: {name: cni-config, key: cni_network_config}}}
          volumeMounts:
            - {name: cni-net-dir, mountPath: /host/etc/cni/net.d}
      containers:
        - name: node
          image: registry.example.com/cni/node:v3.30.1
          env:
            - {name: DATASTORE_TYPE, value: kubernetes}
            - {name: IP_AUTODETECTION_METHOD, value: \"first-found\"}
            - {name: FELIX_LOGSEVERITYSCREEN, value: info}
            - {name: CLUSTER_NAME, value: \"${CLUSTER_NAME}\"}
            - {name: NODENAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
          securityContext:
            privileged: true
          resources:
            requests: {cpu: 250m, memory: 128Mi}
          livenessProbe:
            exec:
              command: [/bin/node, -felix-live]
            periodSeconds: 10
            initialDelaySeconds: 10
          volumeMounts:
            - {name: lib-modules, mountPath: /lib/modules, readOnly: true}
            - {name: var-run, mountPath: /var/run/cni}
      volumes:
        - {name: lib-modules, hostPath: {path: /lib/modules}}
        - {name: var-run, hostPath: {path: /var/run/cni}}
        - {name: cni-net-dir, hostPath: {path: /etc/cni/net.d}}
",
    ),
    (
        "addons/storage/csidriver.yaml",
        "\
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: hostpath.csi.example.com
spec:
  attachRequired: false
  podInfoOnMount: true
  volumeLifecycleModes: [Persistent, Ephemeral]
",
    ),
    (
        "addons/storage/storageclass.yaml",
        "\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: \"true\"
provisioner: hostpath.csi.example.com
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
allowVolumeExpansion: true
",
    ),
    (
        "addons/storage/controller.yaml",
        "\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: csi-controller
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: csi-controller
  labels:
    app.kubernetes.io/name: csi-controller
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: csi-controller
  template:
    metadata:
      labels:
        app.kubernetes.io/name: csi-controller
    spec:
      serviceAccountName: csi-controller
      containers:
        - name: plugin
          image: registry.k8s.io/sig-storage/hostpathplugin:v1.17.0
          args: [--drivername=hostpath.csi.example.com, \"--v=5\", --endpoint=$(CSI_ENDPOINT), --nodeid=$(KUBE_NODE_NAME)]
          env:
            - {name: CSI_ENDPOINT, value: \"unix:///csi/csi.sock\"}
            - {name: KUBE_NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
          resources:
            requests: {cpu: 10m, memory: 20Mi}
        - name: provisioner
          image: registry.k8s.io/sig-storage/csi-provisioner:v5.2.0
          args: [\"-v=5\", --csi-address=/csi/csi.sock, --feature-gates=Topology=true]
",
    ),
    (
        "addons/metrics/namespace.yaml",
        "\
apiVersion: v1
kind: Namespace
metadata:
  name: monitoring
",
    ),
    (
        "addons/metrics/rbac.yaml",
        "\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: prometheus
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: prometheus
rules:
  - apiGroups: [\"\"]
    resources: [nodes, nodes/metrics, services, endpoints, pods]
    verbs: [get, list, watch]
  - nonResourceURLs: [/metrics]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: prometheus
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: prometheus}
subjects:
  - {kind: ServiceAccount, name: prometheus, namespace: monitoring}
",
    ),
    (
        "addons/metrics/configmap.yaml",
        "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: prometheus-config
data:
  prometheus.yml: |
    global:
      scrape_interval: 30s
      external_labels:
        cluster: ${CLUSTER_NAME}
        provider: ${PROVIDER}
        replica: $${POD_NAME}
    alerting:
      alertmanagers:
        - static_configs:
            - targets: [alertmanager.monitoring.svc:9093]
    scrape_configs:
      - job_name: kubernetes-nodes
        scheme: https
        kubernetes_sd_configs:
          - role: node
      - job_name: kubernetes-pods
        kubernetes_sd_configs:
          - role: pod
        relabel_configs:
          - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
            action: keep
            regex: \"true\"
  alertmanager.yml: |
    route:
      receiver: webhook
    receivers:
      - name: webhook
        webhook_configs:
          - url: \"${ALERT_WEBHOOK}\"
  version: \"1.10\"
  null_like: \"~\"
",
    ),
    (
        "addons/metrics/deployment.yaml",
        "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: prometheus
  labels:
    app.kubernetes.io/name: prometheus
spec:
  replicas: 1
  strategy:
    type: Recreate
  selector:
    matchLabels:
      app.kubernetes.io/name: prometheus
  template:
    metadata:
      labels:
        app.kubernetes.io/name: prometheus
      annotations:
        prometheus.io/scrape: \"true\"
    spec:
      serviceAccountName: prometheus
      securityContext: {runAsNonRoot: true, runAsUser: 65534, fsGroup: 65534}
      containers:
        - name: prometheus
          image: quay.io/prometheus/prometheus:v3.5.0
          args:
            - --config.file=/etc/prometheus/prometheus.yml
            - --storage.tsdb.retention.time=${RETENTION}
            - --log.level=${LOG_LEVEL}
          ports:
            - {name: web, containerPort: 9090, protocol: TCP}
          readinessProbe:
            httpGet: {path: /-/ready, port: web}
          resources:
            requests: {cpu: 500m, memory: 2Gi}
            limits: {memory: 4Gi}
          volumeMounts:
            - {name: config, mountPath: /etc/prometheus}
      volumes:
        - name: config
          configMap: {name: prometheus-config}
",
    ),
    (
        "addons/metrics/service.yaml",
        "\
apiVersion: v1
kind: Service
metadata:
  name: prometheus
  labels:
    app.kubernetes.io/name: prometheus
spec:
  selector:
    app.kubernetes.io/name: prometheus
  ports:
    - {name: web, port: 9090, targetPort: web}
",
    ),
    (
        "addons/ingress/namespace.yaml",
        "\
apiVersion: v1
kind: Namespace
metadata:
  name: ingress-system
",
    ),
    (
        "addons/ingress/rbac.yaml",
        "\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: ingress-controller
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: ingress-controller
rules:
  - apiGroups: [\"\"]
    resources: [configmaps, pods, secrets, endpoints]
    verbs: [get, list, watch]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, create, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: ingress-controller
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ingress-controller}
subjects:
  - {kind: ServiceAccount, name: ingress-controller}
",
    ),
    (
        "addons/ingress/controller.yaml",
        "\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: ${INGRESS_CLASS}
spec:
  controller: k8s.io/ingress-${INGRESS_CLASS}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ingress-controller
data:
  use-forwarded-headers: \"true\"
  proxy-body-size: 8m
  log-format-upstream: '$remote_addr - [$time_local] \"$request\" $status'
  server-snippet: |
    # served by ${CLUSTER_NAME}
    add_header X-Cluster ${CLUSTER_NAME};
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ingress-controller
  labels:
    app.kubernetes.io/name: ingress-controller
spec:
  replicas: ${INGRESS_REPLICAS}
  selector:
    matchLabels:
      app.kubernetes.io/name: ingress-controller
  template:
    metadata:
      labels:
        app.kubernetes.io/name: ingress-controller
    spec:
      serviceAccountName: ingress-controller
      containers:
        - name: controller
          image: registry.k8s.io/ingress-nginx/controller:v1.13.0
          args: [/nginx-ingress-controller, --ingress-class=${INGRESS_CLASS}, --configmap=$(POD_NAMESPACE)/ingress-controller]
          env:
            - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
          ports:
            - {name: http, containerPort: 80}
            - {name: https, containerPort: 443}
---
apiVersion: v1
kind: Service
metadata:
  name: ingress-controller
spec:
  type: LoadBalancer
  selector:
    app.kubernetes.io/name: ingress-controller
  ports:
    - {name: http, port: 80, targetPort: http}
    - {name: https, port: 443, targetPort: https}
",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RepoSnapshot;
    use crate::model::types::StageName;

    #[test]
    fn synthetic_fleet_is_valid_and_mixed() {
        let files = synthetic_fleet(60);
        let snapshot = RepoSnapshot::from_files(files.iter().map(|(p, t)| (p.clone(), t)));
        let rendered = crate::render::render_repo(&snapshot, &[]);
        let errors: Vec<String> = rendered.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(errors.is_empty(), "{}", errors.join("\n"));
        assert_eq!(rendered.bundles.len(), 60);
        let addons: usize = rendered
            .bundles
            .iter()
            .map(|b| b.stage(StageName::Addons).map_or(0, |s| s.objects.len()))
            .sum();
        let per_cluster = addons as f64 / 60.0;
        assert!((17.0..=24.0).contains(&per_cluster), "{per_cluster}");
        assert!(rendered.bundles.iter().any(|b| b.pivot));
        assert!(rendered.bundles.iter().any(|b| !b.pivot));
        for provider in ["/vsphere/", "/aws/", "/docker/"] {
            assert!(
                files.iter().any(|(p, _)| p.contains(provider)),
                "{provider}"
            );
        }
        assert_eq!(files, synthetic_fleet(60), "deterministic");
    }
}
