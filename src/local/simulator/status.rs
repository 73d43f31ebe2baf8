//! Status builders: v1beta2 conditions (keeping `lastTransitionTime` while a condition holds),
//! timestamps, and the replica counters CAPI reports.

use serde_json::{Value, json};

use super::objects::generation;
use super::schema::KindInfo;

/// Now, as the RFC 3339 second-precision UTC string Kubernetes writes.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// One condition to set.
#[derive(Clone, Debug)]
pub struct Cond {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    pub fn new(type_: &'static str, status: bool, reason: &'static str) -> Cond {
        Cond {
            type_,
            status,
            reason,
            message: String::new(),
        }
    }

    pub fn msg(mut self, message: impl Into<String>) -> Cond {
        self.message = message.into();
        self
    }
}

/// A condition that is True when `ok`, with the reasons CAPI's v1beta2 conditions use.
pub fn cond_if(type_: &'static str, ok: bool, yes: &'static str, no: &'static str) -> Cond {
    Cond::new(type_, ok, if ok { yes } else { no })
}

fn status_str(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// The full conditions list: `existing` conditions of other types kept, `set` ones replaced,
/// with `lastTransitionTime` kept when the status did not change.
pub fn conditions(existing: Option<&Value>, set: &[Cond], generation: Option<i64>) -> Value {
    let existing: Vec<Value> = existing
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let now = now();
    let mut out: Vec<Value> = existing
        .iter()
        .filter(|c| !set.iter().any(|s| c["type"] == s.type_))
        .cloned()
        .collect();
    for cond in set {
        let previous = existing.iter().find(|c| c["type"] == cond.type_);
        let status = status_str(cond.status);
        let since = previous
            .filter(|p| p["status"] == status)
            .and_then(|p| p["lastTransitionTime"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| now.clone());
        let mut c = json!({
            "type": cond.type_,
            "status": status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": since,
        });
        if let Some(g) = generation {
            c["observedGeneration"] = g.into();
        }
        out.push(c);
    }
    out.sort_by(|a, b| {
        a["type"]
            .as_str()
            .unwrap_or("")
            .cmp(b["type"].as_str().unwrap_or(""))
    });
    Value::Array(out)
}

/// The Deleting and Paused conditions of an object being reconciled: it is neither (deleted and
/// paused objects are not reconciled).
pub fn not_deleting_nor_paused() -> [Cond; 2] {
    [
        Cond::new("Deleting", false, "NotDeleting"),
        Cond::new("Paused", false, "NotPaused"),
    ]
}

/// Records in `status` the generation of `obj` it was written for.
pub fn set_observed_generation(status: &mut Value, obj: &Value) {
    if let Some(g) = generation(obj) {
        status["observedGeneration"] = g.into();
    }
}

/// The addresses of a simulated machine or Node: loopback, and its name as hostname.
pub fn addresses(hostname: &str) -> Value {
    json!([
        {"type": "InternalIP", "address": "127.0.0.1"},
        {"type": "Hostname", "address": hostname},
    ])
}

/// The status an infrastructure provider writes once its object is provisioned, in the contract
/// its CRD declares: `initialization.provisioned` and a Ready condition (v1beta2) and/or `ready`
/// (v1beta1).
pub fn provisioned_status(info: &KindInfo, infra: &Value) -> Value {
    let mut status = json!({});
    if info.has(&["status", "initialization"]) {
        status["initialization"] = json!({"provisioned": true});
        status["conditions"] = conditions(
            infra.pointer("/status/conditions"),
            &[Cond::new("Ready", true, "Ready")],
            generation(infra),
        );
    }
    if info.has(&["status", "ready"]) {
        status["ready"] = true.into();
    }
    status
}

/// Whether `obj` has a condition of `type_` with status True.
pub fn is_true(obj: &Value, type_: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == type_ && c["status"] == "True")
        })
}

/// The counters of a set of machines, as KCP, MachineSet and MachineDeployment report them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub replicas: i64,
    pub ready: i64,
    pub available: i64,
    pub up_to_date: i64,
}

impl Counters {
    /// The counters of `machines`, those for which `up_to_date` holds counted as up to date.
    pub fn of(machines: &[&Value], up_to_date: impl Fn(&Value) -> bool) -> Counters {
        let with_condition = |type_| machines.iter().filter(|m| is_true(m, type_)).count() as i64;
        Counters {
            replicas: machines.len() as i64,
            ready: with_condition("Ready"),
            available: with_condition("Available"),
            up_to_date: machines.iter().filter(|m| up_to_date(m)).count() as i64,
        }
    }

    pub fn add(&mut self, other: Counters) {
        self.replicas += other.replicas;
        self.ready += other.ready;
        self.available += other.available;
        self.up_to_date += other.up_to_date;
    }

    pub fn write(&self, status: &mut Value) {
        status["replicas"] = self.replicas.into();
        status["readyReplicas"] = self.ready.into();
        status["availableReplicas"] = self.available.into();
        status["upToDateReplicas"] = self.up_to_date.into();
    }
}

/// Whether machines are being replaced or their number moves toward the desired one, as the
/// RollingOut, ScalingUp and ScalingDown conditions of KCP, MachineDeployment and Cluster say.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rollout {
    pub rolling_out: bool,
    pub scaling_up: bool,
    pub scaling_down: bool,
}

impl Rollout {
    /// Where machines counted as `counters` stand against `desired` up-to-date replicas.
    pub fn of(counters: &Counters, desired: i64) -> Rollout {
        Rollout {
            rolling_out: counters.replicas > counters.up_to_date,
            scaling_up: counters.up_to_date < desired,
            scaling_down: counters.up_to_date > desired,
        }
    }

    /// Both at once: rolling out or scaling when either is.
    pub fn add(&mut self, other: Rollout) {
        self.rolling_out |= other.rolling_out;
        self.scaling_up |= other.scaling_up;
        self.scaling_down |= other.scaling_down;
    }

    /// Neither rolling out nor scaling.
    pub fn is_done(&self) -> bool {
        !(self.rolling_out || self.scaling_up || self.scaling_down)
    }

    /// The RollingOut, ScalingUp and ScalingDown conditions, in that order.
    pub fn conditions(&self) -> [Cond; 3] {
        [
            cond_if(
                "RollingOut",
                self.rolling_out,
                "RollingOut",
                "NotRollingOut",
            ),
            cond_if("ScalingUp", self.scaling_up, "ScalingUp", "NotScalingUp"),
            cond_if(
                "ScalingDown",
                self.scaling_down,
                "ScalingDown",
                "NotScalingDown",
            ),
        ]
    }
}

/// The lowest of some `vMAJOR.MINOR.PATCH` versions (by number, not by text).
pub fn min_version<'a>(versions: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    fn key(v: &str) -> Vec<u64> {
        v.trim_start_matches('v')
            .split(['.', '-', '+'])
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    }
    versions.min_by_key(|v| key(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let first = conditions(None, &[Cond::new("Ready", false, "NotReady")], Some(1));
        let mut old = first.clone();
        old[0]["lastTransitionTime"] = "2000-01-01T00:00:00Z".into();
        let same = conditions(
            Some(&old),
            &[Cond::new("Ready", false, "NotReady")],
            Some(2),
        );
        assert_eq!(same[0]["lastTransitionTime"], "2000-01-01T00:00:00Z");
        assert_eq!(same[0]["observedGeneration"], 2);
        let flipped = conditions(Some(&old), &[Cond::new("Ready", true, "Ready")], Some(2));
        assert_ne!(flipped[0]["lastTransitionTime"], "2000-01-01T00:00:00Z");
        assert_eq!(flipped[0]["message"], "");
    }

    #[test]
    fn versions_compare_by_number() {
        let v = ["v1.34.10", "v1.34.9", "v1.35.0"];
        assert_eq!(min_version(v.iter().copied()), Some("v1.34.9"));
    }
}
