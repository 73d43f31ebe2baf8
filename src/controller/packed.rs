//! Bundles held between reconciles. A rendered bundle as a tree of JSON values takes about ten
//! times the memory of its text (~270 KB against ~30 KB for a typical cluster), and a controller
//! keeps the bundles of its whole fleet: it keeps them as compact JSON, and unpacks one only
//! when its cluster is reconciled.

use crate::render::Bundle;

/// A bundle as compact JSON.
pub struct Packed(Box<[u8]>);

impl Packed {
    pub fn pack(bundle: &Bundle) -> Packed {
        // Serializing JSON values into a Vec cannot fail.
        Packed(
            serde_json::to_vec(bundle)
                .unwrap_or_default()
                .into_boxed_slice(),
        )
    }

    pub fn unpack(&self) -> Result<Bundle, String> {
        serde_json::from_slice(&self.0).map_err(|e| format!("cannot unpack a rendered bundle: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_bundle_comes_back_as_it_was() {
        let rendered = crate::render::render_repo(&crate::example::example_snapshot(), &[]);
        assert!(!rendered.has_errors());
        for bundle in &rendered.bundles {
            let packed = Packed::pack(bundle);
            assert_eq!(&packed.unpack().unwrap(), bundle);
        }
    }
}
