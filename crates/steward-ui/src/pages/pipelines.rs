//! `/pipelines`, `/pipelines/{name}` and `/pipelines/runs/{id}`: the declared pipelines with
//! their latest run, one pipeline's steps drawn as a DAG with its recent runs, and one run
//! drawn with its steps coloured by state, beside its timeline; "cancel" and "retry" for
//! operators.

use axum::extract::{Path, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use steward_wire::paths::{self, Route};
use steward_wire::pipelines::{
    Pipeline, PipelineList, PipelineRun, PipelineRunList, PipelineRunsQuery, RunDetail, RunStep,
};

use crate::render::Page;
use crate::{PageError, Ui};

use super::read_form;
use super::tasks::ActionForm;

/// Runs listed on a pipeline's page.
const RECENT_RUNS: u32 = 50;
/// The drawing's measures, in SVG units.
const BOX_WIDTH: i64 = 140;
const BOX_HEIGHT: i64 = 34;
const COLUMN: i64 = 190;
const ROW: i64 = 52;
const MARGIN: i64 = 12;

/// A step drawn: its box and label.
#[derive(Debug, Serialize, PartialEq)]
struct DrawnStep {
    name: String,
    state: String,
    box_x: i64,
    box_y: i64,
    x: i64,
    y: i64,
}

/// A need drawn: from the needed step's right edge to the step's left edge.
#[derive(Debug, Serialize, PartialEq)]
struct DrawnNeed {
    from: String,
    to: String,
    d: String,
}

/// A pipeline's steps laid out left to right, each column a depth (the longest chain of needs
/// before it).
#[derive(Debug, Serialize, PartialEq)]
struct Drawing {
    width: i64,
    height: i64,
    steps: Vec<DrawnStep>,
    needs: Vec<DrawnNeed>,
}

/// Lays out `steps` (name, needs, state), in declaration order.
fn draw(steps: &[(String, Vec<String>, String)]) -> Drawing {
    let index = |name: &str| steps.iter().position(|(n, _, _)| n == name);
    // Depths by repeated relaxation: the config reader refused cycles, and a pipeline has at
    // most 200 steps.
    let mut depth = vec![0i64; steps.len()];
    for _ in 0..steps.len() {
        let mut changed = false;
        for (i, (_, needs, _)) in steps.iter().enumerate() {
            for need in needs {
                if let Some(j) = index(need)
                    && depth[i] < depth[j] + 1
                {
                    depth[i] = depth[j] + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut rows_used = std::collections::BTreeMap::<i64, i64>::new();
    let mut placed = Vec::with_capacity(steps.len());
    for (i, (name, _, state)) in steps.iter().enumerate() {
        let row = rows_used.entry(depth[i]).or_default();
        let box_x = MARGIN + depth[i] * COLUMN;
        let box_y = MARGIN + *row * ROW;
        *row += 1;
        placed.push(DrawnStep {
            name: name.clone(),
            state: state.clone(),
            box_x,
            box_y,
            x: box_x + BOX_WIDTH / 2,
            y: box_y + BOX_HEIGHT / 2,
        });
    }
    let mut needs = Vec::new();
    for (i, (name, wanted, _)) in steps.iter().enumerate() {
        for need in wanted {
            let Some(j) = index(need) else { continue };
            let (a, b) = (&placed[j], &placed[i]);
            let (x1, y1, x2, y2) = (a.box_x + BOX_WIDTH, a.y, b.box_x - 4, b.y);
            let mid = (x1 + x2) / 2;
            needs.push(DrawnNeed {
                from: need.clone(),
                to: name.clone(),
                d: format!("M{x1} {y1} C{mid} {y1} {mid} {y2} {x2} {y2}"),
            });
        }
    }
    let columns = depth.iter().copied().max().unwrap_or(0) + 1;
    let rows = rows_used.values().copied().max().unwrap_or(1);
    Drawing {
        width: 2 * MARGIN + (columns - 1) * COLUMN + BOX_WIDTH,
        height: 2 * MARGIN + (rows - 1) * ROW + BOX_HEIGHT,
        steps: placed,
        needs,
    }
}

/// What `/pipelines` shows.
#[derive(Serialize)]
struct PipelinesPage {
    pipelines: Vec<Pipeline>,
}

/// `GET /pipelines`.
pub(crate) async fn list(State(ui): State<Ui>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let list: PipelineList = ui.get(&signed, paths::PIPELINES.template()).await?;
        ui.render(
            &signed,
            Page {
                template: "pipelines.html",
                title: "Pipelines".into(),
                nav: "pipelines",
                live: true,
                data: PipelinesPage {
                    pipelines: list.pipelines,
                },
            },
        )
    }
    .await;
    ui.respond(result)
}

/// What `/pipelines/{name}` shows.
#[derive(Serialize)]
struct PipelinePage {
    pipeline: Pipeline,
    drawing: Drawing,
    runs: Vec<PipelineRun>,
}

/// `GET /pipelines/{name}`: the steps drawn, and the recent runs.
pub(crate) async fn detail(
    State(ui): State<Ui>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let path = paths::PIPELINE.with(&[&name]);
        let pipeline: Pipeline = ui.get(&signed, &path).await?;
        let query = PipelineRunsQuery {
            pipeline: Some(name.clone()),
            limit: Some(RECENT_RUNS),
            ..PipelineRunsQuery::default()
        };
        let path = paths::PIPELINE_RUNS
            .with_query(&[], &query)
            .map_err(|e| PageError::Internal(e.to_string()))?;
        let runs: PipelineRunList = ui.get(&signed, &path).await?;
        let steps: Vec<(String, Vec<String>, String)> = pipeline
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.needs.clone(), "none".to_owned()))
            .collect();
        ui.render(
            &signed,
            Page {
                template: "pipeline.html",
                title: format!("Pipeline {name}"),
                nav: "pipelines",
                live: true,
                data: PipelinePage {
                    drawing: draw(&steps),
                    pipeline,
                    runs: runs.runs,
                },
            },
        )
    }
    .await;
    ui.respond(result)
}

/// A step of a run's timeline, its result as compact JSON.
#[derive(Serialize)]
struct StepRow {
    #[serde(flatten)]
    step: RunStep,
    result_text: Option<String>,
}

/// What `/pipelines/runs/{id}` shows.
#[derive(Serialize)]
struct RunPage {
    run: PipelineRun,
    steps: Vec<StepRow>,
    drawing: Drawing,
    input: String,
}

/// `GET /pipelines/runs/{id}`: the run drawn with its steps coloured by state, and its
/// timeline.
pub(crate) async fn run(State(ui): State<Ui>, Path(id): Path<i64>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let path = paths::PIPELINE_RUN.with(&[&id]);
        let detail: RunDetail = ui.get(&signed, &path).await?;
        let steps: Vec<(String, Vec<String>, String)> = detail
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.needs.clone(), s.state.clone()))
            .collect();
        let input = serde_json::to_string_pretty(&detail.run.input)
            .map_err(|e| PageError::Internal(format!("cannot show JSON: {e}")))?;
        ui.render(
            &signed,
            Page {
                template: "pipeline_run.html",
                title: format!("Run {id} of {}", detail.run.pipeline),
                nav: "pipelines",
                live: true,
                data: RunPage {
                    drawing: draw(&steps),
                    run: detail.run,
                    steps: detail
                        .steps
                        .into_iter()
                        .map(|step| StepRow {
                            result_text: step.result.as_ref().map(|r| r.to_string()),
                            step,
                        })
                        .collect(),
                    input,
                },
            },
        )
    }
    .await;
    ui.respond(result)
}

/// `POST /pipelines/runs/{id}/cancel` (operators), then back to the run.
pub(crate) async fn cancel(
    State(ui): State<Ui>,
    Path(id): Path<i64>,
    request: Request,
) -> Response {
    act_on_run(ui, id, request, paths::PIPELINE_RUN_CANCEL).await
}

/// `POST /pipelines/runs/{id}/retry` (operators), then back to the run.
pub(crate) async fn retry(State(ui): State<Ui>, Path(id): Path<i64>, request: Request) -> Response {
    act_on_run(ui, id, request, paths::PIPELINE_RUN_RETRY).await
}

async fn act_on_run(ui: Ui, id: i64, request: Request, route: Route) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let signed = ui.signed(&parts).await?;
        let form: ActionForm = read_form(&ui, parts.clone(), body).await?;
        signed.check_form(&form.csrf)?;
        let path = route.with(&[&id]);
        ui.act(&signed, Method::POST, &path, None).await?;
        Ok(Redirect::to(&ui.link(&format!("/pipelines/runs/{id}"))).into_response())
    }
    .await;
    ui.respond(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, needs: &[&str]) -> (String, Vec<String>, String) {
        (
            name.into(),
            needs.iter().map(|n| (*n).to_owned()).collect(),
            "waiting".into(),
        )
    }

    #[test]
    fn steps_are_drawn_in_columns_by_depth_and_rows_within_them() {
        let drawing = draw(&[
            step("split", &[]),
            step("b0", &["split"]),
            step("b1", &["split"]),
            step("join", &["b0", "b1"]),
        ]);
        let at: Vec<(i64, i64)> = drawing.steps.iter().map(|s| (s.box_x, s.box_y)).collect();
        assert_eq!(
            at,
            [
                (MARGIN, MARGIN),
                (MARGIN + COLUMN, MARGIN),
                (MARGIN + COLUMN, MARGIN + ROW),
                (MARGIN + 2 * COLUMN, MARGIN),
            ]
        );
        assert_eq!(drawing.needs.len(), 4);
        assert_eq!(drawing.width, 2 * MARGIN + 2 * COLUMN + BOX_WIDTH);
        assert_eq!(drawing.height, 2 * MARGIN + ROW + BOX_HEIGHT);
    }
}
