//! Where pgkeelctl finds the DCS, as patronictl does: a configuration file (nothing in it is
//! required), `PATRONI_CONFIGURATION`, or the `PATRONI_*` variables alone (issue 6, point 7).

use std::path::Path;

use clap::Parser;
use pgkeel::ctl::{Cli, Context};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn resolve(args: &[&str], pairs: &[(&str, &str)]) -> Result<Context, String> {
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    Context::resolve_with(&cli, &env(pairs), None).map_err(|e| e.to_string())
}

// Reference: patroni/ctl.py `load_config` -> `Config(path, validator=None)`, whose
// `_build_environment_configuration` reads PATRONI_<DCS>_<SUFFIX> variables.
#[test]
fn patroni_dcs_variables_alone_are_enough() {
    let ctx = resolve(
        &["pgkeelctl", "list"],
        &[
            ("PATRONI_ETCD3_HOSTS", "'10.0.0.1:2379','10.0.0.2:2379'"),
            ("PATRONI_SCOPE", "batman"),
            ("PATRONI_NAMESPACE", "/pg"),
            ("PATRONI_ETCD3_USERNAME", "root"),
        ],
    )
    .expect("resolves");
    assert_eq!(ctx.target.hosts, ["10.0.0.1:2379", "10.0.0.2:2379"]);
    assert_eq!(ctx.target.namespace, "/pg");
    assert_eq!(ctx.target.username.as_deref(), Some("root"));
    assert_eq!(ctx.cluster_names(&[]).unwrap(), ["batman"]);

    for (var, value, want) in [
        ("PATRONI_ETCD3_HOST", "localhost:2379", "localhost:2379"),
        ("PATRONI_ETCD3_HOST", "localhost", "localhost:2379"),
        ("PATRONI_ETCD3_URL", "http://10.0.0.3:2379", "10.0.0.3:2379"),
        (
            "PATRONI_ETCD3_PROXY",
            "http://10.0.0.4:23790",
            "10.0.0.4:23790",
        ),
        ("PATRONI_ETCD_HOSTS", "10.0.0.5:2379", "10.0.0.5:2379"),
    ] {
        let ctx = resolve(&["pgkeelctl", "list", "batman"], &[(var, value)]).expect(var);
        assert_eq!(ctx.target.hosts, [want], "{var}");
        assert_eq!(ctx.target.namespace, "/service", "{var}");
    }
}

#[test]
fn patroni_configuration_yaml_and_partial_files_work() {
    let ctx = resolve(
        &["pgkeelctl", "list"],
        &[(
            "PATRONI_CONFIGURATION",
            "scope: s1\netcd3:\n  hosts: a:2379\n",
        )],
    )
    .expect("resolves");
    assert_eq!(ctx.target.hosts, ["a:2379"]);
    assert_eq!(ctx.cluster_names(&[]).unwrap(), ["s1"]);

    // A patronictl.yaml with only the DCS section; the environment applies on top.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("patronictl.yaml");
    std::fs::write(&file, "etcd3:\n  hosts: b:2379\n").unwrap();
    let f = file.to_str().unwrap();
    let ctx = resolve(&["pgkeelctl", "-c", f, "list"], &[("PATRONI_SCOPE", "s2")]).unwrap();
    assert_eq!(ctx.target.hosts, ["b:2379"]);
    assert_eq!(ctx.cluster_names(&[]).unwrap(), ["s2"]);

    // The default file is used when it exists, and -c must exist.
    let cli = Cli::try_parse_from(["pgkeelctl", "list", "x"]).unwrap();
    let ctx = Context::resolve_with(&cli, &[], Some(Path::new(f))).unwrap();
    assert_eq!(ctx.target.hosts, ["b:2379"]);
    let e = resolve(&["pgkeelctl", "-c", "/nonexistent/p.yml", "list"], &[]).unwrap_err();
    assert!(
        e.contains("Provided config file /nonexistent/p.yml not existing"),
        "{e}"
    );
}

#[test]
fn nothing_configured_is_patronictls_error_and_tls_is_refused() {
    let e = resolve(&["pgkeelctl", "list"], &[]).unwrap_err();
    assert_eq!(
        e,
        "Can not find suitable configuration of distributed configuration store"
    );
    let e = resolve(
        &["pgkeelctl", "list"],
        &[
            ("PATRONI_ETCD3_HOSTS", "a:2379"),
            ("PATRONI_ETCD3_CACERT", "/ca.pem"),
        ],
    )
    .unwrap_err();
    assert!(
        e.starts_with("<env PATRONI_ETCD3_CACERT>: etcd3.cacert: TLS is not supported"),
        "{e}"
    );
    let e = resolve(&["pgkeelctl", "--dcs-url", "https://a:2379", "list"], &[]).unwrap_err();
    assert!(e.contains("TLS to etcd is not supported"), "{e}");
}
