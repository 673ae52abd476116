//! The callback runner with real scripts: callbacks run with Patroni's arguments, one at a time
//! in the order they were asked for, a hung one is killed (with what it started) after the
//! timeout, what they print reaches the log, and `drain` waits for the queue.
#![allow(clippy::unwrap_used)] // test support code outside #[test] fns

use pgkeel::agent::callbacks::CallbackRunner;
use pgkeel::config::{Callbacks, PrimaryRoleName, ShellCommand};
use pgkeel_ha::ha::{CallbackEvent, Role};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Writes an executable shell script and returns its path.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn all(command: &str) -> Callbacks {
    let c = Some(ShellCommand::parse(command).unwrap());
    Callbacks {
        on_start: c.clone(),
        on_stop: c.clone(),
        on_restart: c.clone(),
        on_reload: c.clone(),
        on_role_change: c,
        ..Callbacks::default()
    }
}

#[tokio::test]
async fn callbacks_run_in_order_one_at_a_time_with_patronis_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    // Each call marks its start and end; a second call starting before the first ended would
    // interleave the marks.
    let cmd = script(
        dir.path(),
        "record.sh",
        &format!(
            "echo \"begin $*\" >> {r}\nsleep 0.05\necho \"end $1\" >> {r}",
            r = record.display()
        ),
    );
    let runner = CallbackRunner::new(all(&format!("{cmd} --vip 10.0.0.5")), "batman");
    runner.submit(CallbackEvent::OnStop, Role::Primary);
    runner.submit(CallbackEvent::OnRoleChange, Role::Replica);
    runner.submit(CallbackEvent::OnStart, Role::Replica);
    runner.submit(CallbackEvent::OnRoleChange, Role::Primary);
    assert!(
        runner.drain(Duration::from_secs(10)).await,
        "queue not drained"
    );
    let lines = std::fs::read_to_string(&record).unwrap();
    assert_eq!(
        lines,
        "begin --vip 10.0.0.5 on_stop primary batman\nend --vip\n\
         begin --vip 10.0.0.5 on_role_change replica batman\nend --vip\n\
         begin --vip 10.0.0.5 on_start replica batman\nend --vip\n\
         begin --vip 10.0.0.5 on_role_change primary batman\nend --vip\n"
    );
}

#[tokio::test]
async fn a_hung_callback_is_killed_with_its_children_and_the_queue_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let after = dir.path().join("after");
    // The script starts a child that would outlive it, then hangs itself.
    let hang = script(
        dir.path(),
        "hang.sh",
        &format!(
            "sleep 300 &\necho $! >> {p}\necho $$ >> {p}\nsleep 300",
            p = pids.display()
        ),
    );
    let next = script(
        dir.path(),
        "next.sh",
        &format!("echo \"$1\" > {}", after.display()),
    );
    let callbacks = Callbacks {
        on_stop: Some(ShellCommand::parse(&hang).unwrap()),
        on_start: Some(ShellCommand::parse(&next).unwrap()),
        ..Callbacks::default()
    };
    let runner = CallbackRunner::with_timeout(callbacks, "batman", Duration::from_millis(300));
    let started = Instant::now();
    runner.submit(CallbackEvent::OnStop, Role::Primary);
    runner.submit(CallbackEvent::OnStart, Role::Replica);
    assert!(
        runner.drain(Duration::from_secs(10)).await,
        "queue not drained"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the hung callback was not cut short: {:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(&after).unwrap(),
        "on_start\n",
        "the next callback did not run"
    );
    let listed = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<i32> = listed.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{listed}");
    for pid in pids {
        // Killed and reaped (the script) or killed and re-parented (its child): either way no
        // such process runs any more, or it is a zombie about to be reaped by init.
        let gone =
            pgkeel_testkit::eventually(Duration::from_secs(5), Duration::from_millis(20), || {
                match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                    Err(_) => Ok(()),
                    Ok(stat) if stat.contains(") Z ") => Ok(()),
                    Ok(stat) => Err(stat),
                }
            });
        assert!(gone.is_ok(), "process {pid} still runs: {gone:?}");
    }
}

/// A `tracing` writer that keeps what it was given.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn what_a_callback_prints_is_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    // Shaped like the seed's patroni_callback.sh: reads action, role, scope and says so.
    let cmd = script(
        dir.path(),
        "patroni_callback.sh",
        "readonly cb_name=$1\nreadonly role=$2\nreadonly scope=$3\n\
         echo \"this is patroni callback $cb_name $role $scope\"\necho oops >&2\nexit 3",
    );
    let runner = CallbackRunner::new(all(&cmd), "batman");
    runner.submit(CallbackEvent::OnRoleChange, Role::Primary);
    assert!(runner.drain(Duration::from_secs(10)).await);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("this is patroni callback on_role_change primary batman"),
        "{log}"
    );
    assert!(log.contains(": oops"), "{log}");
    assert!(log.contains("exit status: 3"), "{log}");
}

/// A reload (`set_commands`) changes the command of the events queued after it; an event
/// without a command runs nothing.
#[tokio::test]
async fn reloaded_commands_run_for_the_events_queued_after_the_reload() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let old = script(
        dir.path(),
        "old.sh",
        &format!("echo \"old $1\" >> {}", record.display()),
    );
    let new = script(
        dir.path(),
        "new.sh",
        &format!("echo \"new $1\" >> {}", record.display()),
    );
    let runner = CallbackRunner::new(all(&old), "batman");
    runner.submit(CallbackEvent::OnStart, Role::Replica);
    assert!(runner.drain(Duration::from_secs(10)).await);
    runner.set_commands(Callbacks {
        on_reload: Some(ShellCommand::parse(&new).unwrap()),
        ..Callbacks::default()
    });
    runner.submit(CallbackEvent::OnStop, Role::Replica);
    runner.submit(CallbackEvent::OnReload, Role::Replica);
    assert!(runner.drain(Duration::from_secs(10)).await);
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        "old on_start\nnew on_reload\n"
    );
}

/// The seed's VIP script (`tests/fixtures/seed/patroni_callback.sh`, copied unchanged from the
/// Patroni 1.6 how-to) adds the address only for the role `master`. With
/// `primary_role_name: master` it does so; with Patroni 4's `primary` (the default) it adds
/// nothing, as under Patroni 4. Its `sudo` is a stand-in that records the command.
#[tokio::test]
async fn the_seeds_vip_script_works_unchanged_with_primary_role_name_master() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("sudo.record");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    script(
        &bin,
        "sudo",
        &format!("echo \"$*\" >> {}", record.display()),
    );
    let seed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/seed/patroni_callback.sh"
    );
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let command = ShellCommand::parse(&format!("env PATH={path} bash {seed}")).unwrap();
    let with = |name| Callbacks {
        on_stop: Some(command.clone()),
        on_role_change: Some(command.clone()),
        primary_role_name: name,
        ..Callbacks::default()
    };
    let recorded = || std::fs::read_to_string(&record).unwrap_or_default();

    let runner = CallbackRunner::new(with(PrimaryRoleName::Master), "batman");
    runner.submit(CallbackEvent::OnRoleChange, Role::Primary);
    assert!(runner.drain(Duration::from_secs(10)).await);
    assert_eq!(
        recorded(),
        "/usr/sbin/ip addr add 10.0.2.24/24 brd 10.0.2.255 dev enp0s3 label enp0s3:1\n\
         /usr/sbin/arping -q -A -c 1 -I enp0s3 10.0.2.24\n"
    );
    runner.submit(CallbackEvent::OnRoleChange, Role::Replica);
    runner.submit(CallbackEvent::OnStop, Role::Replica);
    assert!(runner.drain(Duration::from_secs(10)).await);
    let del = "/usr/sbin/ip addr del 10.0.2.24/24 dev enp0s3 label enp0s3:1\n";
    assert!(
        recorded().ends_with(&format!("{del}{del}")),
        "{}",
        recorded()
    );

    // Patroni 4's word: the script does not know it and adds nothing.
    std::fs::remove_file(&record).unwrap();
    let runner = CallbackRunner::new(with(PrimaryRoleName::Primary), "batman");
    runner.submit(CallbackEvent::OnRoleChange, Role::Primary);
    assert!(runner.drain(Duration::from_secs(10)).await);
    assert_eq!(recorded(), "");
}
