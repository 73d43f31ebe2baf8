//! `schema/` must hold exactly what the Rust types generate: editors validate against it.

use std::path::Path;

#[test]
fn committed_schemas_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    for (file, schema) in cairn::model::schema::all_schemas() {
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| {
            panic!("schema/{file} is missing ({e}); run `cairn schema --out schema`")
        });
        assert!(
            committed == cairn::model::schema::schema_text(&schema),
            "schema/{file} is stale: run `cargo run -- schema --out schema` and commit it"
        );
    }
}
