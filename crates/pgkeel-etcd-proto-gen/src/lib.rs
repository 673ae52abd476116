//! Regenerates the etcd v3 client code that `crates/pgkeel-etcd-proto` commits to git.
//!
//! Exists so that building pgkeel never needs `protoc`: the code is generated here, once, by a
//! developer who changes the `.proto` files or bumps tonic / prost, and committed. This crate is
//! the only place that runs `protoc` (through `prost-build`); `scripts/regen-etcd-proto.sh` drives
//! it, and `tests/committed_is_fresh.rs` checks that the committed files equal a fresh generation.
//!
//! What is generated: every message of the `etcdserverpb`, `mvccpb` and `authpb` packages, and
//! gRPC clients (no servers, no transport helpers) for the services in [`SERVICES`] only.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The etcd services pgkeel talks to; clients for the others (Cluster, Maintenance) are not generated.
pub const SERVICES: &[&str] = &["KV", "Watch", "Lease", "Auth"];

/// The protobuf packages whose generated Rust files are committed, in dependency order.
pub const PACKAGES: &[&str] = &["mvccpb", "authpb", "etcdserverpb"];

/// The single input file; the others are found through its imports.
pub const ROOT_PROTO: &str = "etcd/api/etcdserverpb/rpc.proto";

/// Where the vendored `.proto` files come from (also written into each generated file's header).
pub const PROTO_SOURCE: &str = "etcd v3.7.2, as bundled in etcd-client 0.21.1 \
     (git 829fddd8c416630a0c962670afda5a559bf4b513)";

/// Header line prefix recording the protoc version. Kept on its own line so a freshness check can
/// tell "different protoc" from "different code".
pub const PROTOC_LINE_PREFIX: &str = "// protoc: ";

/// Why a generation failed.
///
/// Exists so the regen binary and the freshness test can say which step broke (protoc missing,
/// protoc failing on an import, an unreadable file) instead of a bare I/O error.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// `protoc` could not be run at all.
    #[error(
        "cannot run protoc ({protoc}): {source}; install it with: apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev"
    )]
    ProtocMissing {
        /// The protoc binary tried (`$PROTOC` or `protoc` on PATH).
        protoc: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `protoc --version` printed something unexpected.
    #[error("unexpected output of `{protoc} --version`: {output:?}")]
    ProtocVersion {
        /// The protoc binary tried.
        protoc: String,
        /// What it printed.
        output: String,
    },
    /// `prost-build` (protoc plus code generation) failed, e.g. because
    /// `google/protobuf/descriptor.proto` is not installed.
    #[error(
        "generating from {root}: {source} (the well-known types such as google/protobuf/descriptor.proto come with libprotobuf-dev)"
    )]
    Generate {
        /// The root `.proto` file.
        root: PathBuf,
        /// prost-build's error, which carries protoc's stderr.
        source: std::io::Error,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `Cargo.lock` does not name the generator crate's version.
    #[error("{path}: no version of `{krate}` found")]
    LockVersion {
        /// The lock file read.
        path: PathBuf,
        /// The crate looked for.
        krate: String,
    },
    /// A package expected in the output was not generated.
    #[error("protoc produced no {file} (generated: {generated:?})")]
    MissingOutput {
        /// The missing file name.
        file: String,
        /// What was generated instead.
        generated: Vec<String>,
    },
}

/// One generated file: its name in `src/generated/` and its full content, header included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// File name, e.g. `etcdserverpb.rs`.
    pub name: String,
    /// Content, starting with the `// @generated` header.
    pub content: String,
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `crates/pgkeel-etcd-proto/proto`: the vendored `.proto` files.
pub fn proto_dir() -> PathBuf {
    workspace_root().join("crates/pgkeel-etcd-proto/proto")
}

/// `crates/pgkeel-etcd-proto/src/generated`: where the committed files live.
pub fn generated_dir() -> PathBuf {
    workspace_root().join("crates/pgkeel-etcd-proto/src/generated")
}

/// The protoc binary prost-build will run: `$PROTOC`, else `protoc` from PATH.
pub fn protoc() -> PathBuf {
    std::env::var_os("PROTOC").map_or_else(|| PathBuf::from("protoc"), PathBuf::from)
}

/// `protoc --version`, e.g. `libprotoc 3.21.12`.
pub fn protoc_version() -> Result<String, GenError> {
    let protoc = protoc();
    let out = Command::new(&protoc)
        .arg("--version")
        .output()
        .map_err(|source| GenError::ProtocMissing {
            protoc: protoc.display().to_string(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !text.starts_with("libprotoc ") {
        return Err(GenError::ProtocVersion {
            protoc: protoc.display().to_string(),
            output: text,
        });
    }
    Ok(text)
}

/// The version of `krate` recorded in the workspace's `Cargo.lock`.
pub fn locked_version(krate: &str) -> Result<String, GenError> {
    let path = workspace_root().join("Cargo.lock");
    let lock = std::fs::read_to_string(&path).map_err(|source| GenError::Io {
        path: path.clone(),
        source,
    })?;
    let wanted = format!("name = \"{krate}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == wanted
            && let Some(version) = lines
                .next()
                .and_then(|v| v.strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
        {
            return Ok(version.to_owned());
        }
    }
    Err(GenError::LockVersion {
        path,
        krate: krate.to_owned(),
    })
}

/// Forwards only the services named in [`SERVICES`] to tonic's generator.
struct OnlyUsedServices {
    /// tonic's client generator.
    inner: Box<dyn prost_build::ServiceGenerator>,
}

impl prost_build::ServiceGenerator for OnlyUsedServices {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        if SERVICES.contains(&service.proto_name.as_str()) {
            self.inner.generate(service, buf);
        }
    }

    fn finalize(&mut self, buf: &mut String) {
        self.inner.finalize(buf);
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        self.inner.finalize_package(package, buf);
    }
}

/// The header written at the top of every generated file.
fn header(package: &str, protoc: &str, tonic: &str, prost: &str) -> String {
    format!(
        "// @generated by scripts/regen-etcd-proto.sh (crates/pgkeel-etcd-proto-gen); do not edit.\n\
         // package: {package}, from crates/pgkeel-etcd-proto/proto/{ROOT_PROTO} and its imports\n\
         // source: {PROTO_SOURCE}; Apache-2.0, see crates/pgkeel-etcd-proto/NOTICE\n\
         // generator: tonic-prost-build {tonic}, prost-build {prost}; clients only, for {services}\n\
         {PROTOC_LINE_PREFIX}{protoc}\n\n",
        services = SERVICES.join(", "),
    )
}

/// Runs protoc and the code generators over the `.proto` files in `proto_dir` and returns the
/// files to commit (one per package in [`PACKAGES`]). Writes only to a temporary directory.
pub fn generate(proto_dir: &Path) -> Result<Vec<GeneratedFile>, GenError> {
    let protoc = protoc_version()?;
    let tonic = locked_version("tonic-prost-build")?;
    let prost = locked_version("prost-build")?;
    let out = tempfile::tempdir().map_err(|source| GenError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let root = proto_dir.join(ROOT_PROTO);
    let mut config = prost_build::Config::new();
    config.out_dir(out.path());
    config.service_generator(Box::new(OnlyUsedServices {
        inner: tonic_prost_build::configure()
            .build_client(true)
            .build_server(false)
            .build_transport(false)
            .service_generator(),
    }));
    config
        .compile_protos(&[&root], &[proto_dir])
        .map_err(|source| GenError::Generate {
            root: root.clone(),
            source,
        })?;
    let mut files = Vec::new();
    for package in PACKAGES {
        let name = format!("{package}.rs");
        let path = out.path().join(&name);
        let body = std::fs::read_to_string(&path).map_err(|_| GenError::MissingOutput {
            file: name.clone(),
            generated: std::fs::read_dir(out.path())
                .map(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default(),
        })?;
        files.push(GeneratedFile {
            content: format!("{}{body}", header(package, &protoc, &tonic, &prost)),
            name,
        });
    }
    Ok(files)
}

/// `content` without its protoc version line, to compare code generated by different protoc builds.
pub fn without_protoc_line(content: &str) -> String {
    content
        .lines()
        .filter(|l| !l.starts_with(PROTOC_LINE_PREFIX))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The protoc version recorded in a generated file's header, if any.
pub fn recorded_protoc(content: &str) -> Option<&str> {
    content
        .lines()
        .find_map(|l| l.strip_prefix(PROTOC_LINE_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_records_versions_and_source() {
        let h = header("mvccpb", "libprotoc 3.21.12", "0.14.9", "0.14.6");
        assert!(h.starts_with("// @generated"), "{h}");
        assert!(
            h.contains("tonic-prost-build 0.14.9, prost-build 0.14.6"),
            "{h}"
        );
        assert!(h.contains("etcd v3.7.2"), "{h}");
        assert_eq!(recorded_protoc(&h), Some("libprotoc 3.21.12"));
        assert!(!without_protoc_line(&h).contains("libprotoc"));
    }

    #[test]
    fn lock_names_the_generators() {
        for krate in ["tonic-prost-build", "prost-build"] {
            let v = locked_version(krate).expect("in Cargo.lock");
            assert!(v.starts_with("0."), "{krate} {v}");
        }
        assert!(locked_version("no-such-crate-here").is_err());
    }
}
