//! `steward keys`: create, list and revoke API keys through the API.

use std::process::ExitCode;

use steward_wire::keys::{CreatedKey, KeyChanged, KeyList, NewKey};
use steward_wire::paths;

use crate::cli::{KeysCommand, OutputFormat};
use crate::client::{Client, block_on, local_time, or_dash, print_json, print_table};

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
                let key = NewKey {
                    name,
                    role: role.parse()?,
                    workspace,
                    expires_in_seconds: expires_in_days.map(|d| u64::from(d) * 86_400),
                };
                let answer: CreatedKey = api.post(&paths::KEYS.with(&[]), &key).await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    eprintln!(
                        "created key `{}` ({}); it is shown once, store it now:",
                        answer.key.name, answer.key.role
                    );
                    println!("{}", answer.secret);
                }
            }
            KeysCommand::Ls { client } => {
                let answer: KeyList = Client::new(&client)?.get(&paths::KEYS.with(&[])).await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    let rows: Vec<Vec<String>> = answer
                        .keys
                        .iter()
                        .map(|k| {
                            let state = if k.revoked_at_ms.is_some() {
                                "revoked"
                            } else {
                                "active"
                            };
                            vec![
                                k.name.clone(),
                                k.role.to_string(),
                                or_dash(k.workspace.as_ref()),
                                k.hint.clone(),
                                state.to_owned(),
                                or_dash(k.last_used_at_ms.map(local_time)),
                            ]
                        })
                        .collect();
                    print_table(
                        &["NAME", "ROLE", "WORKSPACE", "KEY", "STATE", "LAST USED"],
                        &rows,
                    );
                }
            }
            KeysCommand::Revoke { name, client } => {
                let answer: KeyChanged = Client::new(&client)?
                    .delete(&paths::KEY.with(&[&name]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    println!("revoked key `{name}`");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
