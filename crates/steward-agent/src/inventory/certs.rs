//! The certificate files on the node and when they expire, read the way the hub's prober reads
//! a `cert_file` check (the same size cap, the same PEM parser, the leaf first), so a node's
//! inventory and a check on the same file agree.
//!
//! Nothing is dropped: a file that cannot be read and a pattern that matches nothing are
//! reported as entries carrying the error, because a certificate that silently disappears from
//! the inventory looks the same as one that was removed on purpose.

use std::collections::BTreeMap;
use std::path::Path;

use steward_config::file::read_regular;
use steward_core::health::cert::{CertInfo, parse_pem_chain};
use steward_wire::nodes::Certificate;

/// The largest certificate file read: a PEM chain is a few KiB, and a glob that matched a
/// large file by mistake must not be read whole on every heartbeat.
const MAX_CERT_FILE_BYTES: u64 = 1024 * 1024;

/// Reads the leaf certificate of each file the `paths` name, sorted by path, one entry per file.
///
/// A path with a glob metacharacter (`*`, `?`, `[`) is expanded, and one matching nothing
/// yields an entry for the pattern with the error `no file matches …`; any other path is read
/// as it is, so a missing file is reported with the OS's own words. A file that cannot be read
/// or holds no valid certificate yields an entry with `error` set and `not_after_ms` 0.
pub fn read_certificates(paths: &[String]) -> Vec<Certificate> {
    let mut found: BTreeMap<String, Certificate> = BTreeMap::new();
    for pattern in paths {
        if !pattern.contains(['*', '?', '[']) {
            let certificate = read_certificate(Path::new(pattern));
            found.entry(certificate.path.clone()).or_insert(certificate);
            continue;
        }
        let entries = match glob::glob(pattern) {
            Ok(entries) => entries,
            Err(error) => {
                let entry = failed(pattern.clone(), format!("pattern `{pattern}`: {error}"));
                found.entry(pattern.clone()).or_insert(entry);
                continue;
            }
        };
        let mut matched = false;
        for entry in entries {
            matched = true;
            let certificate = match entry {
                Ok(path) => read_certificate(&path),
                Err(error) => {
                    let path = error.path().display().to_string();
                    let message = format!("{path}: cannot list: {}", error.error());
                    failed(path, message)
                }
            };
            found.entry(certificate.path.clone()).or_insert(certificate);
        }
        if !matched {
            let entry = failed(pattern.clone(), format!("no file matches {pattern}"));
            found.entry(pattern.clone()).or_insert(entry);
        }
    }
    found.into_values().collect()
}

fn read_certificate(path: &Path) -> Certificate {
    let shown = path.display().to_string();
    match read_leaf(path) {
        Ok(leaf) => Certificate {
            path: shown,
            subject: leaf.subject,
            names: leaf.names,
            not_after_ms: leaf.not_after_ms,
            error: None,
        },
        Err(message) => failed(shown, message),
    }
}

/// The first (leaf) certificate of a PEM file, or why there is none; as the prober words it.
fn read_leaf(path: &Path) -> Result<CertInfo, String> {
    // A FIFO a glob matched would otherwise block the read, and the heartbeat with it.
    let bytes = read_regular(path, MAX_CERT_FILE_BYTES).map_err(|e| e.to_string())?;
    let chain = parse_pem_chain(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    chain
        .into_iter()
        .next()
        .ok_or_else(|| format!("{}: no certificate", path.display()))
}

fn failed(path: String, error: String) -> Certificate {
    Certificate {
        path,
        subject: String::new(),
        names: Vec::new(),
        not_after_ms: 0,
        error: Some(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// A PEM certificate for `names`, its subject `CN={cn}`, expiring at `not_after`.
    fn certificate_pem(cn: &str, names: &[&str], not_after: SystemTime) -> String {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let since = not_after.duration_since(UNIX_EPOCH).unwrap();
        params.not_before = epoch + (since - Duration::from_secs(90 * 86_400));
        params.not_after = epoch + since;
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    /// A whole second, since a certificate's validity has no finer grain.
    fn in_days(days: u64) -> SystemTime {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        UNIX_EPOCH + Duration::from_secs(now.as_secs() + days * 86_400)
    }

    fn ms(time: SystemTime) -> i64 {
        i64::try_from(time.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn shown(path: &Path) -> String {
        path.display().to_string()
    }

    #[test]
    fn a_certificate_file_yields_its_leaf_subject_names_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let expiry = in_days(60);
        let leaf = certificate_pem("example.org", &["example.org", "www.example.org"], expiry);
        let issuer = certificate_pem("Test CA", &["ca.invalid"], in_days(900));
        let path = write(dir.path(), "fullchain.pem", &format!("{leaf}{issuer}"));

        let found = read_certificates(&[shown(&path)]);
        assert_eq!(
            found,
            [Certificate {
                path: shown(&path),
                subject: "CN=example.org".to_owned(),
                names: vec!["example.org".to_owned(), "www.example.org".to_owned()],
                not_after_ms: ms(expiry),
                error: None,
            }]
        );
    }

    #[test]
    fn unreadable_and_malformed_files_are_kept_with_their_error() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = write(dir.path(), "garbage.pem", "not a certificate at all\n");
        let broken = write(
            dir.path(),
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let missing = dir.path().join("missing.pem");

        let found = read_certificates(&[shown(&missing), shown(&garbage), shown(&broken)]);
        let paths: Vec<&str> = found.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, [shown(&broken), shown(&garbage), shown(&missing)]);
        for certificate in &found {
            assert_eq!(certificate.not_after_ms, 0, "{certificate:?}");
            assert!(certificate.subject.is_empty(), "{certificate:?}");
            assert!(certificate.names.is_empty(), "{certificate:?}");
        }
        let errors: Vec<&str> = found.iter().filter_map(|c| c.error.as_deref()).collect();
        assert!(errors[0].contains("malformed certificate"), "{errors:?}");
        assert!(
            errors[1].ends_with("no certificate in the PEM"),
            "{errors:?}"
        );
        assert!(errors[2].contains("cannot read"), "{errors:?}");
    }

    #[test]
    fn globs_expand_deduplicate_and_report_when_they_match_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.pem",
            &certificate_pem("a.test", &["a.test"], in_days(10)),
        );
        let b = write(
            dir.path(),
            "b.pem",
            &certificate_pem("b.test", &["b.test"], in_days(20)),
        );
        let every = format!("{}/*.pem", dir.path().display());
        let none = format!("{}/none-*.crt", dir.path().display());

        let found = read_certificates(&[every.clone(), shown(&b), none.clone(), every]);
        let paths: Vec<&str> = found.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, [shown(&a), shown(&b), none.clone()]);
        assert_eq!(found[0].names, ["a.test"]);
        assert_eq!(found[1].subject, "CN=b.test");
        assert_eq!(found[2].error, Some(format!("no file matches {none}")));
        assert_eq!(found[2].not_after_ms, 0);
    }

    #[test]
    fn a_bad_pattern_is_an_entry_too() {
        let found = read_certificates(&["/etc/ssl/[".to_owned()]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "/etc/ssl/[");
        let error = found[0].error.as_deref().unwrap_or_default();
        assert!(error.starts_with("pattern `/etc/ssl/[`"), "{error}");
        assert!(read_certificates(&[]).is_empty());
    }
}
