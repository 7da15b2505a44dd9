//! Error text shared by every module: an error and its chain of causes on one
//! line, each message once.
//!
//! The library's errors are `thiserror` enums whose message says only their
//! own part (`cloudwatch.state_file: cannot read /x`) and whose cause is their
//! `source` (the `io::Error`): print them with [`chain`], not `to_string()`.

/// The messages of an error and its sources, joined by ": ", skipping a
/// source whose message the line already holds (the AWS SDK and `io` errors
/// often repeat their cause in their own message).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let m = e.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_cause_is_printed_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x")]
        struct E(#[source] std::io::Error);
        let io = std::io::Error::new(std::io::ErrorKind::IsADirectory, "Is a directory");
        assert_eq!(super::chain(&E(io)), "cannot read x: Is a directory");
        #[derive(Debug, thiserror::Error)]
        #[error("dispatch failure: Is a directory")]
        struct R(#[source] std::io::Error);
        let io = std::io::Error::new(std::io::ErrorKind::IsADirectory, "Is a directory");
        assert_eq!(super::chain(&R(io)), "dispatch failure: Is a directory");
    }
}
