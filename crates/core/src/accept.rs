//! Content negotiation for error pages, by `Accept` with q-values.

/// The forms an error page can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
    Text,
}

/// Picks the form the client prefers. Ties go to the order HTML, JSON,
/// text; a missing or unparseable header, or nothing acceptable, gets HTML.
pub fn negotiate(accept: Option<&[u8]>) -> Format {
    let Some(accept) = accept.and_then(|a| std::str::from_utf8(a).ok()) else {
        return Format::Html;
    };
    // Best q (in thousandths) and specificity seen for each format.
    let mut best = [(0u16, 0u8); 3];
    for range in accept.split(',').take(64) {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
            .next()
            .map_or(Some(1000), parse_q);
        let Some(q) = q else { continue };
        for (i, format) in [Format::Html, Format::Json, Format::Text].into_iter().enumerate() {
            if let Some(spec) = matches(&media, format) {
                // A more specific range overrides a broader one (RFC 9110 12.5.1).
                if spec > best[i].1 || (spec == best[i].1 && q > best[i].0) {
                    best[i] = (q, spec);
                }
            }
        }
    }
    let mut choice = Format::Html;
    let mut top = 0;
    for (i, format) in [Format::Html, Format::Json, Format::Text].into_iter().enumerate() {
        if best[i].0 > top {
            top = best[i].0;
            choice = format;
        }
    }
    choice
}

/// How specifically `media` names `format`: 3 exact, 2 `type/*`, 1 `*/*`.
fn matches(media: &str, format: Format) -> Option<u8> {
    let exact: &[&str] = match format {
        Format::Html => &["text/html", "application/xhtml+xml"],
        Format::Json => &["application/json", "application/problem+json"],
        Format::Text => &["text/plain"],
    };
    if exact.contains(&media) {
        return Some(3);
    }
    match (media, format) {
        ("text/*", Format::Html) | ("application/*", Format::Json) => Some(2),
        ("*/*", Format::Html) => Some(1),
        _ => None,
    }
}

/// q-values: 0 to 1 with up to three decimals, as thousandths.
fn parse_q(q: &str) -> Option<u16> {
    let q = q.trim();
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    for (i, d) in frac.bytes().enumerate() {
        thousandths += u16::from(d - b'0') * [100, 10, 1][i];
    }
    (thousandths <= 1000).then_some(thousandths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(a: &str) -> Format {
        negotiate(Some(a.as_bytes()))
    }

    #[test]
    fn defaults_to_html() {
        assert_eq!(negotiate(None), Format::Html);
        assert_eq!(n(""), Format::Html);
        assert_eq!(n("*/*"), Format::Html);
        assert_eq!(n("image/png"), Format::Html);
        assert_eq!(negotiate(Some(&[0xff, 0xfe])), Format::Html);
        assert_eq!(n("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"), Format::Html);
    }

    #[test]
    fn picks_json_and_text() {
        assert_eq!(n("application/json"), Format::Json);
        assert_eq!(n("application/problem+json"), Format::Json);
        assert_eq!(n("Application/JSON; charset=utf-8"), Format::Json);
        assert_eq!(n("text/plain"), Format::Text);
        assert_eq!(n("application/*"), Format::Json);
    }

    #[test]
    fn honours_q_values() {
        assert_eq!(n("text/html;q=0.5, application/json"), Format::Json);
        assert_eq!(n("text/html;q=0.5, application/json;q=0.4"), Format::Html);
        assert_eq!(n("text/plain;q=0.9, text/html;q=0.1"), Format::Text);
        assert_eq!(n("*/*;q=0.1, text/plain"), Format::Text);
        assert_eq!(n("application/json;q=0, */*"), Format::Html);
        assert_eq!(n("text/html;q=0, application/json;q=0.001"), Format::Json);
        // A specific q=0 beats a wildcard accepting it.
        assert_eq!(n("text/html;q=0, text/*;q=1, text/plain;q=0.2"), Format::Text);
        // A bad q drops that range only.
        assert_eq!(n("application/json;q=2, text/plain"), Format::Text);
        assert_eq!(n("application/json;q=abc"), Format::Html);
    }

    #[test]
    fn equal_q_prefers_html_then_json() {
        assert_eq!(n("text/plain, application/json"), Format::Json);
        assert_eq!(n("text/plain, application/json, text/html"), Format::Html);
    }
}
