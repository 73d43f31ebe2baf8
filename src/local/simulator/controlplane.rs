//! The KubeadmControlPlane controller: one control-plane Machine first (which brings up the
//! workload API server), then the rest up to `spec.replicas`; a rolling replacement when the
//! version, the infrastructure template or the kubeadm config changes; and its status.

use serde_json::{Map, Value, json};

use super::machines::{
    self, NewMachine, base_labels, deletion_order, has_node, is_running, owned_by,
};
use super::naming::{hash, random_name};
use super::objects::{
    KCP_API, cloned_at, generation, ident, int, is_deleting, labels, name, object_ref, s, uid,
};
use super::status::{
    Counters, Rollout, cond_if, conditions, min_version, not_deleting_nor_paused,
    set_observed_generation,
};
use super::{Ctx, SimulatorError};

pub const CONTROL_PLANE_LABEL: &str = "cluster.x-k8s.io/control-plane";
pub const CONTROL_PLANE_NAME_LABEL: &str = "cluster.x-k8s.io/control-plane-name";
/// Which kubeadm config a control-plane machine was made from (the simulator's stand-in for
/// KCP comparing KubeadmConfigs).
pub const CONFIG_HASH_ANNOTATION: &str = "simulator.cairn.dev/kubeadm-config-hash";
/// Which machine template a control-plane machine was cloned from (KCP reads the
/// `cloned-from-name` annotation of the infrastructure machine; this saves a read per machine).
pub const TEMPLATE_ANNOTATION: &str = "simulator.cairn.dev/infrastructure-template";

/// What the control plane reports to the Cluster.
pub struct ControlPlane {
    pub initialized: bool,
    pub available: bool,
    pub desired: i64,
    pub counters: Counters,
    pub rollout: Rollout,
}

/// What an up-to-date control-plane machine looks like.
struct Desired {
    version: String,
    template: String,
    config_hash: String,
}

impl Desired {
    fn matches(&self, machine: &Value) -> bool {
        s(machine, "/spec/version") == self.version
            && s(
                machine,
                "/metadata/annotations/simulator.cairn.dev~1infrastructure-template",
            ) == self.template
            && s(
                machine,
                "/metadata/annotations/simulator.cairn.dev~1kubeadm-config-hash",
            ) == self.config_hash
    }
}

pub async fn reconcile(
    ctx: &mut Ctx<'_>,
    machines: &mut Vec<Value>,
    infra_ready: bool,
) -> Result<Option<ControlPlane>, SimulatorError> {
    let server = ctx.server.clone();
    let Some(cp_ref) = ctx.cluster.pointer("/spec/controlPlaneRef").cloned() else {
        return Ok(None);
    };
    let wanted = ident(
        KCP_API,
        s(&cp_ref, "/kind"),
        &ctx.namespace,
        s(&cp_ref, "/name"),
    );
    if s(&cp_ref, "/kind") != "KubeadmControlPlane" {
        return Err(SimulatorError::Unsupported {
            object: object_ref(&ctx.cluster),
            problem: format!(
                "the simulator runs KubeadmControlPlane only, not {}",
                s(&cp_ref, "/kind")
            ),
        });
    }
    let kcp = server.fetch_referenced(&ctx.cluster, &wanted).await?;
    if is_deleting(&kcp) {
        return Ok(None);
    }
    let kcp = server.ensure_owner(&kcp, &ctx.cluster, true).await?;
    let template_ref = cloned_at(&kcp, "/spec/machineTemplate/spec/infrastructureRef");
    let (_, template_ident) = server.resolve(&template_ref, &ctx.namespace).await?;
    let template = server.fetch_referenced(&kcp, &template_ident).await?;
    let template = server.ensure_owner(&template, &ctx.cluster, false).await?;

    let desired_replicas = int(&kcp, "/spec/replicas", 1);
    let config_spec = cloned_at(&kcp, "/spec/kubeadmConfigSpec");
    let desired = Desired {
        version: s(&kcp, "/spec/version").to_string(),
        template: name(&template).to_string(),
        config_hash: hash(&config_spec, 10),
    };
    let kcp_uid = uid(&kcp).to_string();
    let own = |machines: &Vec<Value>| owned_by(machines, &kcp_uid);

    // Bring machines up (the first one starts the workload API server).
    for i in own(machines) {
        let up_to_date = desired.matches(&machines[i]);
        machines::progress(ctx, &mut machines[i], Some(&kcp), up_to_date).await?;
    }
    // A control plane that was up before the simulator (re)started needs its server again.
    if ctx.state.workload.is_none() && own(machines).iter().any(|i| has_node(&machines[*i])) {
        ctx.ensure_workload(&kcp).await?;
    }
    // Initialized once `kubeadm init` has run on a machine: its API server answers and its Node
    // registered, Ready or not (that needs a CNI, which is applied only now). KCP scales up
    // from there, since its preflight checks want every machine's nodeRef, not a Ready Node.
    let initialized =
        ctx.state.workload.is_some() && own(machines).iter().any(|i| has_node(&machines[*i]));
    if initialized {
        ctx.write_secrets(&kcp).await?;
    }

    // Scale and roll.
    let owned = own(machines);
    let up_to_date = owned
        .iter()
        .filter(|i| desired.matches(&machines[**i]))
        .count() as i64;
    let to_create = if !infra_ready {
        0
    } else if !initialized {
        i64::from(owned.is_empty())
    } else {
        (desired_replicas - up_to_date).max(0)
    };
    for _ in 0..to_create {
        let first = !initialized;
        let new = new_machine(&ctx.name.clone(), &kcp, &template, &desired, first);
        let machine = machines::create(ctx, new).await?;
        machines.push(machine);
    }
    if initialized {
        let owned = own(machines);
        let ready_up_to_date = owned
            .iter()
            .filter(|i| desired.matches(&machines[**i]) && is_running(&machines[**i]))
            .count() as i64;
        let mut doomed: Vec<String> = Vec::new();
        if ready_up_to_date >= desired_replicas {
            doomed.extend(
                owned
                    .iter()
                    .filter(|i| !desired.matches(&machines[**i]))
                    .map(|i| name(&machines[*i]).to_string()),
            );
        }
        let mut current: Vec<&Value> = owned
            .iter()
            .map(|i| &machines[*i])
            .filter(|m| desired.matches(m))
            .collect();
        if current.len() as i64 > desired_replicas {
            deletion_order(&mut current);
            let surplus = current.len() - desired_replicas.max(0) as usize;
            doomed.extend(current[..surplus].iter().map(|m| name(m).to_string()));
        }
        machines::delete_named(ctx, machines, doomed).await?;
    }

    // Status.
    let owned: Vec<&Value> = own(machines).into_iter().map(|i| &machines[i]).collect();
    let counters = Counters::of(&owned, |m| desired.matches(m));
    let outdated = counters.replicas - counters.up_to_date;
    let cp = ControlPlane {
        initialized,
        available: initialized && counters.available >= 1,
        desired: desired_replicas,
        counters,
        rollout: Rollout::of(&counters, desired_replicas),
    };
    let all_ready = counters.ready == counters.replicas && counters.replicas > 0;
    let [rolling_out, scaling_up, scaling_down] = cp.rollout.conditions();
    let mut conds = vec![
        cond_if("Available", cp.available, "Available", "NotAvailable"),
        cond_if(
            "CertificatesAvailable",
            initialized,
            "Available",
            "NotAvailable",
        ),
        cond_if("Initialized", initialized, "Initialized", "NotInitialized"),
        cond_if("MachinesReady", all_ready, "Ready", "NotReady"),
        cond_if("MachinesUpToDate", outdated == 0, "UpToDate", "NotUpToDate"),
        rolling_out.msg(if cp.rollout.rolling_out {
            format!("{outdated} machines are not up to date")
        } else {
            String::new()
        }),
        scaling_up,
        scaling_down,
    ];
    conds.extend(not_deleting_nor_paused());
    let mut status = json!({
        "selector": format!("cluster.x-k8s.io/cluster-name={},{CONTROL_PLANE_LABEL}", ctx.name),
        "initialization": {"controlPlaneInitialized": initialized},
        "conditions": conditions(kcp.pointer("/status/conditions"), &conds, generation(&kcp)),
    });
    counters.write(&mut status);
    set_observed_generation(&mut status, &kcp);
    if let Some(version) = min_version(
        owned
            .iter()
            .map(|m| s(m, "/spec/version"))
            .filter(|v| !v.is_empty()),
    ) {
        status["version"] = version.into();
    }
    server
        .set_status(&kcp, status, "set the KubeadmControlPlane status")
        .await?;
    Ok(Some(cp))
}

fn new_machine<'a>(
    cluster: &str,
    kcp: &'a Value,
    template: &'a Value,
    desired: &Desired,
    first: bool,
) -> NewMachine<'a> {
    let mut machine_labels = labels(kcp, "/spec/machineTemplate/metadata/labels");
    machine_labels.extend(base_labels(cluster));
    machine_labels.insert(CONTROL_PLANE_LABEL.into(), "".into());
    machine_labels.insert(CONTROL_PLANE_NAME_LABEL.into(), name(kcp).into());
    let mut annotations = labels(kcp, "/spec/machineTemplate/metadata/annotations");
    annotations.insert(
        CONFIG_HASH_ANNOTATION.into(),
        desired.config_hash.clone().into(),
    );
    annotations.insert(TEMPLATE_ANNOTATION.into(), desired.template.clone().into());
    let mut spec: Map<String, Value> = kcp
        .pointer("/spec/machineTemplate/spec")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    spec.insert("version".into(), desired.version.clone().into());
    let mut bootstrap: Map<String, Value> = kcp
        .pointer("/spec/kubeadmConfigSpec")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if first {
        bootstrap.remove("joinConfiguration");
    } else {
        bootstrap.remove("initConfiguration");
    }
    NewMachine {
        owner: kcp,
        name: random_name(name(kcp)),
        labels: machine_labels,
        annotations,
        spec: Value::Object(spec),
        bootstrap: Some(Value::Object(bootstrap)),
        infra_template: template,
    }
}
