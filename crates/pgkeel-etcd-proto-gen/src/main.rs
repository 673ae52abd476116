//! `pgkeel-etcd-proto-gen`: rewrites `crates/pgkeel-etcd-proto/src/generated/*.rs` from the vendored
//! `.proto` files. Run it through `scripts/regen-etcd-proto.sh`.

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let proto_dir = pgkeel_etcd_proto_gen::proto_dir();
    let out_dir = pgkeel_etcd_proto_gen::generated_dir();
    let files = pgkeel_etcd_proto_gen::generate(&proto_dir)?;
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    for file in files {
        let path = out_dir.join(&file.name);
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let verdict = if old == file.content {
            "unchanged"
        } else {
            "rewritten"
        };
        std::fs::write(&path, &file.content)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("regen-etcd-proto: {verdict} {}", path.display());
    }
    Ok(())
}
