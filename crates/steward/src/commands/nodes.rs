//! `steward nodes`: list, show, add and remove the fleet's nodes and make join tokens, through
//! the API.

use std::process::ExitCode;

use steward_wire::nodes::{
    JoinToken, NewJoinToken, NewNode, NodeChanged, NodeDetail, NodeList, NodeStatus,
};
use steward_wire::paths;

use crate::cli::OutputFormat;
use crate::client::{Client, block_on, local_time, or_dash, print_json, print_table};
use crate::node_args::{NodesCommand, TokenCommand};

pub fn run(command: NodesCommand) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match command {
            NodesCommand::Ls { client } => {
                let answer: NodeList = Client::new(&client)?.get(&paths::NODES.with(&[])).await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    let rows: Vec<Vec<String>> = answer
                        .nodes
                        .iter()
                        .map(|n| {
                            vec![
                                n.id.clone(),
                                n.status.as_str().to_owned(),
                                or_dash(Some(&n.hostname).filter(|h| !h.is_empty())),
                                or_dash(n.address.as_ref()),
                                or_dash(n.workspace.as_ref()),
                                or_dash(n.last_seen_ms.map(local_time)),
                                n.source.clone(),
                            ]
                        })
                        .collect();
                    print_table(
                        &[
                            "NODE",
                            "STATUS",
                            "HOSTNAME",
                            "ADDRESS",
                            "WORKSPACE",
                            "LAST SEEN",
                            "FROM",
                        ],
                        &rows,
                    );
                }
            }
            NodesCommand::Show { id, client } => {
                let answer: NodeDetail =
                    Client::new(&client)?.get(&paths::NODE.with(&[&id])).await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    print_detail(&answer);
                }
            }
            NodesCommand::Add {
                id,
                hostname,
                address,
                workspace,
                labels,
                client,
            } => {
                let body = NewNode {
                    id,
                    hostname,
                    address,
                    workspace,
                    labels: labels.into_iter().collect(),
                };
                let answer: NodeChanged = Client::new(&client)?
                    .post(&paths::NODES.with(&[]), &body)
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    println!(
                        "added node `{}`; make a join token for its agent with: steward nodes token create --node {}",
                        answer.node.id, answer.node.id
                    );
                }
            }
            NodesCommand::Rm { id, client } => {
                let answer: NodeChanged = Client::new(&client)?
                    .delete(&paths::NODE.with(&[&id]))
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    println!("removed node `{id}` and everything it reported");
                }
            }
            NodesCommand::Token(TokenCommand::Create {
                node,
                ttl,
                uses,
                client,
            }) => {
                let body = NewJoinToken {
                    ttl_s: Some(ttl.div_ceil(1_000)),
                    uses: Some(uses),
                };
                let answer: JoinToken = Client::new(&client)?
                    .post(&paths::NODE_TOKENS.with(&[&node]), &body)
                    .await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    eprintln!(
                        "join token for node `{}`, valid until {} for {} registration(s); it is shown once:",
                        answer.node, answer.expires_at, answer.uses
                    );
                    println!("{}", answer.token);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_detail(detail: &NodeDetail) {
    let node = &detail.node;
    let facts = &detail.inventory.facts;
    println!("node        {}", node.id);
    println!("status      {}", node.status.as_str());
    println!(
        "hostname    {}",
        or_dash(Some(&node.hostname).filter(|h| !h.is_empty()))
    );
    println!("address     {}", or_dash(node.address.as_ref()));
    println!("workspace   {}", or_dash(node.workspace.as_ref()));
    println!("last seen   {}", or_dash(node.last_seen_ms.map(local_time)));
    println!("interval    {}s", node.interval_s);
    if node.status != NodeStatus::Pending {
        println!(
            "system      {} · kernel {} · {} CPUs · {} MiB",
            or_dash(Some(&facts.os).filter(|s| !s.is_empty())),
            or_dash(Some(&facts.kernel).filter(|s| !s.is_empty())),
            facts.cpus,
            facts.memory_bytes / (1024 * 1024)
        );
        let [l1, l5, l15] = detail.usage.load;
        println!("load        {l1:.2} {l5:.2} {l15:.2}");
        println!(
            "agent       {}",
            or_dash(Some(&node.agent_version).filter(|s| !s.is_empty()))
        );
    }
    if !node.labels.is_empty() {
        let labels: Vec<String> = node
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("labels      {}", labels.join(", "));
    }
    println!();
    match &detail.inventory.containers {
        None => println!("containers  (no Docker Engine reported)"),
        Some(containers) => {
            let rows: Vec<Vec<String>> = containers
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        c.image.clone(),
                        c.state.clone(),
                        or_dash(c.health.as_ref()),
                        c.ports.join(", "),
                        c.restart_count.to_string(),
                    ]
                })
                .collect();
            print_table(
                &["CONTAINER", "IMAGE", "STATE", "HEALTH", "PORTS", "RESTARTS"],
                &rows,
            );
        }
    }
    println!();
    let rows: Vec<Vec<String>> = detail
        .inventory
        .domains
        .iter()
        .map(|d| {
            let locations: Vec<String> = d
                .locations
                .iter()
                .map(|l| match &l.upstream {
                    Some(up) => format!("{} → {up}", l.path),
                    None => l.path.clone(),
                })
                .collect();
            vec![d.name.clone(), d.listen.join(", "), locations.join("; ")]
        })
        .collect();
    print_table(&["DOMAIN", "LISTEN", "LOCATIONS"], &rows);
    println!();
    let now = steward_store::now_ms();
    let rows: Vec<Vec<String>> = detail
        .inventory
        .certificates
        .iter()
        .map(|c| match &c.error {
            Some(error) => vec![c.path.clone(), "-".into(), "-".into(), error.clone()],
            None => vec![
                c.path.clone(),
                steward_core::health::cert::days_left(c.not_after_ms, now).to_string(),
                steward_core::health::cert::classify(c.not_after_ms, now)
                    .as_str()
                    .to_owned(),
                c.names.join(", "),
            ],
        })
        .collect();
    print_table(&["CERTIFICATE", "DAYS LEFT", "CLASS", "NAMES"], &rows);
    if !detail.services.is_empty() {
        println!();
        println!("services    {}", detail.services.join(", "));
    }
    for drift in &detail.drift {
        println!("drift       {}: {}", drift.service, drift.reason);
    }
}
