//! Machines and what hangs off them: the KubeadmConfig (bootstrap), the infrastructure machine
//! (DockerMachine, VSphereMachine, AWSMachine cloned from a machine template), the bootstrap data
//! Secret, the Node; created, provisioned after `machine_delay`, and deleted together.

use serde_json::{Map, Value, json};

use super::objects::{
    BOOTSTRAP_API, BOOTSTRAP_GROUP, CAPI, CLUSTER_NAME_LABEL, cloned_at, controlled_by, generation,
    group_of, ident, is_deleting, labels, name, object_ref, owner_ref, s,
};
use super::status::{
    Cond, addresses, cond_if, conditions, is_true, not_deleting_nor_paused, provisioned_status,
    set_observed_generation,
};
use super::workload::{NodeSpec, delete_node, register_node};
use super::{Ctx, SimulatorError, secrets};

/// Everything needed to create one machine.
pub struct NewMachine<'a> {
    /// The KubeadmControlPlane or MachineSet that controls it.
    pub owner: &'a Value,
    pub name: String,
    pub labels: Map<String, Value>,
    pub annotations: Map<String, Value>,
    /// The Machine spec from the owner's template; `bootstrap.configRef` and
    /// `infrastructureRef` are replaced by the objects created here.
    pub spec: Value,
    /// The KubeadmConfig spec, or `None` when the template gives `bootstrap.dataSecretName`.
    pub bootstrap: Option<Value>,
    /// The machine template (DockerMachineTemplate, ...) to clone.
    pub infra_template: &'a Value,
}

/// The infrastructure machine kind of a machine template kind.
pub fn machine_kind(template_kind: &str) -> &str {
    template_kind
        .strip_suffix("Template")
        .unwrap_or(template_kind)
}

/// Creates the Machine, its KubeadmConfig and its infrastructure machine, each owned as the
/// real controllers own them. Returns the Machine as the server has it.
pub async fn create(ctx: &mut Ctx<'_>, m: NewMachine<'_>) -> Result<Value, SimulatorError> {
    ctx.ensure_active().await?;
    let server = ctx.server.clone();
    let namespace = ctx.namespace.clone();
    let template_api = s(m.infra_template, "/apiVersion");
    let infra_group = group_of(template_api);
    let infra_kind = machine_kind(s(m.infra_template, "/kind"));

    let mut spec = m.spec;
    if let Some(obj) = spec.as_object_mut() {
        obj.remove("infrastructureRef");
        obj.insert(
            "infrastructureRef".into(),
            json!({"apiGroup": infra_group, "kind": infra_kind, "name": m.name}),
        );
        if m.bootstrap.is_some() {
            obj.insert(
                "bootstrap".into(),
                json!({"configRef": {"apiGroup": BOOTSTRAP_GROUP, "kind": "KubeadmConfig", "name": m.name}}),
            );
        }
        obj.insert("clusterName".into(), ctx.name.clone().into());
    }
    let mut machine = ident(CAPI, "Machine", &namespace, &m.name);
    machine["metadata"]["labels"] = Value::Object(m.labels.clone());
    if !m.annotations.is_empty() {
        machine["metadata"]["annotations"] = Value::Object(m.annotations.clone());
    }
    machine["metadata"]["ownerReferences"] = json!([owner_ref(m.owner, true)]);
    machine["spec"] = spec;
    let machine = server.apply(&machine, "create a Machine").await?;
    ctx.report.created.push(object_ref(&machine));

    if let Some(bootstrap) = m.bootstrap {
        let mut config = ident(BOOTSTRAP_API, "KubeadmConfig", &namespace, &m.name);
        config["metadata"]["labels"] = Value::Object(m.labels.clone());
        config["metadata"]["ownerReferences"] = json!([owner_ref(&machine, true)]);
        if bootstrap.as_object().is_some_and(|o| !o.is_empty()) {
            config["spec"] = bootstrap;
        }
        server
            .apply(&config, "create the KubeadmConfig of a Machine")
            .await?;
        ctx.report.created.push(object_ref(&config));
    }

    let info = server.kind(infra_group, infra_kind).await?;
    let mut infra = ident(&info.api_version, infra_kind, &namespace, &m.name);
    let mut infra_labels = labels(m.infra_template, "/spec/template/metadata/labels");
    infra_labels.extend(m.labels);
    infra["metadata"]["labels"] = Value::Object(infra_labels);
    let mut annotations = labels(m.infra_template, "/spec/template/metadata/annotations");
    annotations.insert(
        "cluster.x-k8s.io/cloned-from-name".into(),
        name(m.infra_template).into(),
    );
    annotations.insert(
        "cluster.x-k8s.io/cloned-from-groupkind".into(),
        format!("{}.{infra_group}", s(m.infra_template, "/kind")).into(),
    );
    infra["metadata"]["annotations"] = Value::Object(annotations);
    infra["metadata"]["ownerReferences"] = json!([owner_ref(&machine, true)]);
    infra["spec"] = m
        .infra_template
        .pointer("/spec/template/spec")
        .cloned()
        .unwrap_or_else(|| json!({}));
    server
        .apply(&infra, "create the infrastructure machine of a Machine")
        .await?;
    ctx.report.created.push(object_ref(&infra));
    ctx.first_seen.insert(
        s(&machine, "/metadata/uid").to_string(),
        std::time::Instant::now(),
    );
    Ok(machine)
}

/// Whether the machine has a Node and is Ready.
pub fn is_running(machine: &Value) -> bool {
    machine.pointer("/status/nodeRef/name").is_some() && is_true(machine, "Ready")
}

/// Whether the machine has booted: its Node registered (its `nodeRef`), Ready or not.
pub fn has_node(machine: &Value) -> bool {
    machine.pointer("/status/nodeRef/name").is_some()
}

/// The machine's status: Provisioning until it boots, then Running with its Node; Ready only
/// while its Node is.
fn machine_status(machine: &Value, booted: bool, node_ready: bool, up_to_date: bool) -> Value {
    let ready = booted && node_ready;
    let node_reason = if booted {
        "NodeNotReady"
    } else {
        "NodeDoesNotExist"
    };
    let mut conds = vec![
        cond_if("BootstrapConfigReady", booted, "Ready", "NotReady"),
        cond_if("InfrastructureReady", booted, "Ready", "NotReady"),
        cond_if("NodeReady", ready, "NodeReady", node_reason),
        cond_if("NodeHealthy", ready, "NodeHealthy", node_reason),
        cond_if("UpToDate", up_to_date, "UpToDate", "NotUpToDate"),
        cond_if("Ready", ready, "Ready", "NotReady"),
        cond_if("Available", ready, "Available", "NotAvailable"),
    ];
    conds.extend(not_deleting_nor_paused());
    let mut status = json!({
        "phase": if booted { "Running" } else { "Provisioning" },
        "initialization": {
            "bootstrapDataSecretCreated": booted,
            "infrastructureProvisioned": booted,
        },
        "conditions": conditions(machine.pointer("/status/conditions"), &conds, generation(machine)),
    });
    set_observed_generation(&mut status, machine);
    if booted {
        status["nodeRef"] = json!({"name": name(machine)});
        status["addresses"] = addresses(name(machine));
    }
    status
}

fn provider_id(kind: &str, machine: &str) -> String {
    let digest = super::naming::hash(&Value::from(machine), 16);
    match kind {
        "DockerMachine" => format!("docker:////{machine}"),
        "AWSMachine" => format!("aws:///simulated-1a/i-{}", &digest[..16]),
        "VSphereMachine" => format!(
            "vsphere://{}-{}-{}-{}",
            &digest[..8],
            &digest[8..12],
            &digest[12..16],
            &digest[..12]
        ),
        _ => format!("cairn-simulator:///{machine}"),
    }
}

/// Moves a machine forward: after `machine_delay` it gets its bootstrap data, its
/// infrastructure is provisioned, its Node registers (the first control-plane machine starts
/// the workload API server), and it runs. Writes its status every time (no-op when unchanged).
pub async fn progress(
    ctx: &mut Ctx<'_>,
    machine: &mut Value,
    control_plane: Option<&Value>,
    up_to_date: bool,
) -> Result<(), SimulatorError> {
    if is_deleting(machine) {
        return Ok(());
    }
    let mut booted = has_node(machine);
    if !booted && ctx.due(machine) {
        if let Some(kcp) = control_plane {
            ctx.ensure_workload(kcp).await?;
        }
        if ctx.state.workload.is_some() {
            provision(ctx, machine, control_plane.is_some()).await?;
            ctx.first_seen.remove(s(machine, "/metadata/uid"));
            booted = true;
            ctx.report.provisioned.push(object_ref(machine));
        }
    }
    let node_ready = booted && node_ready(ctx, machine).await?;
    let status = machine_status(machine, booted, node_ready, up_to_date);
    *machine = ctx
        .server
        .set_status(machine, status, "set the Machine status")
        .await?;
    Ok(())
}

/// Whether the machine's Node (named after it) is Ready in the workload server.
async fn node_ready(ctx: &Ctx<'_>, machine: &Value) -> Result<bool, SimulatorError> {
    let Some(workload) = &ctx.state.workload else {
        return Ok(false);
    };
    let node = workload
        .server
        .fetch(&ident("v1", "Node", "", name(machine)))
        .await?;
    Ok(node.is_some_and(|n| is_true(&n, "Ready")))
}

async fn provision(
    ctx: &mut Ctx<'_>,
    machine: &mut Value,
    control_plane: bool,
) -> Result<(), SimulatorError> {
    let server = ctx.server.clone();
    let namespace = ctx.namespace.clone();
    let machine_name = name(machine).to_string();

    // Infrastructure machine: provider ID, provisioned.
    let infra_ref = cloned_at(machine, "/spec/infrastructureRef");
    let (info, infra_ident) = server.resolve(&infra_ref, &namespace).await?;
    let infra = server.fetch_referenced(machine, &infra_ident).await?;
    let provider = provider_id(s(&infra_ref, "/kind"), &machine_name);
    let infra = if info.has(&["spec", "providerID"]) && s(&infra, "/spec/providerID").is_empty() {
        server
            .merge_patch(
                &infra,
                &json!({"spec": {"providerID": provider}}),
                "set the provider ID",
            )
            .await?
    } else {
        infra
    };
    let mut status = provisioned_status(&info, &infra);
    if info.has(&["status", "addresses"]) {
        status["addresses"] = addresses(&machine_name);
    }
    if info.has(&["status", "instanceState"]) {
        status["instanceState"] = "running".into();
    }
    server
        .set_status(&infra, status, "provision the infrastructure machine")
        .await?;

    // Bootstrap: data Secret, KubeadmConfig status.
    let mut data_secret = s(machine, "/spec/bootstrap/dataSecretName").to_string();
    if machine.pointer("/spec/bootstrap/configRef").is_some() {
        let config_ident = ident(
            BOOTSTRAP_API,
            "KubeadmConfig",
            &namespace,
            s(machine, "/spec/bootstrap/configRef/name"),
        );
        let config = server.fetch_referenced(machine, &config_ident).await?;
        data_secret =
            secrets::write_bootstrap_secret(&server, &ctx.name, &config, control_plane).await?;
        let mut status = json!({
            "dataSecretName": data_secret,
            "initialization": {"dataSecretCreated": true},
            "conditions": conditions(
                config.pointer("/status/conditions"),
                &[
                    Cond::new("Ready", true, "Ready"),
                    Cond::new("DataSecretAvailable", true, "Available"),
                    Cond::new("CertificatesAvailable", true, "Available"),
                ],
                generation(&config),
            ),
        });
        set_observed_generation(&mut status, &config);
        server
            .set_status(&config, status, "set the KubeadmConfig status")
            .await?;
    }

    // Machine spec: what the machine controller copies from its bootstrap and infrastructure.
    let mut patch = json!({"spec": {"providerID": s(&infra, "/spec/providerID")}});
    if s(&infra, "/spec/providerID").is_empty() {
        patch["spec"]["providerID"] = provider.clone().into();
    }
    if !data_secret.is_empty() {
        patch["spec"]["bootstrap"] = json!({"dataSecretName": data_secret});
    }
    if s(machine, "/spec/providerID").is_empty()
        || s(machine, "/spec/bootstrap/dataSecretName") != data_secret
    {
        *machine = server
            .merge_patch(
                machine,
                &patch,
                "set the Machine's provider ID and bootstrap data",
            )
            .await?;
    }

    // The Node.
    if let Some(workload) = &ctx.state.workload {
        let node = NodeSpec::of_machine(machine, &ctx.name, &namespace, control_plane);
        register_node(&workload.server, &node).await?;
    }
    Ok(())
}

/// Deletes a machine with everything it owns (Node, infrastructure machine, KubeadmConfig and
/// its data Secret), as the machine controller does before it drops its finalizer.
pub async fn delete(ctx: &mut Ctx<'_>, machine: &Value) -> Result<(), SimulatorError> {
    ctx.ensure_active().await?;
    let server = ctx.server.clone();
    let namespace = ctx.namespace.clone();
    if let (Some(workload), Some(node)) = (
        &ctx.state.workload,
        machine
            .pointer("/status/nodeRef/name")
            .and_then(Value::as_str),
    ) {
        delete_node(&workload.server, node).await?;
    }
    let infra_ref = machine
        .pointer("/spec/infrastructureRef")
        .filter(|r| !s(r, "/kind").is_empty());
    if let Some(infra_ref) = infra_ref {
        let (_, infra) = server.resolve(infra_ref, &namespace).await?;
        ctx.delete(&infra, "delete the infrastructure machine")
            .await?;
    }
    let config_name = s(machine, "/spec/bootstrap/configRef/name");
    if !config_name.is_empty() {
        let config = ident(BOOTSTRAP_API, "KubeadmConfig", &namespace, config_name);
        ctx.delete(&config, "delete the KubeadmConfig").await?;
        let data = ident("v1", "Secret", &namespace, config_name);
        server
            .delete(&data, "delete the bootstrap data Secret")
            .await?;
    }
    ctx.delete(machine, "delete a Machine").await?;
    ctx.first_seen.remove(s(machine, "/metadata/uid"));
    Ok(())
}

/// Deletes the machines named in `doomed` (with what they own) and drops them from `machines`.
pub async fn delete_named(
    ctx: &mut Ctx<'_>,
    machines: &mut Vec<Value>,
    doomed: Vec<String>,
) -> Result<(), SimulatorError> {
    for doomed_name in doomed {
        if let Some(pos) = machines.iter().position(|m| name(m) == doomed_name) {
            let machine = machines.remove(pos);
            delete(ctx, &machine).await?;
        }
    }
    Ok(())
}

/// Where in `machines` those controlled by `owner_uid` and not being deleted are.
pub fn owned_by(machines: &[Value], owner_uid: &str) -> Vec<usize> {
    (0..machines.len())
        .filter(|i| controlled_by(&machines[*i], owner_uid) && !is_deleting(&machines[*i]))
        .collect()
}

/// The labels every machine of `cluster` carries.
pub fn base_labels(cluster: &str) -> Map<String, Value> {
    let mut labels = Map::new();
    labels.insert(CLUSTER_NAME_LABEL.into(), cluster.into());
    labels
}

/// The order in which surplus machines go: not running first, then the newest.
pub fn deletion_order(machines: &mut [&Value]) {
    machines.sort_by(|a, b| {
        is_running(a).cmp(&is_running(b)).then_with(|| {
            s(b, "/metadata/creationTimestamp")
                .cmp(s(a, "/metadata/creationTimestamp"))
                .then_with(|| name(b).cmp(name(a)))
        })
    });
}
