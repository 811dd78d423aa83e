//! Error responses: HTML page, RFC 9457 problem JSON, or one line of text.

use crate::accept::Format;
use crate::clock::utc_string;
use crate::verdict::ErrorCode;
use std::fmt::Write;

/// What an error response is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Code(ErrorCode),
    /// The ownership lookup failed and `failure_mode` is `deny`.
    Unavailable,
    /// 421: the request names another host than its TLS connection's SNI.
    Misdirected,
}

/// The status of a misdirected request (RFC 9110 §15.5.20); not
/// configurable: clients retry on a new connection only on this one.
pub const MISDIRECTED_STATUS: u16 = 421;

/// Everything a page shows.
pub struct Page<'a> {
    pub problem: Problem,
    pub host: &'a str,
    pub status: u16,
    pub ray: &'a str,
    pub now_secs: u64,
}

struct Text {
    title: &'static str,
    what: &'static str,
    visitor: &'static str,
    owner: &'static [&'static str],
    retryable: bool,
}

fn text(problem: Problem) -> Text {
    match problem {
        Problem::Code(ErrorCode::DnsResolution) => Text {
            title: ErrorCode::DnsResolution.name(),
            what: "This hostname is not served by this platform: no account owns it, and it does not point to a hostname that one does.",
            visitor: "Check the address for typing errors. If it is right, the site may not be set up yet; try again later.",
            owner: &["Add the hostname to your account, or point its DNS at a hostname your account serves."],
            retryable: false,
        },
        Problem::Code(ErrorCode::DirectIp) => Text {
            title: ErrorCode::DirectIp.name(),
            what: "The request named an IP address of this platform instead of a hostname. Sites here are reached by name only.",
            visitor: "Use the site's hostname instead of its IP address.",
            owner: &["Link to your site by its hostname, never by one of the platform's IP addresses."],
            retryable: false,
        },
        Problem::Code(ErrorCode::NotServing) => Text {
            title: ErrorCode::NotServing.name(),
            what: "The account that serves this hostname is not allowed to serve web traffic at the moment.",
            visitor: "The site is unavailable for now; try again later.",
            owner: &["Contact the platform's support to find out why the account is suspended and how to restore it."],
            retryable: false,
        },
        Problem::Code(ErrorCode::CnameCrossUser) => Text {
            title: ErrorCode::CnameCrossUser.name(),
            what: "This hostname has a CNAME record that points to a hostname served by a different account on this platform, and that account has not authorized it. Requests are refused so that one account's hostname cannot ride on another account's configuration, certificates and security settings.",
            visitor: "There is nothing you can do; the owner of the site has to fix its DNS set-up.",
            owner: &[
                "Ask the owner of the hostname your CNAME points to (usually your SaaS provider) to add this hostname as a custom hostname on their account.",
                "Check the CNAME record of this hostname and where it points.",
                "If the provider gives you a fixed IP address, replace the CNAME with an A record pointing at their origin.",
            ],
            retryable: false,
        },
        Problem::Code(ErrorCode::OriginDns) => Text {
            title: ErrorCode::OriginDns.name(),
            what: "The platform could not resolve the origin server of this hostname in DNS, or the hostname's custom-hostname validation is not complete yet.",
            visitor: "Try again in a few minutes.",
            owner: &[
                "Check that the DNS record of the origin exists and resolves.",
                "If this is a custom hostname, finish its validation on the account it points to.",
            ],
            retryable: true,
        },
        Problem::Unavailable => Text {
            title: "Ownership lookup unavailable",
            what: "The platform could not check who owns this hostname, so the request was not forwarded.",
            visitor: "Try again in a few seconds.",
            owner: &["Nothing is needed on your side: the platform's hostname lookup service is failing and is being restored."],
            retryable: true,
        },
        Problem::Misdirected => Text {
            title: "Misdirected Request",
            what: "The request was sent on a connection whose TLS name (SNI) does not match the requested host, so this connection cannot serve it.",
            visitor: "Open a new connection to the requested host and send the request again; browsers do this by themselves.",
            owner: &["Nothing is needed on your side: the client reused a connection made for another hostname."],
            retryable: true,
        },
    }
}

/// `(content-type, body)` of the page in the negotiated format.
pub fn render(page: &Page, format: Format) -> (&'static str, String) {
    match format {
        Format::Html => ("text/html; charset=UTF-8", html(page)),
        Format::Json => ("application/problem+json", json(page)),
        Format::Text => ("text/plain; charset=UTF-8", plain(page)),
    }
}

/// The short plain page for an authority refused with 400.
pub fn bad_request(reason: &str) -> String {
    format!("400 Bad Request: invalid Host header ({reason})\n")
}

fn code_label(problem: Problem) -> String {
    match problem {
        Problem::Code(c) => c.number().to_string(),
        Problem::Unavailable => "lookup_unavailable".into(),
        Problem::Misdirected => "misdirected".into(),
    }
}

fn plain(page: &Page) -> String {
    format!("error code: {}\n", code_label(page.problem))
}

fn html(page: &Page) -> String {
    let t = text(page.problem);
    let host = escape_html(page.host);
    let title_code = match page.problem {
        Problem::Code(c) => c.number().to_string(),
        Problem::Unavailable | Problem::Misdirected => page.status.to_string(),
    };
    let heading = format!("Error {title_code}: {}", t.title);
    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"robots\" content=\"noindex, nofollow\">\n\
<title>{host} | Error {title_code}</title>\n\
<style>body{{font:16px/1.5 system-ui,sans-serif;margin:0;color:#222}}main{{max-width:46rem;margin:3rem auto;padding:0 1rem}}\
h1{{font-size:1.7rem;margin-bottom:.2rem}}.meta{{color:#666;margin-top:0}}h2{{font-size:1.15rem;margin-top:2rem}}\
footer{{margin-top:2.5rem;border-top:1px solid #ddd;padding-top:.7rem;color:#666;font-size:.9rem}}</style>\n\
</head>\n<body>\n<main>\n<h1>{heading}</h1>\n<p class=\"meta\">{host} &middot; HTTP {status}</p>\n\
<h2>What happened?</h2>\n<p>{what}</p>\n<h2>What can I do?</h2>\n\
<h3>If you are visiting this site</h3>\n<p>{visitor}</p>\n<h3>If you own this site</h3>\n<ul>\n",
        status = page.status,
        what = t.what,
        visitor = t.visitor,
    );
    for step in t.owner {
        let _ = writeln!(out, "<li>{step}</li>");
    }
    let _ = write!(
        out,
        "</ul>\n<footer>\n<p>Ray ID: <code>{ray}</code> &middot; {time}</p>\n</footer>\n</main>\n</body>\n</html>\n",
        ray = escape_html(page.ray),
        time = utc_string(page.now_secs),
    );
    out
}

fn json(page: &Page) -> String {
    let t = text(page.problem);
    let (code, name) = match page.problem {
        Problem::Code(c) => (c.number().to_string(), c.name()),
        Problem::Unavailable | Problem::Misdirected => ("null".into(), t.title),
    };
    let title = match page.problem {
        Problem::Misdirected => format!("Error {}: {name}", page.status),
        _ => format!("Error {}: {name}", code_label(page.problem)),
    };
    let owner_action = matches!(page.problem, Problem::Code(_));
    format!(
        "{{\"type\":\"urn:cname-guard:error:{label}\",\"title\":{title},\"status\":{status},\"detail\":{detail},\
\"instance\":{instance},\"error_code\":{code},\"error_name\":{name},\"ray_id\":{ray},\"host\":{host},\
\"retryable\":{retryable},\"owner_action_required\":{owner_action}}}\n",
        label = code_label(page.problem),
        title = json_string(&title),
        status = page.status,
        detail = json_string(t.what),
        instance = json_string(&format!("urn:cname-guard:ray:{}", page.ray)),
        name = json_string(name),
        ray = json_string(page.ray),
        host = json_string(page.host),
        retryable = t.retryable,
    )
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(problem: Problem, host: &str) -> Page<'_> {
        Page { problem, host, status: 409, ray: "0123456789abcdef-ARN", now_secs: 1_700_000_000 }
    }

    #[test]
    fn html_1014_matches_the_seed() {
        let (ct, body) = render(&page(Problem::Code(ErrorCode::CnameCrossUser), "custom.myclientsite.com"), Format::Html);
        assert_eq!(ct, "text/html; charset=UTF-8");
        assert!(body.starts_with("<!doctype html>"));
        assert!(body.contains("<title>custom.myclientsite.com | Error 1014</title>"));
        assert!(body.contains("<h1>Error 1014: CNAME cross-user banned</h1>"));
        assert!(body.contains("custom hostname"));
        assert!(body.contains("A record"));
        assert!(body.contains("0123456789abcdef-ARN"));
        assert!(body.contains("2023-11-14 22:13:20 UTC"));
        assert!(body.trim_end().ends_with("</html>"));
    }

    #[test]
    fn every_code_has_its_heading() {
        for c in ErrorCode::ALL {
            let (_, body) = render(&page(Problem::Code(c), "h.example"), Format::Html);
            assert!(body.contains(&format!("<h1>Error {}: {}</h1>", c.number(), c.name())), "{body}");
        }
        let (_, body) = render(&Page { status: 503, ..page(Problem::Unavailable, "h.example") }, Format::Html);
        assert!(body.contains("<h1>Error 503: Ownership lookup unavailable</h1>"));
        let (_, body) = render(&Page { status: 421, ..page(Problem::Misdirected, "h.example") }, Format::Html);
        assert!(body.contains("<h1>Error 421: Misdirected Request</h1>"), "{body}");
        assert!(body.contains("<title>h.example | Error 421</title>"));
        assert!(body.contains("does not match the requested host"));
        assert!(body.contains("new connection"));
    }

    #[test]
    fn markup_is_escaped() {
        let (_, body) = render(&page(Problem::Code(ErrorCode::DnsResolution), "<img src=x onerror=alert(1)>\"'&"), Format::Html);
        assert!(!body.contains("<img"));
        assert!(body.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;"));
        let (_, body) = render(&page(Problem::Code(ErrorCode::DnsResolution), "</script>\"\n"), Format::Json);
        assert!(!body.contains("</script>"));
        assert!(body.contains(r#""host":"\u003c/script\u003e\"\u000a""#), "{body}");
    }

    #[test]
    fn json_problem() {
        let (ct, body) = render(&page(Problem::Code(ErrorCode::CnameCrossUser), "custom.myclientsite.com"), Format::Json);
        assert_eq!(ct, "application/problem+json");
        let v: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
        assert_eq!(v["status"], 409);
        assert_eq!(v["error_code"], 1014);
        assert_eq!(v["error_name"], "CNAME cross-user banned");
        assert_eq!(v["title"], "Error 1014: CNAME cross-user banned");
        assert_eq!(v["ray_id"], "0123456789abcdef-ARN");
        assert_eq!(v["host"], "custom.myclientsite.com");
        assert_eq!(v["retryable"], false);
        assert_eq!(v["owner_action_required"], true);
        for key in ["type", "detail", "instance"] {
            assert!(v[key].is_string(), "{key}");
        }
        let (_, body) = render(&Page { status: 503, ..page(Problem::Unavailable, "h") }, Format::Json);
        let v: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
        assert_eq!(v["error_code"], serde_json::Value::Null);
        assert_eq!(v["retryable"], true);
        assert_eq!(v["owner_action_required"], false);
    }

    #[test]
    fn misdirected_in_every_format() {
        let p = Page { status: MISDIRECTED_STATUS, ..page(Problem::Misdirected, "b.example") };
        let (ct, body) = render(&p, Format::Json);
        assert_eq!(ct, "application/problem+json");
        let v: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
        assert_eq!(v["status"], 421);
        assert_eq!(v["title"], "Error 421: Misdirected Request");
        assert_eq!(v["type"], "urn:cname-guard:error:misdirected");
        assert_eq!(v["error_code"], serde_json::Value::Null);
        assert_eq!(v["error_name"], "Misdirected Request");
        assert_eq!(v["host"], "b.example");
        assert_eq!(v["retryable"], true);
        assert_eq!(v["owner_action_required"], false);
        assert!(v["detail"].as_str().is_some_and(|d| d.contains("TLS name (SNI)")));
        let (ct, body) = render(&p, Format::Text);
        assert_eq!(ct, "text/plain; charset=UTF-8");
        assert_eq!(body, "error code: misdirected\n");
    }

    #[test]
    fn plain_text() {
        let (ct, body) = render(&page(Problem::Code(ErrorCode::CnameCrossUser), "h"), Format::Text);
        assert_eq!(ct, "text/plain; charset=UTF-8");
        assert_eq!(body, "error code: 1014\n");
        assert_eq!(bad_request("empty host"), "400 Bad Request: invalid Host header (empty host)\n");
    }
}
