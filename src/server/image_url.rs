//! Images given by `http(s)` URL (`--allow-image-urls`; off by default). The server fetches them
//! itself, so each fetch is bounded: a time limit for the whole transfer, a byte limit checked
//! against `Content-Length` and again while the body streams in, at most three redirects, and only
//! `http`/`https` (a redirect elsewhere is refused). `file:` and every other scheme are never read.
//!
//! Destinations: unless `--image-url-allow-private`, only public addresses are fetched from. A
//! host given as an IP literal is checked before anything is sent, every redirect target too,
//! and host names go through a resolver that drops loopback, private, link-local (cloud
//! metadata at 169.254.169.254), CGNAT, multicast and reserved addresses, so a name that
//! resolves to one of them is refused at connect time, whatever the URL looked like.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::openai::ApiError;

/// Where a request's image comes from.
pub enum ImageSource {
    /// Bytes sent in the request (a `data:` URL).
    Inline(Vec<u8>),
    /// An `http(s)` URL, fetched only with `--allow-image-urls`.
    Url(String),
}

/// Most redirects one fetch follows.
const MAX_REDIRECTS: usize = 3;

/// A destination refused because it is not a public address.
#[derive(Debug)]
struct Forbidden(String);

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (start the server with --image-url-allow-private to allow it)",
            self.0
        )
    }
}

impl std::error::Error for Forbidden {}

/// Whether `ip` is an ordinary public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18.0.0/15
                || a >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: a v4 address in disguise
                || (s[..6] == [0, 0, 0, 0, 0, 0])) // IPv4-compatible (deprecated)
        }
    }
}

/// Refuses a URL whose host is an IP literal that is not public (names are checked when they
/// resolve, by [`PublicOnly`]).
fn check_literal_host(url: &reqwest::Url) -> Result<(), Forbidden> {
    // the URL parser has already normalised IPv4 spellings (0x7f.1 is 127.0.0.1); IPv6 hosts
    // come bracketed
    let host = url.host_str().unwrap_or("");
    let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    else {
        return Ok(());
    };
    if is_public(ip) {
        Ok(())
    } else {
        Err(Forbidden(format!("{ip} is not a public address")))
    }
}

/// The system resolver, keeping public addresses only.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> =
                all.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() && !all.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = Box::new(Forbidden(format!(
                    "{host} resolves to {}, not a public address",
                    all[0].ip()
                )));
                return Err(err);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Limits on fetching `http(s)` image URLs.
#[derive(Debug, Clone)]
pub struct ImageUrlLimits {
    /// For the whole fetch of one image (connect, redirects, body).
    pub timeout: Duration,
    pub max_bytes: usize,
    /// `--image-url-allow-private`: fetch from loopback, private and link-local addresses too.
    pub allow_private: bool,
}

/// Fetches image URLs within the configured limits.
pub struct UrlFetcher {
    client: reqwest::Client,
    limits: ImageUrlLimits,
}

impl UrlFetcher {
    pub fn new(limits: &ImageUrlLimits) -> Result<UrlFetcher, String> {
        let (timeout, allow_private) = (limits.timeout, limits.allow_private);
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if let (false, Err(e)) = (allow_private, check_literal_host(attempt.url())) {
                attempt.error(e)
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(redirects)
            .user_agent(concat!("artemis-serve/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        let client = builder
            .build()
            .map_err(|e| format!("--allow-image-urls: cannot set up the HTTP client: {e}"))?;
        Ok(UrlFetcher {
            client,
            limits: limits.clone(),
        })
    }

    /// The image at `url`; every failure is a 400 naming `param` (the request field).
    pub async fn fetch(&self, url: &str, param: &str) -> Result<Vec<u8>, ApiError> {
        let fail = |m: String| ApiError {
            code: "image_url_fetch_failed",
            ..ApiError::invalid(param, m)
        };
        let forbidden = |e: &Forbidden| ApiError {
            code: "image_url_forbidden",
            ..ApiError::invalid(param, format!("image URL refused: {e}"))
        };
        let describe = |e: reqwest::Error| {
            if e.is_timeout() {
                return fail(format!(
                    "fetching the image took longer than {} s",
                    self.limits.timeout.as_secs_f64()
                ));
            }
            // the innermost cause says what happened (refused, unknown host, bad scheme…)
            let mut cause: &dyn std::error::Error = &e;
            loop {
                if let Some(f) = cause.downcast_ref::<Forbidden>() {
                    return forbidden(f);
                }
                match cause.source() {
                    Some(c) => cause = c,
                    None => break,
                }
            }
            fail(format!("fetching the image failed: {cause}"))
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| fail(format!("not a valid URL: {e}")))?;
        if !self.limits.allow_private {
            check_literal_host(&parsed).map_err(|e| forbidden(&e))?;
        }
        let mut resp = self.client.get(parsed).send().await.map_err(describe)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(fail(format!(
                "fetching the image: the server answered {status}"
            )));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > self.limits.max_bytes as u64)
        {
            return Err(self.too_big(param));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(describe)? {
            if bytes.len() + chunk.len() > self.limits.max_bytes {
                return Err(self.too_big(param));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    fn too_big(&self, param: &str) -> ApiError {
        ApiError {
            code: "image_too_large",
            ..ApiError::invalid(
                param,
                format!(
                    "the image at the URL is larger than {} bytes (--image-url-max-bytes)",
                    self.limits.max_bytes
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_count_as_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2001:db8::1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} counted as public");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:93.184.216.34",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} counted as private");
        }
    }

    #[test]
    fn literal_hosts_are_checked_names_are_left_to_the_resolver() {
        let check = |u: &str| check_literal_host(&reqwest::Url::parse(u).unwrap()).is_ok();
        assert!(!check("http://127.0.0.1:8080/a.png"));
        assert!(!check("http://[::1]/a.png"));
        assert!(!check("http://169.254.169.254/latest/meta-data"));
        assert!(!check("http://0x7f.1/a.png")); // the URL parser normalises it to 127.0.0.1
        assert!(check("http://93.184.216.34/a.png"));
        assert!(check("http://localhost/a.png")); // a name: refused when it resolves
    }
}
