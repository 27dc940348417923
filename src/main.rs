//! The `initramfs-stream` command: parses options, runs the library, and
//! turns every failure into one line on stderr and exit status 1.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Some(done) = cli.print_generated() {
        return finish(done);
    }
    cli.init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("initramfs-stream: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = cli::run(&cli) => r,
            // Dropping `run` removes a temporary output file.
            _ = interrupted() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    let code = finish(result);
    // A read still waiting for a quiet pipe's producer must not hold the
    // exit; everything that writes has finished or been dropped by now.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("initramfs-stream: {}", cli::one_line(&e));
            ExitCode::from(1)
        }
    }
}

async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
