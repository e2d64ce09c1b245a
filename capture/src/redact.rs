//! Masking of secrets in command lines before they leave the node.
//!
//! A value is masked when it belongs to a flag or variable whose name says
//! it is a secret (`--password=x`, `--token x`, `API_KEY=x`), or when it is
//! the password of a URL (`postgres://user:pw@host`). What is masked
//! becomes `***`; the name stays, so the reader still sees what was set.

const MASK: &str = "***";

/// Words that make a flag or variable name a secret's name.
const SECRET_WORDS: &[&str] = &[
    "pass",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "auth",
    "credential",
    "private_key",
    "private-key",
    "privatekey",
    "access_key",
    "access-key",
    "session",
];

fn is_secret_name(name: &str) -> bool {
    let n = name.trim_start_matches('-').to_ascii_lowercase();
    !n.is_empty() && SECRET_WORDS.iter().any(|w| n.contains(w))
}

/// Masks `user:password@` in URLs inside `arg`.
fn mask_url_password(arg: &str) -> String {
    let Some(scheme) = arg.find("://") else {
        return arg.to_owned();
    };
    let rest = &arg[scheme + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:{MASK}{}",
            &arg[..scheme + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => arg.to_owned(),
    }
}

/// The command line with secret values masked.
pub fn redact_cmdline(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut mask_next = false;
    for arg in args {
        if mask_next {
            mask_next = false;
            if !arg.starts_with('-') {
                out.push(MASK.to_owned());
                continue;
            }
        }
        if let Some((name, _)) = arg.split_once('=')
            && is_secret_name(name)
            && !name.contains("://")
        {
            out.push(format!("{name}={MASK}"));
            continue;
        }
        if arg.starts_with('-') && is_secret_name(arg) {
            mask_next = true;
        }
        out.push(mask_url_password(arg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secret_values_keeps_the_rest() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["nginx", "-V"], &["nginx", "-V"]),
            (
                &["app", "--password=hunter2", "--port=80"],
                &["app", "--password=***", "--port=80"],
            ),
            (
                &["app", "--token", "abc", "--verbose"],
                &["app", "--token", "***", "--verbose"],
            ),
            (
                &["app", "--auth-file", "--x"],
                &["app", "--auth-file", "--x"],
            ),
            (
                &["env", "AWS_SECRET_ACCESS_KEY=xyz", "PATH=/bin"],
                &["env", "AWS_SECRET_ACCESS_KEY=***", "PATH=/bin"],
            ),
            (
                &["psql", "postgres://app:pw@db:5432/x"],
                &["psql", "postgres://app:***@db:5432/x"],
            ),
            (
                &["curl", "http://example/a?b=c"],
                &["curl", "http://example/a?b=c"],
            ),
        ];
        for (input, want) in cases {
            let input: Vec<String> = input.iter().map(|s| s.to_string()).collect();
            assert_eq!(redact_cmdline(&input), *want, "{input:?}");
        }
    }
}
