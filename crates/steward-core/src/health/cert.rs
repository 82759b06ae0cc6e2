//! TLS certificates: what a probe or a file on disk says about one.
//!
//! Two pure pieces: [`classify`] turns a certificate's `notAfter` and the current time into a
//! [`CertClass`] (the seed platform's thresholds: warning at 30 days, critical at 14), and
//! [`parse_pem_chain`] / [`parse_der`] turn bytes already read (from a handshake or a file such
//! as Let's Encrypt's `fullchain.pem`) into [`CertInfo`]. Reading the bytes is the caller's job.

use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

/// Milliseconds in one day.
const DAY_MS: i64 = 86_400_000;

/// Whole days left at or under which a certificate is [`CertClass::Warning`].
pub const WARNING_DAYS: i64 = 30;

/// Whole days left at or under which a certificate is [`CertClass::Critical`].
pub const CRITICAL_DAYS: i64 = 14;

/// How close a certificate is to expiry.
///
/// Ordered by severity: `Valid < Warning < Critical < Expired`, so the worst class of a chain
/// or a set of certificates is their `max()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertClass {
    /// More than [`WARNING_DAYS`] whole days left.
    Valid,
    /// At most [`WARNING_DAYS`] whole days left (and more than [`CRITICAL_DAYS`]).
    Warning,
    /// At most [`CRITICAL_DAYS`] whole days left, not yet expired.
    Critical,
    /// `notAfter` has passed.
    Expired,
}

impl CertClass {
    /// The snake_case name, as serialized: `valid`, `warning`, `critical`, `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Warning => "warning",
            Self::Critical => "critical",
            Self::Expired => "expired",
        }
    }
}

impl std::fmt::Display for CertClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whole days from `now_ms` until `not_after_ms`, rounded down (towards minus infinity).
///
/// 30 days and 23 hours left is `30`; exactly `now == notAfter` is `0`; one millisecond past
/// `notAfter` is `-1`. So the result is negative exactly when the certificate has expired.
/// Never overflows: extreme inputs saturate.
pub fn days_left(not_after_ms: i64, now_ms: i64) -> i64 {
    let diff = i128::from(not_after_ms) - i128::from(now_ms);
    let days = diff.div_euclid(i128::from(DAY_MS));
    i64::try_from(days).unwrap_or(if days < 0 { i64::MIN } else { i64::MAX })
}

/// Classifies a certificate by its `notAfter` (Unix milliseconds) at `now_ms`.
///
/// The class is decided on [`days_left`] (whole days, rounded down), so it always agrees with
/// the number of days shown next to it:
///
/// * `days_left < 0` (i.e. `now > notAfter`): [`CertClass::Expired`]. X.509 `notAfter` is
///   inclusive, so at `now == notAfter` the certificate is still (critically) valid.
/// * `0 ..= 14`: [`CertClass::Critical`] — exactly 14 days left is critical.
/// * `15 ..= 30`: [`CertClass::Warning`] — exactly 30 days left is a warning, and so is
///   30 days and 23 hours ("warning ≤ 30 d" in whole days).
/// * `31 ..`: [`CertClass::Valid`].
pub fn classify(not_after_ms: i64, now_ms: i64) -> CertClass {
    let days = days_left(not_after_ms, now_ms);
    if days < 0 {
        CertClass::Expired
    } else if days <= CRITICAL_DAYS {
        CertClass::Critical
    } else if days <= WARNING_DAYS {
        CertClass::Warning
    } else {
        CertClass::Valid
    }
}

/// What Steward keeps of one X.509 certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// The subject's distinguished name, RFC 4514 style (`CN=example.org`).
    pub subject: String,
    /// The issuer's distinguished name, same format (equal to `subject` when self-signed).
    pub issuer: String,
    /// DNS names from the Subject Alternative Name extension, in certificate order.
    pub names: Vec<String>,
    /// Start of validity, Unix milliseconds.
    pub not_before_ms: i64,
    /// End of validity (inclusive), Unix milliseconds.
    pub not_after_ms: i64,
}

impl CertInfo {
    /// [`classify`] this certificate at `now_ms`.
    pub fn class(&self, now_ms: i64) -> CertClass {
        classify(self.not_after_ms, now_ms)
    }

    /// [`days_left`] for this certificate at `now_ms`.
    pub fn days_left(&self, now_ms: i64) -> i64 {
        days_left(self.not_after_ms, now_ms)
    }
}

/// Why certificate bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The input holds no `-----BEGIN CERTIFICATE-----` block.
    #[error("no certificate in the PEM")]
    NoCertificate,
    /// A PEM block could not be decoded (bad header, missing END line, bad base64).
    #[error("malformed PEM: {0}")]
    Pem(String),
    /// The bytes are not a DER-encoded X.509 certificate.
    #[error("malformed certificate: {0}")]
    Der(String),
    /// One certificate of a chain is bad; `index` counts certificates from 1 (the leaf).
    #[error("certificate {index}: {source}")]
    InChain {
        /// 1-based position in the chain.
        index: usize,
        /// What is wrong with it.
        source: Box<CertError>,
    },
}

/// Parses every `CERTIFICATE` block of a PEM bundle, in file order (for Let's Encrypt's
/// `fullchain.pem`: the leaf first, then the intermediates).
///
/// Text outside blocks and blocks with other labels (e.g. a `PRIVATE KEY` in a combined file)
/// are skipped; the key material is never decoded into the result. Any broken certificate fails
/// the whole chain with [`CertError::InChain`]; a bundle without certificates is
/// [`CertError::NoCertificate`].
pub fn parse_pem_chain(pem: &[u8]) -> Result<Vec<CertInfo>, CertError> {
    let mut chain = Vec::new();
    for block in Pem::iter_from_buffer(pem) {
        let index = chain.len() + 1;
        let block = block.map_err(|e| CertError::InChain {
            index,
            source: Box::new(CertError::Pem(e.to_string())),
        })?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let info = parse_der(&block.contents).map_err(|e| CertError::InChain {
            index,
            source: Box::new(e),
        })?;
        chain.push(info);
    }
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(chain)
}

/// Parses one DER-encoded X.509 certificate (e.g. the leaf of a TLS handshake).
///
/// Trailing bytes after the certificate are an error. The signature is not verified: this
/// reports what a certificate says, not whether it is trusted.
pub fn parse_der(der: &[u8]) -> Result<CertInfo, CertError> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| CertError::Der(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::Der(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )));
    }
    info_of(&cert)
}

/// Extracts the fields of [`CertInfo`] from a parsed certificate.
fn info_of(cert: &X509Certificate<'_>) -> Result<CertInfo, CertError> {
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(CertError::Der(format!("subject alternative name: {e}"))),
    };
    let validity = cert.validity();
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        names,
        not_before_ms: validity.not_before.timestamp().saturating_mul(1000),
        not_after_ms: validity.not_after.timestamp().saturating_mul(1000),
    })
}

/// A certificate a probe saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertSeen {
    /// The file it was read from (certificate-file checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Its subject.
    pub subject: String,
    /// Its issuer.
    pub issuer: String,
    /// The DNS names and addresses it is valid for.
    pub names: Vec<String>,
    /// When it expires.
    pub not_after_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair, date_time_ymd};

    /// 2025-01-01T00:00:00Z.
    const NOW_MS: i64 = 1_735_689_600_000;

    type Made = (rcgen::Certificate, CertificateParams, KeyPair);

    fn params(cn: &str, names: &[&str], after: (i32, u8, u8)) -> CertificateParams {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.not_before = date_time_ymd(2024, 12, 1);
        p.not_after = date_time_ymd(after.0, after.1, after.2);
        p
    }

    fn self_signed(cn: &str, names: &[&str], after: (i32, u8, u8)) -> Made {
        let p = params(cn, names, after);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        (cert, p, key)
    }

    #[test]
    fn days_left_floors_and_goes_negative() {
        assert_eq!(days_left(NOW_MS, NOW_MS), 0);
        assert_eq!(days_left(NOW_MS + DAY_MS - 1, NOW_MS), 0);
        assert_eq!(days_left(NOW_MS + 30 * DAY_MS, NOW_MS), 30);
        assert_eq!(days_left(NOW_MS - 1, NOW_MS), -1);
        assert_eq!(days_left(NOW_MS - DAY_MS, NOW_MS), -1);
        assert_eq!(days_left(NOW_MS - DAY_MS - 1, NOW_MS), -2);
        assert!(days_left(i64::MIN, i64::MAX) < 0);
        assert!(days_left(i64::MAX, i64::MIN) > 0);
    }

    #[test]
    fn classify_boundaries() {
        let at = |ms: i64| classify(NOW_MS + ms, NOW_MS);
        assert_eq!(at(31 * DAY_MS), CertClass::Valid);
        assert_eq!(at(31 * DAY_MS - 1), CertClass::Warning);
        assert_eq!(at(30 * DAY_MS), CertClass::Warning);
        assert_eq!(at(15 * DAY_MS), CertClass::Warning);
        assert_eq!(at(15 * DAY_MS - 1), CertClass::Critical);
        assert_eq!(at(14 * DAY_MS), CertClass::Critical);
        assert_eq!(at(0), CertClass::Critical);
        assert_eq!(at(-1), CertClass::Expired);
        assert!(CertClass::Valid < CertClass::Warning);
        assert!(CertClass::Critical < CertClass::Expired);
    }

    #[test]
    fn class_serializes_snake_case() {
        for c in [
            CertClass::Valid,
            CertClass::Warning,
            CertClass::Critical,
            CertClass::Expired,
        ] {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(c.to_string(), c.as_str());
        }
    }

    #[test]
    fn generated_certificates_classify() {
        let cases = [
            ((2025, 1, 11), 10, CertClass::Critical),
            ((2025, 1, 21), 20, CertClass::Warning),
            ((2025, 2, 10), 40, CertClass::Valid),
            ((2024, 12, 31), -1, CertClass::Expired),
        ];
        for (after, days, class) in cases {
            let (cert, _, _) =
                self_signed("example.org", &["example.org", "www.example.org"], after);
            let info = parse_der(cert.der()).unwrap();
            assert_eq!(info.days_left(NOW_MS), days, "{after:?}");
            assert_eq!(info.class(NOW_MS), class, "{after:?}");
            assert_eq!(info.subject, "CN=example.org");
            assert_eq!(info.issuer, info.subject);
            assert_eq!(info.names, ["example.org", "www.example.org"]);
            assert_eq!(info.not_before_ms, 1_733_011_200_000); // 2024-12-01
            let chain = parse_pem_chain(cert.pem().as_bytes()).unwrap();
            assert_eq!(chain, [info]);
        }
    }

    #[test]
    fn pem_chain_keeps_leaf_first_and_skips_keys() {
        let mut ca = params("Test CA", &[], (2026, 1, 1));
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = params("svc.example.org", &["svc.example.org"], (2025, 1, 21))
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let bundle = format!(
            "leaf then CA, as in fullchain.pem\n{}{}{}",
            leaf.pem(),
            leaf_key.serialize_pem(),
            ca_cert.pem()
        );
        let chain = parse_pem_chain(bundle.as_bytes()).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].subject, "CN=svc.example.org");
        assert_eq!(chain[0].issuer, "CN=Test CA");
        assert_eq!(chain[0].names, ["svc.example.org"]);
        assert_eq!(chain[0].class(NOW_MS), CertClass::Warning);
        assert_eq!(chain[1].subject, "CN=Test CA");
        assert!(chain[1].names.is_empty());
        assert_eq!(chain[1].class(NOW_MS), CertClass::Valid);
    }

    #[test]
    fn broken_second_certificate_is_named() {
        let (cert, _, _) = self_signed("a.example", &["a.example"], (2025, 2, 10));
        let bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let bundle = format!("{}{bad}", cert.pem());
        let err = parse_pem_chain(bundle.as_bytes()).unwrap_err();
        assert!(
            matches!(err, CertError::InChain { index: 2, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("certificate 2: malformed certificate"),
            "{err}"
        );

        let truncated = "-----BEGIN CERTIFICATE-----\nAAAA\n";
        let err = parse_pem_chain(truncated.as_bytes()).unwrap_err();
        assert!(
            err.to_string().starts_with("certificate 1: malformed PEM"),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(parse_pem_chain(b""), Err(CertError::NoCertificate));
        assert_eq!(
            parse_pem_chain(b"hello\nworld\n"),
            Err(CertError::NoCertificate)
        );
        assert_eq!(
            CertError::NoCertificate.to_string(),
            "no certificate in the PEM"
        );
        let (cert, _, _) = self_signed("k.example", &[], (2025, 2, 10));
        assert!(parse_pem_chain(cert.pem().replace("CERTIFICATE", "X").as_bytes()).is_err());
        assert!(matches!(parse_der(b"\x30\x03abc"), Err(CertError::Der(_))));
        let mut der = cert.der().to_vec();
        der.push(0);
        assert!(matches!(parse_der(&der), Err(CertError::Der(_))));
        der.truncate(der.len() / 2);
        assert!(matches!(parse_der(&der), Err(CertError::Der(_))));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            prop_assert!(parse_der(&bytes).is_err());
            let _ = parse_pem_chain(&bytes);
            let mut pem = b"-----BEGIN CERTIFICATE-----\n".to_vec();
            pem.extend_from_slice(&bytes);
            pem.extend_from_slice(b"\n-----END CERTIFICATE-----\n");
            prop_assert!(parse_pem_chain(&pem).is_err());
        }

        #[test]
        fn class_agrees_with_days_left(not_after in any::<i64>(), now in any::<i64>()) {
            let days = days_left(not_after, now);
            let class = classify(not_after, now);
            prop_assert_eq!(class == CertClass::Expired, not_after < now);
            prop_assert_eq!(class == CertClass::Valid, days > WARNING_DAYS);
        }
    }
}
