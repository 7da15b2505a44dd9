//! The `vpc-flow-exporter` binary: flags, logging and exit codes. The wiring
//! (configuration → aggregates → sources → server → signals and reload) is
//! the library's builder, [`vpc_flow_exporter::app`], which the tests use too.

use std::process::ExitCode;

use anyhow::{Context, Result};

use vpc_flow_exporter::app::{Cli, Exporter, Mode, Settings};
use vpc_flow_exporter::logging;

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    // The values were checked by clap: a bad --log.level or --log.format already exited 2.
    if let Err(e) = logging::init(cli.log_level, cli.log_format) {
        eprintln!("vpc-flow-exporter: {:#}", anyhow::Error::from(e));
        return ExitCode::from(2);
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, with the whole chain of causes.
            eprintln!("vpc-flow-exporter: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--config.check` builds and checks without starting; otherwise `replay`
/// prints the metrics, and the live exporter and `demo` serve until SIGTERM.
fn run(cli: &Cli) -> Result<()> {
    let settings = Settings::from_cli(cli)?;
    let name = settings.config_name();
    let replay = matches!(settings.mode, Mode::Replay { .. });
    let exporter = Exporter::build(settings)?.handle_signals(true);
    match (replay, cli.config_check) {
        (true, false) => return Ok(exporter.replay(&mut std::io::stdout().lock())?),
        (true, true) => {}
        (false, true) => runtime()?.block_on(exporter.check())?,
        (false, false) => return Ok(runtime()?.block_on(async { exporter.start().await?.wait().await })?),
    }
    println!("{name}: configuration is valid");
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
