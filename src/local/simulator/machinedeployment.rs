//! The MachineDeployment and MachineSet controllers: one MachineSet per distinct machine
//! template (bootstrap config, infrastructure template, version, failure domain); the current
//! one scaled to `spec.replicas`, older ones scaled to zero and deleted once the current one is
//! fully up (a rolling replacement); Machines per MachineSet; and their statuses.

use serde_json::{Map, Value, json};

use super::machines::{self, NewMachine, base_labels, deletion_order, is_running, owned_by};
use super::naming::{hash, random_name};
use super::objects::{
    BOOTSTRAP_API, CAPI, CLUSTER_NAME_LABEL, cloned_at, controlled_by, generation, ident, int,
    is_deleting, labels, name, object_ref, owner_ref, s, uid,
};
use super::status::{
    Counters, Rollout, cond_if, conditions, not_deleting_nor_paused, set_observed_generation,
};
use super::{Ctx, SimulatorError};

pub const TEMPLATE_HASH_LABEL: &str = "machine-template-hash";
pub const DEPLOYMENT_NAME_LABEL: &str = "cluster.x-k8s.io/deployment-name";
pub const SET_NAME_LABEL: &str = "cluster.x-k8s.io/set-name";

/// What the workers report to the Cluster.
#[derive(Default)]
pub struct Workers {
    pub desired: i64,
    pub counters: Counters,
    pub available: bool,
    pub rollout: Rollout,
}

/// Every MachineDeployment of the cluster. One that fails is reported and the others go on.
pub async fn reconcile(
    ctx: &mut Ctx<'_>,
    machines: &mut Vec<Value>,
) -> Result<Workers, SimulatorError> {
    let server = ctx.server.clone();
    let mut deployments = server
        .cluster_objects("MachineDeployment", &ctx.namespace, &ctx.name)
        .await?;
    deployments.retain(|md| !is_deleting(md));
    let mut sets = server
        .cluster_objects("MachineSet", &ctx.namespace, &ctx.name)
        .await?;
    sets.retain(|ms| !is_deleting(ms));
    let mut workers = Workers {
        available: true,
        ..Workers::default()
    };
    for md in deployments {
        match reconcile_deployment(ctx, &md, &sets, machines).await {
            Ok(w) => {
                workers.desired += w.desired;
                workers.counters.add(w.counters);
                workers.available &= w.available;
                workers.rollout.add(w.rollout);
            }
            Err(e) => {
                tracing::warn!(cluster = %ctx.name, "{}: {}", object_ref(&md), crate::errors::chain(&e));
                workers.available = false;
                ctx.report.errors.push(e);
            }
        }
    }
    Ok(workers)
}

/// The `k=v,...` form of a selector's matchLabels.
fn selector_string(selector: &Value) -> String {
    selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// What the statuses of a MachineDeployment and a MachineSet share: the selector (as a string),
/// the replica counters and the generation observed.
fn write_replica_status(status: &mut Value, obj: &Value, counters: &Counters) {
    let selector = selector_string(obj.pointer("/spec/selector").unwrap_or(&Value::Null));
    if !selector.is_empty() {
        status["selector"] = selector.into();
    }
    counters.write(status);
    set_observed_generation(status, obj);
}

async fn reconcile_deployment(
    ctx: &mut Ctx<'_>,
    md: &Value,
    sets: &[Value],
    machines: &mut Vec<Value>,
) -> Result<Workers, SimulatorError> {
    let server = ctx.server.clone();
    let md = server.ensure_owner(md, &ctx.cluster, false).await?;
    let spec = cloned_at(&md, "/spec/template/spec");
    // The templates belong to the Cluster, as CAPI's MachineDeployment controller records.
    for template in templates_of(ctx, &md, &spec).await? {
        server.ensure_owner(&template, &ctx.cluster, false).await?;
    }
    let template_key = json!({
        "version": spec.get("version"),
        "bootstrap": spec.get("bootstrap"),
        "infrastructureRef": spec.get("infrastructureRef"),
        "failureDomain": spec.get("failureDomain"),
    });
    let template_hash = hash(&template_key, 10);
    let md_name = name(&md);
    let prefix = &md_name[..md_name.len().min(240)];
    let current_name = format!("{prefix}-{template_hash}");
    let desired = int(&md, "/spec/replicas", 1);
    let md_uid = uid(&md).to_string();
    let owned: Vec<&Value> = sets
        .iter()
        .filter(|ms| controlled_by(ms, &md_uid))
        .collect();

    // The current MachineSet, at the desired size.
    let mut template = md
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut template_labels = labels(&template, "/metadata/labels");
    template_labels.insert(TEMPLATE_HASH_LABEL.into(), template_hash.clone().into());
    template_labels.insert(DEPLOYMENT_NAME_LABEL.into(), md_name.into());
    template_labels.insert(CLUSTER_NAME_LABEL.into(), ctx.name.clone().into());
    template["metadata"]["labels"] = Value::Object(template_labels.clone());
    let mut selector = md
        .pointer("/spec/selector")
        .cloned()
        .unwrap_or_else(|| json!({}));
    selector["matchLabels"][TEMPLATE_HASH_LABEL] = template_hash.clone().into();
    let mut set = ident(CAPI, "MachineSet", &ctx.namespace, &current_name);
    set["metadata"]["labels"] = Value::Object(template_labels);
    set["metadata"]["ownerReferences"] = json!([owner_ref(&md, true)]);
    set["spec"] = json!({
        "clusterName": ctx.name,
        "replicas": desired,
        "selector": selector,
        "template": template,
    });
    let existing = owned.iter().find(|ms| name(ms) == current_name);
    let current = match existing {
        Some(ms) if int(ms, "/spec/replicas", -1) == desired => (*ms).clone(),
        Some(_) => server.apply(&set, "scale the MachineSet").await?,
        None => {
            let created = server.apply(&set, "create a MachineSet").await?;
            ctx.report.created.push(object_ref(&created));
            created
        }
    };

    // Older MachineSets: scaled to zero once the current one is fully up, then deleted.
    let current_uid = uid(&current).to_string();
    let current_machines = owned_by(machines, &current_uid);
    let current_done = current_machines.len() as i64 == desired
        && current_machines.iter().all(|i| is_running(&machines[*i]));
    let mut sets_now = vec![(current, true)];
    for old in owned.iter().filter(|ms| name(ms) != current_name) {
        let old_uid = uid(old);
        let has_machines = machines.iter().any(|m| controlled_by(m, old_uid));
        if int(old, "/spec/replicas", 0) == 0 && !has_machines {
            ctx.delete(old, "delete an old MachineSet").await?;
            continue;
        }
        let old = if current_done && int(old, "/spec/replicas", 0) != 0 {
            server
                .merge_patch(
                    old,
                    &json!({"spec": {"replicas": 0}}),
                    "scale down an old MachineSet",
                )
                .await?
        } else {
            (*old).clone()
        };
        sets_now.push((old, false));
    }

    let mut counters = Counters::default();
    for (ms, is_current) in &sets_now {
        counters.add(reconcile_set(ctx, ms, *is_current, machines).await?);
    }

    // Status.
    let max_unavailable = md
        .pointer("/spec/rollout/strategy/rollingUpdate/maxUnavailable")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let available = counters.available >= desired - max_unavailable;
    let workers = Workers {
        desired,
        counters,
        available,
        rollout: Rollout::of(&counters, desired),
    };
    let all_ready = counters.ready == counters.replicas;
    let mut conds = vec![
        cond_if("Available", available, "Available", "NotAvailable"),
        cond_if("MachinesReady", all_ready, "Ready", "NotReady"),
        cond_if(
            "MachinesUpToDate",
            counters.up_to_date == counters.replicas,
            "UpToDate",
            "NotUpToDate",
        ),
    ];
    conds.extend(workers.rollout.conditions());
    conds.extend(not_deleting_nor_paused());
    let phase = if counters.replicas < desired {
        "ScalingUp"
    } else if counters.replicas > desired {
        "ScalingDown"
    } else {
        "Running"
    };
    let mut status = json!({
        "phase": phase,
        "conditions": conditions(md.pointer("/status/conditions"), &conds, generation(&md)),
    });
    write_replica_status(&mut status, &md, &counters);
    server
        .set_status(&md, status, "set the MachineDeployment status")
        .await?;
    Ok(workers)
}

/// The bootstrap and infrastructure templates a machine template spec references.
async fn templates_of(
    ctx: &Ctx<'_>,
    referrer: &Value,
    spec: &Value,
) -> Result<Vec<Value>, SimulatorError> {
    let mut found = Vec::new();
    let mut wanted = Vec::new();
    if let Some(config_ref) = spec.pointer("/bootstrap/configRef") {
        wanted.push(ident(
            BOOTSTRAP_API,
            s(config_ref, "/kind"),
            &ctx.namespace,
            s(config_ref, "/name"),
        ));
    }
    let infra_ref = spec.get("infrastructureRef").unwrap_or(&Value::Null);
    let (_, infra) = ctx.server.resolve(infra_ref, &ctx.namespace).await?;
    wanted.push(infra);
    for ident in wanted {
        found.push(ctx.server.fetch_referenced(referrer, &ident).await?);
    }
    Ok(found)
}

/// One MachineSet: Machines up or down to `spec.replicas`, brought up, and its status.
async fn reconcile_set(
    ctx: &mut Ctx<'_>,
    ms: &Value,
    is_current: bool,
    machines: &mut Vec<Value>,
) -> Result<Counters, SimulatorError> {
    let server = ctx.server.clone();
    let ms_uid = uid(ms).to_string();
    let own = |machines: &Vec<Value>| owned_by(machines, &ms_uid);
    for i in own(machines) {
        machines::progress(ctx, &mut machines[i], None, is_current).await?;
    }
    let wanted = int(ms, "/spec/replicas", 0).max(0);
    let have = own(machines).len() as i64;
    if have < wanted {
        let spec = cloned_at(ms, "/spec/template/spec");
        let templates = templates_of(ctx, ms, &spec).await?;
        let (bootstrap, infra_template) = match templates.as_slice() {
            [config_template, infra] => (
                Some(
                    config_template
                        .pointer("/spec/template/spec")
                        .cloned()
                        .unwrap_or_else(|| json!({})),
                ),
                infra,
            ),
            [infra] => (None, infra),
            _ => unreachable!("one or two templates"),
        };
        for _ in have..wanted {
            let mut machine_labels = labels(ms, "/spec/template/metadata/labels");
            machine_labels.extend(base_labels(&ctx.name));
            machine_labels.insert(SET_NAME_LABEL.into(), name(ms).into());
            let mut machine_spec: Map<String, Value> =
                spec.as_object().cloned().unwrap_or_default();
            if bootstrap.is_some() {
                machine_spec.remove("bootstrap");
            }
            let new = NewMachine {
                owner: ms,
                name: random_name(name(ms)),
                labels: machine_labels,
                annotations: labels(ms, "/spec/template/metadata/annotations"),
                spec: Value::Object(machine_spec),
                bootstrap: bootstrap.clone(),
                infra_template,
            };
            let machine = machines::create(ctx, new).await?;
            machines.push(machine);
        }
    } else if have > wanted {
        let owned = own(machines);
        let mut candidates: Vec<&Value> = owned.iter().map(|i| &machines[*i]).collect();
        deletion_order(&mut candidates);
        let doomed: Vec<String> = candidates[..(have - wanted) as usize]
            .iter()
            .map(|m| name(m).to_string())
            .collect();
        machines::delete_named(ctx, machines, doomed).await?;
    }

    let owned: Vec<&Value> = own(machines).into_iter().map(|i| &machines[i]).collect();
    // A MachineSet's machines are all up to date when it is the current one, none otherwise.
    let counters = Counters::of(&owned, |_| is_current);
    let mut conds = vec![
        cond_if(
            "MachinesReady",
            counters.ready == counters.replicas,
            "Ready",
            "NotReady",
        ),
        cond_if("MachinesUpToDate", is_current, "UpToDate", "NotUpToDate"),
        cond_if(
            "ScalingUp",
            counters.replicas < wanted,
            "ScalingUp",
            "NotScalingUp",
        ),
        cond_if(
            "ScalingDown",
            counters.replicas > wanted,
            "ScalingDown",
            "NotScalingDown",
        ),
    ];
    conds.extend(not_deleting_nor_paused());
    let mut status = json!({
        "conditions": conditions(ms.pointer("/status/conditions"), &conds, generation(ms)),
    });
    write_replica_status(&mut status, ms, &counters);
    server
        .set_status(ms, status, "set the MachineSet status")
        .await?;
    Ok(counters)
}
