//! The responses the specification defines: 200 with
//! `{"requestId","timestamp"}`, errors with `errorMessage` too; always
//! `Content-Type: application/json`, a `Content-Length` and no
//! `Content-Encoding` (the specification forbids it on responses).

use super::request::RequestError;

/// The longest `errorMessage` the specification allows.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 8192;

/// An answer to Firehose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// 200: the records' counts are applied (or were, for a retry).
    Ok { request_id: String, timestamp_ms: u64 },
    /// A 4xx or 5xx with its message.
    Error { status: u16, request_id: String, timestamp_ms: u64, message: &'static str, allow_post: bool },
}

/// Appends `s` as a JSON string.
fn push_json_string(out: &mut String, s: &str) {
    // serde_json escapes exactly what JSON requires; a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned()));
}

impl Response {
    pub fn ok(request_id: &str, timestamp_ms: u64) -> Response {
        Response::Ok { request_id: request_id.to_owned(), timestamp_ms }
    }

    pub fn error(error: &RequestError, request_id: &str, timestamp_ms: u64) -> Response {
        Response::Error {
            status: error.status(),
            request_id: request_id.to_owned(),
            timestamp_ms,
            message: error.message(),
            allow_post: matches!(error, RequestError::MethodNotAllowed),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Response::Ok { .. } => 200,
            Response::Error { status, .. } => *status,
        }
    }

    /// The body, compact JSON.
    pub fn body(&self) -> Vec<u8> {
        let mut out = String::with_capacity(96);
        let (request_id, timestamp_ms, message) = match self {
            Response::Ok { request_id, timestamp_ms } => (request_id, timestamp_ms, None),
            Response::Error { request_id, timestamp_ms, message, .. } => (request_id, timestamp_ms, Some(*message)),
        };
        out.push_str("{\"requestId\":");
        push_json_string(&mut out, request_id);
        out.push_str(",\"timestamp\":");
        out.push_str(&timestamp_ms.to_string());
        if let Some(message) = message {
            out.push_str(",\"errorMessage\":");
            let end = message.floor_char_boundary(MAX_ERROR_MESSAGE_BYTES);
            push_json_string(&mut out, &message[..end]);
        }
        out.push('}');
        out.into_bytes()
    }

    /// The headers: `Content-Type`, `Content-Length` and, on 405, `Allow`.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers =
            vec![("Content-Type", "application/json".to_owned()), ("Content-Length", self.body().len().to_string())];
        if let Response::Error { allow_post: true, .. } = self {
            headers.push(("Allow", "POST".to_owned()));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_body_is_exact() {
        let r = Response::ok("ed4acda5-034f-9f42-bba1-f29aea6d7d8f", 1578090903599);
        assert_eq!(r.status(), 200);
        assert_eq!(r.body(), br#"{"requestId":"ed4acda5-034f-9f42-bba1-f29aea6d7d8f","timestamp":1578090903599}"#);
        assert_eq!(
            r.headers(),
            vec![("Content-Type", "application/json".to_owned()), ("Content-Length", "78".to_owned())]
        );
    }

    #[test]
    fn error_bodies_carry_the_message_and_escape_ids() {
        let r = Response::error(&RequestError::BodyTooLarge, "id\"1", 5);
        assert_eq!(r.status(), 413);
        assert_eq!(r.body(), br#"{"requestId":"id\"1","timestamp":5,"errorMessage":"Payload too large"}"#);
        let r = Response::error(&RequestError::MethodNotAllowed, "", 5);
        assert_eq!(r.status(), 405);
        assert!(r.headers().contains(&("Allow", "POST".to_owned())));
    }

    #[test]
    fn every_error_is_4xx_or_5xx_with_a_bounded_message() {
        use RequestError::*;
        let all = [
            MethodNotAllowed,
            MissingRequestId,
            InvalidRequestId,
            RequestIdMismatch,
            RepeatedHeader("x"),
            MissingAccessKey,
            InvalidAccessKey,
            UnsupportedContentEncoding,
            UnsupportedContentType,
            InvalidCommonAttributes,
            BodyTooLarge,
            DecompressedTooLarge,
            TooManyRecords,
            InvalidGzip,
            InvalidBody("x".into()),
            Busy,
            InWork,
            ApplyFailed,
        ];
        for e in all {
            let r = Response::error(&e, "r", 1);
            assert!((400..600).contains(&r.status()), "{e:?}");
            let v: serde_json::Value = serde_json::from_slice(&r.body()).unwrap();
            assert_eq!(v["requestId"], "r");
            assert_eq!(v["timestamp"], 1);
            assert!(!v["errorMessage"].as_str().unwrap().is_empty());
        }
    }
}
