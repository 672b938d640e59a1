//! Downloading a feed from a URL safely: http(s) only, every hop resolved and checked to be a
//! public address (unless allowed), the connection pinned to it, time and size capped.

use std::time::Duration;

use super::{Feed, ImportError, MAX_FEED_BYTES, MAX_SOURCE_CHARS, on_blocking_thread, truncate};
use crate::error::Error;

/// How long downloading a feed from a URL may take in all.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Most redirects a feed download follows.
const MAX_REDIRECTS: usize = 5;

/// Downloads a feed: http(s) only, [`FETCH_TIMEOUT`] in all, at most [`MAX_FEED_BYTES`] read.
/// Every hop (the URL and each redirect, followed by hand) must resolve to public addresses
/// only, unless its host is in `allowed_hosts`; the connection goes to the address that was
/// checked (`*` allows every host: the operator's own command line). A fetched document that does not parse is refused without echoing its content.
pub async fn fetch_feed(url: &str, allowed_hosts: &[String]) -> Result<Feed, ImportError> {
    let mut url = parse_feed_url(url)?;
    let started = tokio::time::Instant::now();
    let mut hops = 0;
    let mut response = loop {
        let client = pinned_client(&url, allowed_hosts).await?;
        let remaining = FETCH_TIMEOUT.saturating_sub(started.elapsed());
        let response = client
            .get(url.clone())
            .timeout(remaining)
            .send()
            .await
            .map_err(unreachable)?;
        if !response.status().is_redirection() {
            break response;
        }
        hops += 1;
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|location| url.join(location).ok());
        match location {
            Some(next) if hops <= MAX_REDIRECTS => {
                url = parse_feed_url(next.as_str())?;
            }
            _ => {
                return Err(ImportError::Unreachable {
                    message: format!(
                        "the feed URL redirected too often or without a usable location (at most {MAX_REDIRECTS})"
                    ),
                    status: Some(response.status().as_u16()),
                });
            }
        }
    };
    let status = response.status();
    if !status.is_success() {
        return Err(ImportError::Unreachable {
            message: format!("the feed URL answered HTTP {status}"),
            status: Some(status.as_u16()),
        });
    }
    if response
        .content_length()
        .is_some_and(|length| length > MAX_FEED_BYTES as u64)
    {
        return Err(ImportError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > MAX_FEED_BYTES {
            return Err(ImportError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    match on_blocking_thread(move || Feed::from_json(&body)).await? {
        // The message of a parse error can quote the document: never send it back.
        Err(ImportError::InvalidFeed(_)) => Err(ImportError::InvalidFeed(
            "the document at the URL is not a Shopify products.json export".into(),
        )),
        other => other,
    }
}

/// A client for one hop to `url`: its host resolved and checked, and pinned to the checked
/// addresses so a second resolution cannot lead elsewhere. No redirects are followed by it.
async fn pinned_client(
    url: &reqwest::Url,
    allowed_hosts: &[String],
) -> Result<reqwest::Client, ImportError> {
    let host = url
        .host_str()
        .ok_or_else(|| ImportError::InvalidUrl("url has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| ImportError::Unreachable {
            message: "the feed URL's host could not be resolved".into(),
            status: None,
        })?
        .collect();
    if addresses.is_empty() {
        return Err(ImportError::Unreachable {
            message: "the feed URL's host could not be resolved".into(),
            status: None,
        });
    }
    let allowed = allowed_hosts.iter().any(|allowed| {
        let allowed = allowed.trim();
        allowed == "*" || allowed.eq_ignore_ascii_case(&host)
    });
    if !allowed && addresses.iter().any(|addr| !is_public(addr.ip())) {
        return Err(ImportError::ForbiddenUrl(
            "the feed URL (or a redirect) leads to a loopback, private, link-local or \
             unique-local address; add its host to the import allow-list for on-premises feeds"
                .into(),
        ));
    }
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .resolve_to_addrs(&host, &addresses)
        .user_agent(concat!("fitkart-sync-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| Error::Config(format!("cannot build the HTTP client: {err}")).into())
}

/// Whether `ip` is a public unicast address (not loopback, private, link-local, unique-local,
/// shared, documentation, multicast or unspecified).
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
}

fn parse_feed_url(url: &str) -> Result<reqwest::Url, ImportError> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|err| ImportError::InvalidUrl(format!("url is not a valid URL: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ImportError::InvalidUrl(
            "url must be an http or https URL".into(),
        ));
    }
    Ok(parsed)
}

fn unreachable(err: reqwest::Error) -> ImportError {
    let message = if err.is_timeout() {
        format!(
            "the feed URL did not answer within {} s",
            FETCH_TIMEOUT.as_secs()
        )
    } else {
        // The chain of causes, without the URL (it may carry an access token).
        let mut message = String::from("the feed could not be downloaded");
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        truncate(&message, 300)
    };
    ImportError::Unreachable {
        message,
        status: None,
    }
}

/// A feed URL as the audit log shows it: scheme, host, port and path, never credentials or
/// the query string.
pub fn describe_url(url: &str) -> String {
    match reqwest::Url::parse(url.trim()) {
        Ok(parsed) => {
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            truncate(
                &format!(
                    "{}://{}{port}{}",
                    parsed.scheme(),
                    parsed.host_str().unwrap_or_default(),
                    parsed.path()
                ),
                MAX_SOURCE_CHARS,
            )
        }
        Err(_) => "url".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_may_be_fetched() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
            "0.0.0.0",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
    #[test]
    fn feed_urls_are_described_without_secrets() {
        assert_eq!(
            describe_url("https://user:pw@shop.example:8443/admin/products.json?token=s3cret"),
            "https://shop.example:8443/admin/products.json"
        );
        assert!(matches!(
            parse_feed_url("file:///etc/passwd"),
            Err(ImportError::InvalidUrl(_))
        ));
    }
}
