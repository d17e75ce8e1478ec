//! A small JSON client for hookshape's HTTP API: the demo publishes the samples and reads back
//! events and attempts the way any integration would, with the admin token.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, StatusCode, header};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one API call may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often [`Api::settled_event`] looks again.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// The API of one running dispatcher.
pub struct Api {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    base_url: String,
    token: String,
}

impl Api {
    pub fn new(base_url: String, token: String) -> Api {
        Api {
            http: HyperClient::builder(TokioExecutor::new()).build_http(),
            base_url,
            token,
        }
    }

    /// `POST /v1/tenants/{tenant}/events`: the receipt (`id`, `deliveries`, maybe `duplicate`).
    pub async fn publish(&self, tenant: &str, event: &Value) -> anyhow::Result<Value> {
        let path = format!("/v1/tenants/{tenant}/events");
        let (status, receipt) = self.call(Method::POST, &path, Some(event)).await?;
        if !status.is_success() {
            bail!("POST {path} answered {status}: {receipt}");
        }
        Ok(receipt)
    }

    /// Any `GET` that must answer 200.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.call(Method::GET, path, None).await?;
        if status != StatusCode::OK {
            bail!("GET {path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// The event once none of its deliveries is `pending`, waiting at most `timeout`.
    pub async fn settled_event(
        &self,
        tenant: &str,
        event_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let path = format!("/v1/tenants/{tenant}/events/{event_id}");
        let deadline = Instant::now() + timeout;
        loop {
            let event = self.get(&path).await?;
            let pending = event["deliveries"]
                .as_array()
                .context("an event's deliveries are a list")?
                .iter()
                .any(|d| d["state"] == "pending");
            if !pending {
                return Ok(event);
            }
            if Instant::now() >= deadline {
                bail!("the deliveries of {event_id} were still pending after {timeout:?}");
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        json: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = hyper::Request::builder()
            .method(&method)
            .uri(format!("{}{path}", self.base_url))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        let body = match json {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(json)?)
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(body))?;
        let exchange = async {
            let response = self.http.request(request).await?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            let value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)?
            };
            anyhow::Ok((status, value))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .with_context(|| format!("{method} {path}: no answer within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("{method} {path}"))
    }
}
