//! Status builders: v1beta2 conditions (keeping `lastTransitionTime` while a condition holds),
//! timestamps, and the replica counters CAPI reports.

use serde_json::{Value, json};

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
