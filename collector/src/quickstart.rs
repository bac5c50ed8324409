//! `canhgac-collector quickstart`: a first look on one machine.

use std::path::Path;

pub fn run(_dir: &Path, _agent: &str, _console: &str) -> anyhow::Result<()> {
    anyhow::bail!("quickstart is not built yet")
}
