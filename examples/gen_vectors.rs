//! Writes `protocol/vectors/*.json` from the code (see `kolo::vectors`).

fn main() -> anyhow::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/vectors");
    std::fs::create_dir_all(&dir)?;
    for (name, value) in kolo::vectors::all() {
        let text = serde_json::to_string_pretty(&value)? + "\n";
        std::fs::write(dir.join(name), text)?;
        println!("wrote protocol/vectors/{name}");
    }
    Ok(())
}
