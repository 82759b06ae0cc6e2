//! The stylesheet and script, compiled into the binary and served under names that carry
//! their content's hash, so a browser may keep them forever and never runs a stale one.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
struct Asset {
    /// What pages call it (`css`, `js`).
    role: &'static str,
    /// Its name before the hash is put in (`steward.css`).
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        role: "css",
        name: "steward.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/steward.css"),
    },
    Asset {
        role: "js",
        name: "steward.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/steward.js"),
    },
];

/// Each asset's served name (`steward.1a2b3c4d5e.css`), computed once.
fn served_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let hash = hex::encode(Sha256::digest(asset.body.as_bytes()));
                let (stem, ext) = asset.name.rsplit_once('.').unwrap_or((asset.name, ""));
                format!("{stem}.{}.{ext}", &hash[..10])
            })
            .collect()
    })
}

/// Each asset's URL by role, for templates.
pub(crate) fn urls(base: &str) -> BTreeMap<&'static str, String> {
    ASSETS
        .iter()
        .zip(served_names())
        .map(|(asset, name)| (asset.role, format!("{base}/assets/{name}")))
        .collect()
}

/// The total size of the embedded assets, in bytes.
#[cfg(test)]
pub(crate) fn total_bytes() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

/// `GET /assets/{file}`: an embedded asset by its served name.
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let found = ASSETS
        .iter()
        .zip(served_names())
        .find(|(_, name)| **name == file);
    let Some((asset, _)) = found else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_names_carry_a_hash_and_keep_the_extension() {
        let urls = urls("/steward");
        assert!(urls["css"].starts_with("/steward/assets/steward."));
        assert!(urls["css"].ends_with(".css"));
        assert!(urls["js"].ends_with(".js"));
        assert_eq!(
            urls["css"].len(),
            "/steward/assets/steward.0123456789.css".len()
        );
    }

    #[test]
    fn assets_stay_small() {
        assert!(total_bytes() < 60 * 1024, "{} bytes", total_bytes());
    }
}
