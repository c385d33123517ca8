//! Images given by `http(s)` URL (`--allow-image-urls`; off by default). The server fetches them
//! itself, so each fetch is bounded: a time limit for the whole transfer, a byte limit checked
//! against `Content-Length` and again while the body streams in, at most three redirects, and only
//! `http`/`https` (a redirect elsewhere is refused). `file:` and every other scheme are never read.
//! The limits keep one request from holding the server; they do not keep it from reaching hosts
//! on its own network, which is why the fetch is opt-in.

use std::time::Duration;

use super::openai::ApiError;

/// Where a request's image comes from.
pub enum ImageSource {
    /// Bytes sent in the request (a `data:` URL).
    Inline(Vec<u8>),
    /// An `http(s)` URL, fetched only with `--allow-image-urls`.
    Url(String),
}

/// Fetches image URLs within the configured limits.
pub struct UrlFetcher {
    client: reqwest::Client,
    max_bytes: usize,
    timeout: Duration,
}

impl UrlFetcher {
    pub fn new(timeout: Duration, max_bytes: usize) -> Result<UrlFetcher, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("artemis-serve/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("--allow-image-urls: cannot set up the HTTP client: {e}"))?;
        Ok(UrlFetcher {
            client,
            max_bytes,
            timeout,
        })
    }

    /// The image at `url`; every failure is a 400 naming `param` (the request field).
    pub async fn fetch(&self, url: &str, param: &str) -> Result<Vec<u8>, ApiError> {
        let fail = |m: String| ApiError {
            code: "image_url_fetch_failed",
            ..ApiError::invalid(param, m)
        };
        let describe = |e: reqwest::Error| {
            if e.is_timeout() {
                format!(
                    "fetching the image took longer than {} s",
                    self.timeout.as_secs_f64()
                )
            } else if e.is_redirect() {
                "fetching the image: too many redirects".to_string()
            } else {
                // the innermost cause says what happened (refused, unknown host, bad scheme…)
                let mut cause: &dyn std::error::Error = &e;
                while let Some(c) = cause.source() {
                    cause = c;
                }
                format!("fetching the image failed: {cause}")
            }
        };
        let mut resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| fail(describe(e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(fail(format!(
                "fetching the image: the server answered {status}"
            )));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(self.too_big(param));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(describe(e)))? {
            if bytes.len() + chunk.len() > self.max_bytes {
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
                    self.max_bytes
                ),
            )
        }
    }
}
