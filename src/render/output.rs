//! What a render writes: each bundle as its files, or all bundles as one stream. Pure: the
//! `render` command (and the tests) put the files on disk.

use std::path::PathBuf;

use super::Bundle;
use super::yaml::objects_yaml;

/// The files of one bundle, `<cluster>/NN-<stage>.yaml` with its YAML stream, for each
/// present stage.
pub fn bundle_files(bundle: &Bundle) -> impl Iterator<Item = (PathBuf, String)> + '_ {
    bundle.stages.iter().map(|stage| {
        (
            PathBuf::from(&bundle.cluster).join(stage.name.file_name()),
            objects_yaml(&stage.objects),
        )
    })
}

/// All bundles as one stream (`--out -`), with a comment heading each cluster's stage.
pub fn bundles_stream(bundles: &[Bundle]) -> String {
    let mut out = String::new();
    for bundle in bundles {
        for stage in &bundle.stages {
            out.push_str(&format!(
                "# cluster: {} stage: {} ({})\n",
                bundle.cluster,
                stage.name.as_str(),
                stage.name.file_name()
            ));
            out.push_str(&objects_yaml(&stage.objects));
        }
    }
    out
}
