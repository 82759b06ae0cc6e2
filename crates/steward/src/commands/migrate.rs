//! `steward migrate`: apply the embedded migrations and exit.

use std::process::ExitCode;

use anyhow::Context;
use steward_config::FileSettings;

use crate::cli::{LogArgs, MigrateArgs};
use crate::commands::{load_or_exit, log_warnings, settings_or_exit};
use crate::{logging, store};

pub fn run(args: MigrateArgs, log: &LogArgs) -> anyhow::Result<ExitCode> {
    let (file, warnings) = match &args.config {
        Some(path) => match load_or_exit(path) {
            Ok(loaded) => (loaded.config.settings, loaded.warnings),
            Err(code) => return Ok(code),
        },
        None => (FileSettings::default(), Vec::new()),
    };
    let settings = match settings_or_exit(&file, args.database, None, log) {
        Ok(settings) => settings,
        Err(code) => return Ok(code),
    };
    logging::init(settings.log_format, &settings.log_level)?;
    log_warnings(&warnings);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = store::open(&settings.database).await?;
        let report = store.migrate().await.context("migration failed")?;
        store.close().await;
        if report.applied.is_empty() {
            println!(
                "{}: up to date (schema version {})",
                settings.database.describe(),
                report.version
            );
        }
        for m in &report.applied {
            println!("applied {:04} {}", m.version, m.description);
        }
        Ok(ExitCode::SUCCESS)
    })
}
