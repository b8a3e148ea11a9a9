//! The AWS shared-credentials file (`~/.aws/credentials` format, read with `rust-ini`): one
//! `[profile]` section with `aws_access_key_id`, `aws_secret_access_key` and optionally
//! `aws_session_token`.

use crate::error::{Error, Result};
use std::path::Path;

/// The keys of one profile.
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// Read `profile` from the credentials file at `path`. Errors: [`Error::Config`] when the file
/// is unreadable, not INI, or the profile lacks a key.
pub fn read(path: &Path, profile: &str) -> Result<Keys> {
    let bad = |why: String| Error::Config(format!("credentials file {}: {why}", path.display()));
    let ini = ini::Ini::load_from_file(path).map_err(|e| bad(e.to_string()))?;
    let sec = ini
        .section(Some(profile))
        .ok_or_else(|| bad(format!("no [{profile}] profile")))?;
    let get = |k: &str| {
        sec.get(k)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    Ok(Keys {
        access_key_id: get("aws_access_key_id")
            .ok_or_else(|| bad(format!("[{profile}] has no aws_access_key_id")))?,
        secret_access_key: get("aws_secret_access_key")
            .ok_or_else(|| bad(format!("[{profile}] has no aws_secret_access_key")))?,
        session_token: get("aws_session_token"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_profile_and_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("credentials");
        std::fs::write(
            &p,
            "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n[half]\naws_access_key_id = X\n",
        )
        .unwrap();
        let k = read(&p, "default").unwrap();
        assert_eq!(
            (k.access_key_id.as_str(), k.secret_access_key.as_str()),
            ("AK", "SK")
        );
        assert!(k.session_token.is_none());
        let e = read(&p, "half").err().unwrap().to_string();
        assert!(e.contains("aws_secret_access_key"), "{e}");
        let e = read(&p, "nope").err().unwrap().to_string();
        assert!(e.contains("no [nope] profile"), "{e}");
        let e = read(&dir.path().join("absent"), "default")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("absent"), "{e}");
    }
}
