//! Opaque paging cursors: `base64url("<tag>:<field>:<field>...")`, one format and one error
//! (400 `invalid_cursor`) for every list that pages (the sync pull, the coin history). The tag
//! names the list and the format's version, so a cursor of one list is refused by another.
//! Cursors are opaque to clients, not secret: what they may reach is decided by the query.

use std::fmt::Display;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{DomainError, ErrorKind};

/// 400 `invalid_cursor`: the text is not a cursor this server gave out for this list and
/// account.
pub fn invalid() -> DomainError {
    DomainError::new(
        ErrorKind::BadRequest,
        "invalid_cursor",
        "the cursor is not one this server gave out for this list and account",
    )
}

/// The cursor of list `tag` at the position `fields`.
pub fn encode(tag: &str, fields: &[&dyn Display]) -> String {
    let mut text = tag.to_owned();
    for field in fields {
        text.push(':');
        text.push_str(&field.to_string());
    }
    URL_SAFE_NO_PAD.encode(text)
}

/// The `N` fields of a cursor of list `tag`, each parsed; anything else is [`invalid`].
pub fn decode<T: std::str::FromStr, const N: usize>(
    text: &str,
    tag: &str,
) -> Result<[T; N], DomainError> {
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split(':');
    if parts.next() != Some(tag) {
        return Err(invalid());
    }
    let fields: Vec<T> = parts
        .map(|part| part.parse().map_err(|_| invalid()))
        .collect::<Result<_, _>>()?;
    fields.try_into().map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_and_other_lists_or_shapes_are_refused() {
        let text = encode("t1", &[&7_i64, &-1_i64]);
        assert_eq!(decode::<i64, 2>(&text, "t1").unwrap(), [7, -1]);
        for (bad, tag) in [
            (text.as_str(), "t2"),
            ("not base64!", "t1"),
            ("", "t1"),
            (&encode("t1", &[&7_i64]), "t1"),
            (&encode("t1", &[&7_i64, &"x"]), "t1"),
            (&encode("t1", &[&1_i64, &2_i64, &3_i64]), "t1"),
        ] {
            let err = decode::<i64, 2>(bad, tag).unwrap_err();
            assert_eq!(err.code(), "invalid_cursor", "{bad:?}");
        }
    }
}
