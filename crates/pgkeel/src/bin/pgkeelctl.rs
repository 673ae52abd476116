//! `pgkeelctl`: patronictl's commands and output, for pgkeel (and Patroni) clusters.

use clap::Parser;
use pgkeel::ctl::{Cli, ConnectFuture, CtlError, DcsTarget};
use pgkeel::dcs::Dcs;
use pgkeel::dcs::etcd::EtcdDcs;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

fn connect(t: &DcsTarget) -> ConnectFuture {
    let t = t.clone();
    Box::pin(async move {
        let dcs = EtcdDcs::connect(
            t.endpoints(),
            t.username.clone(),
            t.password.clone(),
            Duration::from_secs(5),
        )
        .await
        .map_err(CtlError::from)?;
        Ok(Arc::new(dcs) as Arc<dyn Dcs>)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(pgkeel::ctl::main_with(cli, &connect))
}
