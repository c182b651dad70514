//! The Standard Webhooks signing key (https://www.standardwebhooks.com/) as configured:
//! `whsec_<base64>` or plain base64, at least 16 bytes. Decoded here, at config time, so a bad
//! key is a config error; `notify::signing` signs with it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::fmt;

/// The signing key's bytes. Debug and Display never show them.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// The key's bytes, for the HMAC.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// `whsec_<base64>` (the spec's form) or plain base64.
pub fn decode_secret(text: &str) -> Result<SigningKey, String> {
    let b64 = text.strip_prefix("whsec_").unwrap_or(text);
    let key = STANDARD.decode(b64).map_err(|_| {
        "signing secret must be base64, optionally prefixed with whsec_".to_string()
    })?;
    if key.len() < 16 {
        return Err("signing secret is shorter than 16 bytes".into());
    }
    Ok(SigningKey(key))
}
