//! Telling URL forms apart and removing credentials from URLs before they reach a message.

use std::path::{Path, PathBuf};

/// How a source URL is reached; decides which credential applies and which hint an error gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UrlKind {
    /// A plain path or `file://`.
    Local,
    Http,
    /// `ssh://` or the scp-like `[user@]host:path`.
    Ssh,
    /// Any other scheme (`git://`, ...): libgit2 decides.
    Other,
}

pub(crate) fn kind(url: &str) -> UrlKind {
    match url.split_once("://") {
        Some((scheme, _)) => match scheme.to_ascii_lowercase().as_str() {
            "file" => UrlKind::Local,
            "http" | "https" => UrlKind::Http,
            "ssh" | "git+ssh" | "ssh+git" => UrlKind::Ssh,
            _ => UrlKind::Other,
        },
        None if is_scp_like(url) => UrlKind::Ssh,
        None => UrlKind::Local,
    }
}

/// `[user@]host:path`, as git reads it: a colon before any slash, and not an existing path.
fn is_scp_like(url: &str) -> bool {
    match (url.find(':'), url.find('/')) {
        (Some(colon), slash) => slash.is_none_or(|s| colon < s) && !Path::new(url).exists(),
        (None, _) => false,
    }
}

/// The local directory a `Local` URL names.
pub(crate) fn local_path(url: &str) -> PathBuf {
    PathBuf::from(url.strip_prefix("file://").unwrap_or(url))
}

/// `url` without credentials, safe for messages and logs: the whole user-info of `http(s)://`
/// and other schemes goes (tokens are often passed as the user name), while ssh keeps its user
/// name (`git@host:path`), which is not secret, and loses only a password.
pub fn strip_userinfo(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let Some(at) = authority.rfind('@') else {
            return url.to_string();
        };
        let (userinfo, host) = (&authority[..at], &authority[at + 1..]);
        if kind(url) == UrlKind::Ssh {
            let user = userinfo.split(':').next().unwrap_or_default();
            if user.is_empty() {
                return format!("{scheme}://{host}{tail}");
            }
            return format!("{scheme}://{user}@{host}{tail}");
        }
        return format!("{scheme}://{host}{tail}");
    }
    // scp-like: user-info is whatever precedes an `@` that comes before any `/`.
    if let Some(at) = url.find('@')
        && !url[..at].contains('/')
    {
        let (userinfo, host) = (&url[..at], &url[at + 1..]);
        let user = userinfo.split(':').next().unwrap_or_default();
        if user.is_empty() {
            return host.to_string();
        }
        return format!("{user}@{host}");
    }
    url.to_string()
}

/// The password (or, for http, the whole user-info) that `strip_userinfo` removes, so it can
/// also be scrubbed from libgit2's messages.
pub(crate) fn secret_userinfo(url: &str) -> Option<String> {
    let stripped = strip_userinfo(url);
    if stripped == url {
        return None;
    }
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let userinfo = &authority[..authority.rfind('@')?];
    let secret = match kind(url) {
        UrlKind::Ssh => userinfo.split_once(':')?.1,
        _ => userinfo,
    };
    (!secret.is_empty()).then(|| secret.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_http_userinfo_entirely() {
        let cases = [
            (
                "https://user:pass@example.com/org/repo.git",
                "https://example.com/org/repo.git",
            ),
            (
                "https://ghp_token@example.com/org/repo",
                "https://example.com/org/repo",
            ),
            (
                "http://u:p@example.com:8080/r?x=1",
                "http://example.com:8080/r?x=1",
            ),
            ("https://u:p@example.com", "https://example.com"),
            (
                "https://u:p%40ss@word@example.com/r",
                "https://example.com/r",
            ),
            (
                "https://example.com/org/repo",
                "https://example.com/org/repo",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(strip_userinfo(url), want, "{url}");
        }
    }

    #[test]
    fn keeps_ssh_user_and_drops_its_password() {
        let cases = [
            (
                "ssh://git@example.com/org/repo",
                "ssh://git@example.com/org/repo",
            ),
            (
                "ssh://git:secret@example.com:22/r",
                "ssh://git@example.com:22/r",
            ),
            ("ssh://:secret@example.com/r", "ssh://example.com/r"),
            (
                "git@example.com:org/repo.git",
                "git@example.com:org/repo.git",
            ),
            (
                "git:secret@example.com:org/repo",
                "git@example.com:org/repo",
            ),
            ("example.com:org/repo", "example.com:org/repo"),
        ];
        for (url, want) in cases {
            assert_eq!(strip_userinfo(url), want, "{url}");
        }
    }

    #[test]
    fn leaves_local_paths_alone() {
        for url in ["/tmp/a@b/repo", "file:///srv/git/a@b", "./repo", "repo"] {
            assert_eq!(strip_userinfo(url), url);
        }
    }

    #[test]
    fn names_the_secret_part_for_scrubbing() {
        assert_eq!(
            secret_userinfo("https://u:tok@example.com/r").as_deref(),
            Some("u:tok")
        );
        assert_eq!(
            secret_userinfo("ssh://git:pw@example.com/r").as_deref(),
            Some("pw")
        );
        assert_eq!(secret_userinfo("git@example.com:r"), None);
        assert_eq!(secret_userinfo("https://example.com/r"), None);
    }

    #[test]
    fn tells_url_kinds_apart() {
        assert_eq!(kind("/srv/repo"), UrlKind::Local);
        assert_eq!(kind("file:///srv/repo"), UrlKind::Local);
        assert_eq!(kind("https://example.com/r"), UrlKind::Http);
        assert_eq!(kind("ssh://git@example.com/r"), UrlKind::Ssh);
        assert_eq!(kind("git@example.com:org/r"), UrlKind::Ssh);
        assert_eq!(kind("git://example.com/r"), UrlKind::Other);
    }
}
