//! `steward audit`: list, verify, export and follow the audit trail through the API.

use std::io::Write;
use std::process::ExitCode;

use reqwest::Method;
use serde_json::Value;

use crate::cli::{AuditCommand, AuditFilter, OutputFormat};
use crate::client::{Client, block_on, cell, encode_query_value, print_table};

fn query(after: i64, limit: u32, filter: &AuditFilter) -> String {
    let mut q = format!("/api/v1/audit?after={after}&limit={limit}");
    for (name, value) in [
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("workspace", &filter.workspace),
        ("actor_kind", &filter.actor_kind),
    ] {
        if let Some(v) = value {
            q.push_str(&format!("&{name}={}", encode_query_value(v)));
        }
    }
    q
}

/// Prints audit events as they are recorded (from now on), following the event stream. After
/// a `reset` (the stream could not replay what was missed) the gap is read from the audit
/// trail itself, so nothing recorded is skipped.
async fn tail(api: &Client, filter: &AuditFilter) -> anyhow::Result<()> {
    let first = api
        .call(Method::GET, &query(i64::MAX - 1, 1, filter), None)
        .await?;
    let mut printed = first["head"].as_i64().unwrap_or(0);
    let stream_query =
        crate::commands::events::query(&["audit".to_string()], filter.workspace.as_deref());
    let mut follower = crate::follow::Follower::new(api, &stream_query);
    loop {
        let event = follower.next().await?;
        if crate::follow::is_reset(&event) {
            printed = print_missed(api, filter, printed).await?;
            continue;
        }
        let record = audit_record(&event);
        let seq = record["seq"].as_i64().unwrap_or(0);
        if seq > printed && matches(&record, filter) {
            println!("{record}");
            std::io::stdout().flush()?;
        }
        printed = printed.max(seq);
    }
}

/// Prints what was recorded after `printed`, from the audit trail; answers the last one.
async fn print_missed(api: &Client, filter: &AuditFilter, mut printed: i64) -> anyhow::Result<i64> {
    loop {
        let page = events(
            &api.call(Method::GET, &query(printed, 1000, filter), None)
                .await?,
        );
        let Some(last) = page.last().and_then(|e| e["seq"].as_i64()) else {
            return Ok(printed);
        };
        for event in &page {
            println!("{event}");
        }
        std::io::stdout().flush()?;
        printed = last;
    }
}

/// The audit record a stream event carries, as `GET /api/v1/audit` lists it.
fn audit_record(event: &steward_wire::events::StreamEvent) -> Value {
    let mut record = event.detail.clone();
    record.insert("at_ms".into(), event.at_ms.into());
    record.insert(
        "workspace".into(),
        event.workspace.clone().map_or(Value::Null, Value::String),
    );
    Value::Object(record)
}

/// Whether a record passes the filters the stream does not apply (actor, action, kind).
fn matches(record: &Value, filter: &AuditFilter) -> bool {
    let actor = &record["actor"];
    filter.actor.as_deref().is_none_or(|a| actor["name"] == a)
        && filter
            .action
            .as_deref()
            .is_none_or(|a| record["action"] == a)
        && filter
            .actor_kind
            .as_deref()
            .is_none_or(|k| actor["kind"] == k)
}

/// Parses `SEQ:HASH`.
fn parse_head(raw: &str) -> anyhow::Result<(i64, String)> {
    let (seq, hash) = raw
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("--expect-head: expected SEQ:HASH"))?;
    let seq: i64 = seq
        .parse()
        .map_err(|_| anyhow::anyhow!("--expect-head: `{seq}` is not a sequence number"))?;
    anyhow::ensure!(seq >= 1, "--expect-head: sequence numbers start at 1");
    anyhow::ensure!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "--expect-head: the hash is 64 hex digits"
    );
    Ok((seq, hash.to_ascii_lowercase()))
}

/// True when event `seq` still carries `hash`.
async fn head_still_recorded(api: &Client, seq: i64, hash: &str) -> anyhow::Result<bool> {
    let page = api
        .call(
            Method::GET,
            &format!("/api/v1/audit?after={}&limit=1", seq - 1),
            None,
        )
        .await?;
    Ok(events(&page)
        .first()
        .is_some_and(|e| e["seq"].as_i64() == Some(seq) && e["hash"].as_str() == Some(hash)))
}

/// Exit code of `steward audit verify` for a broken chain (1 means it could not be checked).
const EXIT_BROKEN: u8 = 3;

fn events(answer: &Value) -> Vec<Value> {
    answer["events"].as_array().cloned().unwrap_or_default()
}

pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match command {
            AuditCommand::Ls {
                after,
                limit,
                filter,
                client,
            } => {
                let answer = Client::new(&client)?
                    .call(Method::GET, &query(after, limit, &filter), None)
                    .await?;
                if client.output == OutputFormat::Json {
                    println!("{answer}");
                    return Ok(ExitCode::SUCCESS);
                }
                let rows: Vec<Vec<String>> = events(&answer)
                    .iter()
                    .map(|e| {
                        vec![
                            cell(&e["seq"]),
                            cell(&e["at_ms"]),
                            format!(
                                "{}:{}",
                                cell(&e["actor"]["kind"]),
                                cell(&e["actor"]["name"])
                            ),
                            cell(&e["actor"]["source_ip"]),
                            cell(&e["action"]),
                            cell(&e["target"]),
                            cell(&e["workspace"]),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "SEQ",
                        "AT (ms)",
                        "ACTOR",
                        "FROM",
                        "ACTION",
                        "TARGET",
                        "WORKSPACE",
                    ],
                    &rows,
                );
                if let Some(next) = answer["next_after"].as_i64() {
                    eprintln!("more: --after {next}");
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Verify {
                expect_head,
                client,
            } => {
                let api = Client::new(&client)?;
                let expected = expect_head.as_deref().map(parse_head).transpose()?;
                match api.call(Method::GET, "/api/v1/audit/verify", None).await {
                    Ok(answer) => {
                        println!(
                            "audit chain intact: {} events verified",
                            cell(&answer["events"])
                        );
                        if let (Some(seq), Some(hash)) = (
                            answer["head"]["seq"].as_i64(),
                            answer["head"]["hash"].as_str(),
                        ) {
                            println!("head: {seq}:{hash}");
                        }
                        match expected {
                            Some((seq, hash)) if !head_still_recorded(&api, seq, &hash).await? => {
                                println!(
                                    "audit chain BROKEN: event {seq} no longer has the recorded hash; history was rewritten"
                                );
                                Ok(ExitCode::from(EXIT_BROKEN))
                            }
                            Some((seq, _)) => {
                                println!("recorded head {seq} is still in the chain");
                                Ok(ExitCode::SUCCESS)
                            }
                            None => Ok(ExitCode::SUCCESS),
                        }
                    }
                    Err(e) if e.to_string().contains(" 409 audit_chain_broken:") => {
                        println!("audit chain BROKEN: {e}");
                        Ok(ExitCode::from(EXIT_BROKEN))
                    }
                    Err(e) => Err(e),
                }
            }
            AuditCommand::Export {
                format: _,
                filter,
                client,
            } => {
                let api = Client::new(&client)?;
                let mut after = 0;
                let mut out = std::io::stdout().lock();
                loop {
                    let page = events(
                        &api.call(Method::GET, &query(after, 10_000, &filter), None)
                            .await?,
                    );
                    let Some(last) = page.last().and_then(|e| e["seq"].as_i64()) else {
                        break;
                    };
                    for event in &page {
                        writeln!(out, "{event}")?;
                    }
                    after = last;
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Tail {
                interval: _,
                filter,
                client,
            } => {
                let api = Client::new(&client)?;
                tail(&api, &filter).await?;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
