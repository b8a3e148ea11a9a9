//! The bucket an image's data lives in, as users write it: `s3://BUCKET/PREFIX`.

use crate::error::{Error, Result};

/// A bucket and a key prefix inside it. The prefix has no leading or trailing `/` and may be
/// empty; every key rvmfs writes is `PREFIX/…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub bucket: String,
    pub prefix: String,
}

impl Target {
    /// Parse `s3://BUCKET[/PREFIX]`. Errors: [`Error::BadUrl`] for another scheme, an empty or
    /// invalid bucket name (S3's rule: 3-63 of `a-z 0-9 . -`), or an empty path segment.
    pub fn parse(url: &str) -> Result<Target> {
        let bad = |why| Error::BadUrl {
            url: url.to_string(),
            why,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
        if !(3..=63).contains(&bucket.len()) || !bucket.chars().all(valid) {
            return Err(bad(
                "bucket names are 3 to 63 characters of a-z, 0-9, '.' and '-'",
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        if prefix
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
            && !prefix.is_empty()
        {
            return Err(bad("empty, '.' or '..' segment in the prefix"));
        }
        Ok(Target {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The full key of `name` under the prefix: `PREFIX/name`, or `name` when it is empty.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{}", self.prefix, name)
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_prefix() {
        let t = Target::parse("s3://my-bucket/a/b/").unwrap();
        assert_eq!((t.bucket.as_str(), t.prefix.as_str()), ("my-bucket", "a/b"));
        assert_eq!(t.key("lease"), "a/b/lease");
        let t = Target::parse("s3://my-bucket").unwrap();
        assert_eq!(t.prefix, "");
        assert_eq!(t.key("lease"), "lease");
    }

    #[test]
    fn refuses_what_s3_would() {
        for url in [
            "http://b/p",
            "s3://",
            "s3://ab/p",
            "s3://Upper/p",
            "s3://b_x/p",
            "s3://bkt/a//b",
            "s3://bkt/../x",
        ] {
            assert!(
                matches!(Target::parse(url), Err(Error::BadUrl { .. })),
                "{url}"
            );
        }
    }
}
