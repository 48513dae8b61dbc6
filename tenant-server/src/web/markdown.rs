//! Markdown in item bodies and comments (issue 14), rendered safely.
//!
//! Two layers, so one mistake is not enough for a script to run:
//! 1. pulldown-cmark parses CommonMark (plus tables and strikethrough);
//!    raw HTML in the source is turned into text, so `<b>` shows as `<b>`;
//!    images become plain links (no remote image loads, no tracking
//!    pixels: the CSP would block them anyway); headings are pushed down
//!    two levels so a body never outranks the page's own headings;
//! 2. ammonia sanitises the HTML against a short allowlist of tags and
//!    attributes, with links limited to http, https and mailto (and
//!    relative ones), `rel="nofollow noopener noreferrer"` added.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

static SANITIZER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut builder = ammonia::Builder::empty();
    builder
        .tags(HashSet::from([
            "p",
            "br",
            "hr",
            "strong",
            "em",
            "del",
            "code",
            "pre",
            "blockquote",
            "ul",
            "ol",
            "li",
            "a",
            "h3",
            "h4",
            "h5",
            "h6",
            "table",
            "thead",
            "tbody",
            "tr",
            "th",
            "td",
        ]))
        .tag_attributes(HashMap::from([
            ("a", HashSet::from(["href", "title"])),
            ("ol", HashSet::from(["start"])),
        ]))
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .url_relative(ammonia::UrlRelative::PassThrough)
        .link_rel(Some("nofollow noopener noreferrer"))
        .strip_comments(true);
    builder
});

fn demote(level: HeadingLevel) -> HeadingLevel {
    match level {
        HeadingLevel::H1 => HeadingLevel::H3,
        HeadingLevel::H2 => HeadingLevel::H4,
        HeadingLevel::H3 => HeadingLevel::H5,
        _ => HeadingLevel::H6,
    }
}

/// Markdown `source` as sanitised HTML, safe to insert into a page.
pub fn render(source: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let events = Parser::new_ext(source, options).map(|event| match event {
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }),
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        Event::Start(Tag::Heading {
            level,
            id,
            classes,
            attrs,
        }) => Event::Start(Tag::Heading {
            level: demote(level),
            id,
            classes,
            attrs,
        }),
        Event::End(TagEnd::Heading(level)) => Event::End(TagEnd::Heading(demote(level))),
        other => other,
    });
    let mut html = String::with_capacity(source.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    SANITIZER.clean(&html).to_string()
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn ordinary_markdown_renders() {
        let html =
            render("# Plan\n\n**bold** and `code`\n\n- a\n- b\n\n[docs](https://example.com/x)");
        assert!(html.contains("<h3>Plan</h3>"), "{html}");
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("<code>code</code>"));
        assert!(html.contains("<li>a</li>"));
        assert!(html.contains(
            r#"<a href="https://example.com/x" rel="nofollow noopener noreferrer">docs</a>"#
        ));
    }

    #[test]
    fn script_links_lose_their_target() {
        for source in [
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](&#106;avascript:alert(1))",
            "[x](vbscript:msgbox(1))",
            "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
            "<javascript:alert(1)>",
            "[x]: javascript:alert(1)\n\n[x]",
        ] {
            // The text may still read "javascript:…"; no link may go there.
            let html = render(source).to_lowercase();
            assert!(!html.contains("href=\"javascript"), "{source} -> {html}");
            assert!(!html.contains("href=\"vbscript"), "{source} -> {html}");
            assert!(!html.contains("href=\"data:"), "{source} -> {html}");
            assert!(!html.contains("href=\"&#"), "{source} -> {html}");
        }
    }

    #[test]
    fn raw_html_shows_as_text() {
        let html = render(
            "<script>alert(1)</script>\n\nhi <img src=x onerror=alert(1)> <a href=\"javascript:x\">y</a>\n\n<iframe src=//evil></iframe>",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<iframe"), "{html}");
        assert!(!html.contains("<a href=\"javascript"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
    }

    #[test]
    fn images_become_links_and_load_nothing() {
        let html = render("![a cat](https://tracker.example/pixel.gif)");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains(r#"href="https://tracker.example/pixel.gif""#),
            "{html}"
        );
        assert!(html.contains(">a cat</a>"), "{html}");
        let html = render("![x](javascript:alert(1))");
        assert!(!html.contains("javascript"), "{html}");
    }
}
