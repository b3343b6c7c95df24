//! Operator-facing wording for errors whose own `Display` leaks Rust `Debug` output.
//!
//! actix-http's `PayloadError::Incomplete` prints its inner `Option<io::Error>` with `{:?}`
//! (`payload reached EOF before completing: Some(Custom { kind: InvalidInput, … })`); the
//! flux handlers, the Graphite proxy and Mirage's Graphite fetch read bodies through it, so
//! their messages to clients and logs go through [`payload_error`] instead. Pure: no I/O.

use actix_web::error::PayloadError;

/// One sentence (without a final period) saying why a request or response body could not be
/// read.
pub fn payload_error(err: &PayloadError) -> String {
    match err {
        PayloadError::Incomplete(Some(io)) => {
            format!("the connection ended before the body was complete ({io})")
        }
        PayloadError::Incomplete(None) => {
            "the connection ended before the body was complete".to_string()
        }
        PayloadError::EncodingCorrupted => {
            "the body's Content-Encoding could not be decoded".to_string()
        }
        PayloadError::Overflow => "the body is larger than allowed".to_string(),
        PayloadError::UnknownLength => "the body's length is unknown".to_string(),
        PayloadError::Io(io) => format!("reading the body failed ({io})"),
        other => format!("reading the body failed ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_debug_output_in_payload_errors() {
        let io = std::io::Error::new(std::io::ErrorKind::InvalidInput, "stream closed early");
        let text = payload_error(&PayloadError::Incomplete(Some(io)));
        assert_eq!(
            text,
            "the connection ended before the body was complete (stream closed early)"
        );
        for err in [
            PayloadError::Incomplete(None),
            PayloadError::EncodingCorrupted,
            PayloadError::Overflow,
            PayloadError::UnknownLength,
            PayloadError::Io(std::io::Error::other("reset")),
        ] {
            let text = payload_error(&err);
            assert!(
                !text.contains("Some(") && !text.contains("Custom {") && !text.contains("kind:"),
                "{text}"
            );
        }
    }
}
