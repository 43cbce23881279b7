//! `bitcraps status`: GET /status from a node and print it.

use super::{emit, error_chain, CliResult, Context};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Largest /status body read (bytes); a real one is well under 2 KiB.
const MAX_STATUS_BYTES: usize = 1024 * 1024;
/// The whole request, connect included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Node HTTP URL, e.g. http://127.0.0.1:9480. Default: the home's
    /// `[http] listen`.
    #[arg(long, value_name = "URL")]
    node: Option<String>,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Context, args: Args) -> CliResult {
    let base = match args.node {
        Some(url) => url,
        None => {
            let home = ctx.home()?;
            let config = home.load_config()?;
            let mut addr = config.http_listen()?;
            // A wildcard listen address is reachable on loopback.
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                });
            }
            format!("http://{addr}")
        }
    };
    let url = format!("{}/status", base.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the tokio runtime: {e}"))?;
    let body = runtime.block_on(fetch(&url))?;
    let status: Value =
        serde_json::from_slice(&body).map_err(|e| format!("{url} did not return JSON: {e}"))?;
    if args.json {
        let text = serde_json::to_string_pretty(&status).unwrap_or_else(|_| status.to_string());
        return emit(&format!("{text}\n"));
    }
    emit(&readable(&status))
}

async fn fetch(url: &str) -> CliResult<Vec<u8>> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot reach the node at {url}: {}", error_chain(&e)))?;
    let code = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the response from {url}: {}", error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_STATUS_BYTES {
            return Err(format!("{url}: response larger than {MAX_STATUS_BYTES} bytes").into());
        }
        body.extend_from_slice(&chunk);
    }
    if !code.is_success() {
        let text = String::from_utf8_lossy(&body);
        let text: String = text.chars().take(500).collect();
        return Err(format!("{url} answered {code}: {text}").into());
    }
    Ok(body)
}

/// `key  value` lines: the important fields first, then anything else the
/// node reports (a newer node may add fields).
fn readable(status: &Value) -> String {
    let Some(map) = status.as_object() else {
        return format!("{status}\n");
    };
    const ORDER: [&str; 17] = [
        "node_id",
        "validator_index",
        "chain_id",
        "version",
        "height",
        "view",
        "committed_id",
        "state_root",
        "catching_up",
        "sync_rate_blocks_per_s",
        "peers_connected",
        "peers_total",
        "mempool_len",
        "committed_tx",
        "signer",
        "uptime_ms",
        "fatal",
    ];
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    let mut out = String::new();
    let keys = ORDER
        .iter()
        .copied()
        .filter(|k| map.contains_key(*k))
        .chain(
            map.keys()
                .map(String::as_str)
                .filter(|k| !ORDER.contains(k)),
        );
    for key in keys {
        if let Some(v) = map.get(key) {
            out.push_str(&format!("{key:<24} {}\n", show(v)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_orders_known_fields_and_keeps_unknown_ones() {
        let v = serde_json::json!({
            "zeta": 1, "height": 7, "node_id": "val0",
            "signer": {"backend": "memory", "healthy": true}, "fatal": null
        });
        let text = readable(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("node_id"), "{text}");
        assert!(lines[1].starts_with("height"), "{text}");
        assert!(text.contains("backend=memory healthy=true"), "{text}");
        assert!(lines.last().unwrap().starts_with("zeta"), "{text}");
    }
}
