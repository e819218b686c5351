//! [`RedisGlob`]: Redis's glob rule for `PSUBSCRIBE` patterns, as a `NameMatcher`.

use ruststream::matching::NameMatcher;

/// Redis glob patterns (`PSUBSCRIBE`, `KEYS`): `*` matches any run of bytes (`.` and `:`
/// included), `?` one byte, `[abc]`, `[a-z]` and `[^a]` a byte of a set, and `\` makes
/// the next character literal.
///
/// ```
/// use ruststream::matching::NameMatcher;
/// use ruststream_redis::RedisGlob;
///
/// assert!(RedisGlob.matches("orders.*", "orders.eu.created"));
/// assert!(RedisGlob.matches("h?llo", "hello"));
/// assert!(RedisGlob.matches("h[a-e]llo", "hello"));
/// assert!(!RedisGlob.matches("h[^e]llo", "hello"));
/// assert!(RedisGlob.matches(r"a\*", "a*"));
/// assert!(!RedisGlob.matches(r"a\*", "ab"));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisGlob;

impl RedisGlob {
    /// `name` as a pattern that matches exactly it (glob characters escaped).
    pub fn escape(name: &str) -> String {
        let mut out = String::with_capacity(name.len());
        for c in name.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }
}

/// Whether `name` matches `pattern`, byte by byte, as Redis's `stringmatchlen`.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, name index).
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p + 1, n));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(pattern, p, name[n])
                        && matched
                    {
                        p = next;
                        n += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == name[n] {
                        p += 2;
                        n += 1;
                        continue;
                    }
                }
                literal => {
                    if literal == name[n] {
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((after, from)) => {
                p = after;
                n = from + 1;
                star = Some((after, from + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether `byte` is in the class opening at `pattern[open]` (`[`), and the index after
/// the class; `None` if the class is not closed.
fn class(pattern: &[u8], open: usize, byte: u8) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() && (pattern[i] != b']' || first) {
        first = false;
        let mut low = pattern[i];
        if low == b'\\' && i + 1 < pattern.len() {
            i += 1;
            low = pattern[i];
        }
        if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let high = pattern[i + 2];
            let (a, b) = if low <= high {
                (low, high)
            } else {
                (high, low)
            };
            matched |= (a..=b).contains(&byte);
            i += 3;
        } else {
            matched |= low == byte;
            i += 1;
        }
    }
    if i >= pattern.len() {
        return None;
    }
    Some((matched != negate, i + 1))
}

impl NameMatcher for RedisGlob {
    fn validate_pattern(&self, pattern: &str) -> Result<(), String> {
        if pattern.is_empty() {
            return Err(
                "the channel pattern is empty; give a channel name or a glob such as `orders.*`"
                    .into(),
            );
        }
        Ok(())
    }

    fn validate_name(&self, name: &str) -> Result<(), String> {
        if name.is_empty() {
            return Err("the name is empty; give a channel, list or stream name".into());
        }
        Ok(())
    }

    fn matches(&self, pattern: &str, name: &str) -> bool {
        glob(pattern.as_bytes(), name.as_bytes())
    }

    fn is_literal(&self, pattern: &str) -> bool {
        !pattern.contains(['*', '?', '[', '\\'])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_span_any_separator() {
        assert!(RedisGlob.matches("*", ""));
        assert!(RedisGlob.matches("a*c", "abbbc"));
        assert!(RedisGlob.matches("a*c", "ac"));
        assert!(RedisGlob.matches("news:*:eu", "news:sport:tennis:eu"));
        assert!(!RedisGlob.matches("a*c", "abd"));
        assert!(RedisGlob.matches("*b*", "abc"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(RedisGlob.matches("[abc]x", "bx"));
        assert!(!RedisGlob.matches("[abc]x", "dx"));
        assert!(RedisGlob.matches("[^abc]x", "dx"));
        assert!(RedisGlob.matches("[a-c]", "b"));
        assert!(RedisGlob.matches(r"\?", "?"));
        assert!(!RedisGlob.matches(r"\?", "a"));
        assert!(
            !RedisGlob.matches("[ab", "a"),
            "an unclosed class matches nothing"
        );
    }

    #[test]
    fn escape_makes_any_name_literal() {
        for name in ["a*b", "q?", "[x]", r"back\slash", "plain"] {
            let pattern = RedisGlob::escape(name);
            assert!(RedisGlob.matches(&pattern, name), "{pattern}");
            assert!(!RedisGlob.matches(&pattern, "other"), "{pattern}");
        }
    }
}
