//! TCP state numbers and names (include/net/tcp_states.h), in one table
//! for everything that names a state: /proc/net/tcp's `st` column, the
//! states eBPF tools print, and the names the collector hands bpftrace, so
//! that the `sockets` and `events` tables spell them alike.

/// The kernel's TCP states as `(number, name)`. The numbers are kernel ABI
/// (include/net/tcp_states.h); the names are those /proc, `ss` and netstat
/// print: upper case, without the `TCP_` prefix.
pub const TCP_STATES: [(u8, &str); 13] = [
    (1, "ESTABLISHED"),
    (2, "SYN_SENT"),
    (3, "SYN_RECV"),
    (4, "FIN_WAIT1"),
    (5, "FIN_WAIT2"),
    (6, "TIME_WAIT"),
    (7, "CLOSE"),
    (8, "CLOSE_WAIT"),
    (9, "LAST_ACK"),
    (10, "LISTEN"),
    (11, "CLOSING"),
    (12, "NEW_SYN_RECV"),
    (13, "BOUND_INACTIVE"),
];

/// The name of the kernel's TCP state `number`, if it is one.
pub fn tcp_state_name(number: u8) -> Option<&'static str> {
    TCP_STATES
        .iter()
        .find(|(n, _)| *n == number)
        .map(|(_, name)| *name)
}

/// A state name as a tool printed it, named as in [`TCP_STATES`]: without
/// `TCP_`, upper case, and completed when the tool cut it to its column
/// width (bpftrace's tcpdrop prints `ESTABLISHE`). A name that is no state
/// is kept as printed; `None` for an empty one.
pub(crate) fn tcp_state_of_text(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("TCP_").unwrap_or(&upper);
    if TCP_STATES.iter().any(|(_, st)| *st == name) {
        return Some(name.to_owned());
    }
    let mut candidates = TCP_STATES
        .iter()
        .map(|(_, st)| st)
        .filter(|st| name.len() >= 4 && st.starts_with(name));
    match (candidates.next(), candidates.next()) {
        (Some(one), None) => Some((*one).to_owned()),
        _ => Some(s.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names() {
        assert_eq!(tcp_state_name(1), Some("ESTABLISHED"));
        assert_eq!(tcp_state_name(12), Some("NEW_SYN_RECV"));
        assert_eq!(tcp_state_name(13), Some("BOUND_INACTIVE"));
        assert_eq!(tcp_state_name(0), None);
        assert_eq!(tcp_state_name(14), None);
    }

    #[test]
    fn tcp_state_names() {
        for (printed, want) in [
            ("ESTABLISHE", "ESTABLISHED"),
            ("TCP_SYN_SENT", "SYN_SENT"),
            ("fin_wait2", "FIN_WAIT2"),
            ("CLOSE", "CLOSE"),
            ("CLOS", "CLOS"),
            ("WEIRD", "WEIRD"),
        ] {
            assert_eq!(
                tcp_state_of_text(printed).as_deref(),
                Some(want),
                "{printed}"
            );
        }
        assert_eq!(tcp_state_of_text(""), None);
    }
}
