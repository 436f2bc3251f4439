//! The claims of a JWT, read without verifying its signature: the caller
//! decides what makes the token trustworthy (the API server or STS accepting
//! it). A leaf: `verify` and `doctor` read tokens here.

use base64::Engine;
use serde_json::Value;

/// A token that is not a JWT whose payload is JSON, and why.
#[derive(Debug, thiserror::Error)]
#[error("not a JWT: {0}")]
pub struct NotAJwt(pub String);

/// The claims of `token`.
pub fn claims(token: &str) -> Result<Value, NotAJwt> {
    let payload = token
        .trim()
        .split('.')
        .nth(1)
        .ok_or_else(|| NotAJwt("no payload part".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| NotAJwt(format!("the payload is not base64url: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| NotAJwt(format!("the payload is not JSON: {e}")))
}

/// The audiences of a JWT (`aud` is a string or an array).
pub fn audiences(claims: &Value) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_of_a_jwt() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"aud":["a","b"],"sub":"x"}"#);
        let read = claims(&format!("h.{payload}.s")).unwrap();
        assert_eq!(audiences(&read), ["a", "b"]);
        assert!(claims("garbage").is_err());
    }
}
