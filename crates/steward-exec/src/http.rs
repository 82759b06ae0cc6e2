//! The `http` executor: one request per attempt to a declared URL or registry service, with the
//! task's payload as the JSON body.

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use steward_core::queue::{HttpSpec, HttpTarget};
use steward_core::task::{MAX_OUTCOME_LEN, Task};

use crate::{Executor, Failure, Output, RunContext};

/// Calls a URL for each attempt.
pub struct HttpExecutor {
    spec: HttpSpec,
    method: reqwest::Method,
    headers: HeaderMap,
    client: reqwest::Client,
}

impl HttpExecutor {
    /// Builds the executor; fails on a method or header the HTTP library refuses.
    pub fn new(spec: HttpSpec) -> Result<Self, String> {
        let method = reqwest::Method::from_bytes(spec.method.as_bytes())
            .map_err(|_| format!("`{}` is not an HTTP method", spec.method))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &spec.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a header name"))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| format!("the value of header `{name}` is not valid in a header"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            spec,
            method,
            headers,
            client,
        })
    }

    fn url(&self, cx: &RunContext) -> Result<String, Failure> {
        match &self.spec.target {
            HttpTarget::Url(url) => Ok(url.clone()),
            HttpTarget::Service { name, path } => {
                let service = cx
                    .registry
                    .services
                    .iter()
                    .find(|s| &s.name == name)
                    .ok_or_else(|| {
                        Failure::retryable(format!("service `{name}` is not in the registry"))
                    })?;
                let base = service
                    .url
                    .as_deref()
                    .filter(|u| !u.contains("${"))
                    .ok_or_else(|| {
                        Failure::permanent(format!("service `{name}` has no literal url"))
                    })?;
                Ok(format!("{}{path}", base.trim_end_matches('/')))
            }
        }
    }

    fn succeeded(&self, status: reqwest::StatusCode) -> bool {
        if self.spec.success_status.is_empty() {
            status.is_success()
        } else {
            self.spec.success_status.contains(&status.as_u16())
        }
    }

    /// Reads at most `max_response_bytes` of the body (a body that reaches it may have been
    /// cut).
    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, Failure> {
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failure::retryable(format!("reading the response: {e}")))?
        {
            let room = self.spec.max_response_bytes.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= self.spec.max_response_bytes {
                break;
            }
        }
        Ok(body)
    }

    fn outcome_of(&self, json: Option<&serde_json::Value>) -> Option<String> {
        let field = self.spec.outcome_field.as_deref()?;
        json?
            .get(field)?
            .as_str()
            .filter(|o| !o.is_empty() && o.len() <= MAX_OUTCOME_LEN)
            .map(str::to_string)
    }
}

#[async_trait]
impl Executor for HttpExecutor {
    async fn run(&self, task: &Task, cx: &RunContext) -> Result<Output, Failure> {
        let url = self.url(cx)?;
        let mut request = self
            .client
            .request(self.method.clone(), &url)
            .headers(self.headers.clone())
            .header("x-steward-task", task.id)
            .header("x-steward-attempt", task.attempt)
            .header("idempotency-key", format!("steward-task-{}", task.id));
        if self.method != reqwest::Method::GET {
            request = request.json(&task.payload);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::retryable(format!("{} {url}: {e}", self.method)))?;
        let status = response.status();
        let body = self.read_body(response).await?;
        let text = String::from_utf8_lossy(&body);
        // A secret the limit cut in two is masked at the end too: the worker, which masks the
        // rest, no longer knows where the body was cut.
        let text = if body.len() >= self.spec.max_response_bytes {
            cx.redactor.redact_head(&text).into_owned()
        } else {
            text.into_owned()
        };
        let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        if !self.succeeded(status) {
            // Client errors other than timeouts and rate limits will fail the same way again.
            let retryable = !status.is_client_error() || matches!(status.as_u16(), 408 | 425 | 429);
            return Err(Failure {
                error: format!("{} {url} answered {status}", self.method),
                retryable,
                tail: Some(text),
            });
        }
        Ok(Output {
            outcome: self.outcome_of(json.as_ref()),
            result: json,
            tail: Some(text),
        })
    }
}
