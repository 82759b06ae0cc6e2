//! `steward audit`: list, verify, export and follow the audit trail through the API.

use std::io::Write;
use std::process::ExitCode;

use steward_wire::audit::{AuditEvent, AuditPage, AuditQuery, AuditVerified};
use steward_wire::events::{EventData, StreamEvent};
use steward_wire::paths;

use crate::cli::{AuditCommand, AuditFilter, OutputFormat};
use crate::client::{Client, block_on, local_time, or_dash, print_json, print_table};

/// A page of the trail after `after`, filtered.
async fn page(
    api: &Client,
    after: i64,
    limit: u32,
    filter: &AuditFilter,
) -> anyhow::Result<AuditPage> {
    let query = AuditQuery {
        after,
        limit: Some(limit),
        actor: filter.actor.clone(),
        action: filter.action.clone(),
        workspace: filter.workspace.clone(),
        actor_kind: filter.actor_kind.clone(),
        node: filter.node.clone(),
    };
    api.get(&paths::AUDIT.with_query(&[], &query)?).await
}

/// Prints audit events as they are recorded (from now on), following the event stream. After
/// a `reset` (the stream could not replay what was missed) the gap is read from the audit
/// trail itself, so nothing recorded is skipped.
async fn tail(api: &Client, filter: &AuditFilter) -> anyhow::Result<()> {
    let mut printed = page(api, i64::MAX - 1, 1, filter).await?.head;
    let stream =
        crate::commands::events::stream_path(&["audit".to_string()], filter.workspace.as_deref())?;
    let mut follower = crate::follow::Follower::new(api, &stream);
    loop {
        let event = follower.next().await?;
        // After a reset or lost events, what was missed is read from the trail itself.
        if crate::follow::is_reset(&event) || event.kind == steward_wire::events::LOST {
            printed = print_missed(api, filter, printed).await?;
            continue;
        }
        let record = audit_record(&event)?;
        if record.seq > printed && matches(&record, filter) {
            print_json(&record)?;
            std::io::stdout().flush()?;
        }
        printed = printed.max(record.seq);
    }
}

/// Prints what was recorded after `printed`, from the audit trail; answers the last one.
async fn print_missed(api: &Client, filter: &AuditFilter, mut printed: i64) -> anyhow::Result<i64> {
    loop {
        let events = page(api, printed, 1000, filter).await?.events;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(printed);
        };
        for event in &events {
            print_json(event)?;
        }
        std::io::stdout().flush()?;
        printed = last;
    }
}

/// The audit record a stream event carries, as `GET /api/v1/audit` lists it.
fn audit_record(event: &StreamEvent) -> anyhow::Result<AuditEvent> {
    let Ok(EventData::Audit(record)) = event.data() else {
        anyhow::bail!(
            "the stream sent a `{}` event where an audit record was expected",
            event.kind
        );
    };
    Ok(record.into_audit_event(event))
}

/// Whether a record passes the filters the stream does not apply (actor, action, kind, node).
fn matches(record: &AuditEvent, filter: &AuditFilter) -> bool {
    filter
        .actor
        .as_deref()
        .is_none_or(|a| record.actor.name == a)
        && filter.action.as_deref().is_none_or(|a| record.action == a)
        && filter
            .actor_kind
            .as_deref()
            .is_none_or(|k| record.actor.kind == k)
        && filter
            .node
            .as_deref()
            .is_none_or(|n| record.origin.as_ref().is_some_and(|o| o.node == n))
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
    let query = AuditQuery {
        after: seq - 1,
        limit: Some(1),
        ..AuditQuery::default()
    };
    let page: AuditPage = api.get(&paths::AUDIT.with_query(&[], &query)?).await?;
    Ok(page
        .events
        .first()
        .is_some_and(|e| e.seq == seq && e.hash == hash))
}

/// Exit code of `steward audit verify` for a broken chain (1 means it could not be checked).
const EXIT_BROKEN: u8 = 3;

pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match command {
            AuditCommand::Ls {
                after,
                limit,
                filter,
                client,
            } => {
                let answer = page(&Client::new(&client)?, after, limit, &filter).await?;
                if client.output == OutputFormat::Json {
                    print_json(&answer)?;
                    return Ok(ExitCode::SUCCESS);
                }
                let rows: Vec<Vec<String>> = answer
                    .events
                    .iter()
                    .map(|e| {
                        vec![
                            e.seq.to_string(),
                            local_time(e.at_ms),
                            format!("{}:{}", e.actor.kind, e.actor.name),
                            // A merged event came from its node, where it had its own seq.
                            match &e.origin {
                                Some(origin) => format!("{}#{}", origin.node, origin.seq),
                                None => or_dash(e.actor.source_ip.as_ref()),
                            },
                            e.action.clone(),
                            e.target.clone(),
                            or_dash(e.workspace.as_ref()),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "SEQ",
                        "AT",
                        "ACTOR",
                        "FROM",
                        "ACTION",
                        "TARGET",
                        "WORKSPACE",
                    ],
                    &rows,
                );
                if let Some(next) = answer.next_after {
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
                let verified: anyhow::Result<AuditVerified> =
                    api.get(&paths::AUDIT_VERIFY.with(&[])).await;
                match verified {
                    Ok(answer) => {
                        println!("audit chain intact: {} events verified", answer.events);
                        if let Some(head) = answer.head {
                            println!("head: {}:{}", head.seq, head.hash);
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
                    let events = page(&api, after, 10_000, &filter).await?.events;
                    let Some(last) = events.last().map(|e| e.seq) else {
                        break;
                    };
                    for event in &events {
                        serde_json::to_writer(&mut out, event)?;
                        writeln!(out)?;
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
