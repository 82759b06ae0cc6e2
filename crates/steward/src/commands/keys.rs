//! `steward keys`: create, list and revoke API keys through the API.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::json;

use crate::cli::{KeysCommand, OutputFormat};
use crate::client::{Client, block_on, cell, print_table};

pub fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match command {
            KeysCommand::Create {
                name,
                role,
                workspace,
                expires_in_days,
                client,
            } => {
                let api = Client::new(&client)?;
                let body = json!({
                    "name": name,
                    "role": role,
                    "workspace": workspace,
                    "expires_in_seconds": expires_in_days.map(|d| u64::from(d) * 86_400),
                });
                let answer = api.call(Method::POST, "/api/v1/keys", Some(&body)).await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    eprintln!("created key `{name}` ({role}); it is shown once, store it now:");
                    println!("{}", cell(&answer["secret"]));
                }
            }
            KeysCommand::Ls { client } => {
                let answer = Client::new(&client)?
                    .call(Method::GET, "/api/v1/keys", None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    let rows: Vec<Vec<String>> = answer["keys"]
                        .as_array()
                        .map(|keys| {
                            keys.iter()
                                .map(|k| {
                                    let state = if k["revoked_at_ms"].is_null() {
                                        "active"
                                    } else {
                                        "revoked"
                                    };
                                    vec![
                                        cell(&k["name"]),
                                        cell(&k["role"]),
                                        cell(&k["workspace"]),
                                        cell(&k["hint"]),
                                        state.to_owned(),
                                        cell(&k["last_used_at_ms"]),
                                    ]
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    print_table(
                        &[
                            "NAME",
                            "ROLE",
                            "WORKSPACE",
                            "KEY",
                            "STATE",
                            "LAST USED (ms)",
                        ],
                        &rows,
                    );
                }
            }
            KeysCommand::Revoke { name, client } => {
                let path = format!("/api/v1/keys/{name}");
                let answer = Client::new(&client)?
                    .call(Method::DELETE, &path, None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                } else {
                    println!("revoked key `{name}`");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
