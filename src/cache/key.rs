//! What a stored object is found by: the primary key (scheme, Host, target) and the id, the
//! SHA-256 of that key and the Vary values (the secondary key), which also names the object's
//! file.

use aws_lc_rs::digest::{Context, SHA256};

use super::meta::Meta;
use crate::http::{RequestHead, Scheme};

/// An object's id: SHA-256 of its primary and secondary key; also its file name (in hex).
pub type Id = [u8; 32];

/// The primary key of a request: the scheme the client used, its Host (lowercased) and
/// target (nginx's default `proxy_cache_key` is `$scheme$proxy_host$request_uri`). The scheme
/// keeps an answer made for one scheme (a redirect to `https://`, links, secure cookies) from
/// being served to the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub scheme: Scheme,
    pub host: String,
    pub target: String,
}

impl Key {
    pub fn new(req: &RequestHead) -> Key {
        let host = req
            .header("host")
            .map(|h| String::from_utf8_lossy(h).trim().to_ascii_lowercase())
            .unwrap_or_default();
        Key {
            scheme: req.scheme,
            host,
            target: req.target.to_string(),
        }
    }

    /// The key as one string, which also names it in the index's Vary map.
    pub fn primary(&self) -> String {
        format!("{}://{}{}", self.scheme.as_str(), self.host, self.target)
    }

    /// The same host and target under the other scheme.
    pub(super) fn other_scheme(&self) -> Key {
        Key {
            scheme: match self.scheme {
                Scheme::Http => Scheme::Https,
                Scheme::Https => Scheme::Http,
            },
            ..self.clone()
        }
    }
}

impl Meta {
    /// The primary key the object is stored under.
    pub fn key(&self) -> Key {
        Key {
            scheme: self.scheme,
            host: self.host.clone(),
            target: self.target.clone(),
        }
    }
}

/// The id of the object for `key` with the secondary key `vary`.
pub fn variant_id(key: &Key, vary: &[(String, Option<Vec<u8>>)]) -> Id {
    let mut ctx = Context::new(&SHA256);
    let scheme = key.scheme.as_str();
    for part in [
        scheme.as_bytes(),
        key.host.as_bytes(),
        key.target.as_bytes(),
    ] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part);
    }
    for (name, value) in vary {
        ctx.update(&(name.len() as u64).to_le_bytes());
        ctx.update(name.as_bytes());
        match value {
            Some(value) => {
                ctx.update(&[1]);
                ctx.update(&(value.len() as u64).to_le_bytes());
                ctx.update(value);
            }
            None => ctx.update(&[0]),
        }
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(ctx.finish().as_ref());
    id
}

/// The id a stored object belongs under.
pub fn object_id(meta: &Meta) -> Id {
    variant_id(&meta.key(), &meta.vary)
}
