//! One card's markup, for the board page and the live-update fragment
//! (`/boards/{id}/cards/{item}`), so the two never drift.
//!
//! Written out directly rather than through tera: a 2,000-item board has
//! 2,000 cards, and the template engine's per-card include, context
//! conversion and lookups were most of the page's time (`perf record` on
//! the release server under `cargo bench -p tenant-server --bench
//! dashboard`). Every value from the item goes through [`escape_into`],
//! which escapes exactly what tera's autoescape does (`& < > " ' /`), so
//! the output is the markup the former `card.html` template produced, byte
//! for byte (checked against it when this module replaced it).

use super::pages::{CardView, MeView};
use std::fmt::Write as _;

/// Appends `text` HTML-escaped (text and attribute values alike).
pub fn escape_into(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = rest.find(['&', '<', '>', '"', '\'', '/']) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            _ => "&#x2F;",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// Appends the card of `item` as `me` sees it: actions only for writers;
/// Release on your own claim, Claim on a queued item, Force release for a
/// board admin on someone else's; the "More" menu is an empty shell that
/// `app.js` fills when it opens (the same entries on every card would
/// otherwise be sent once per card).
pub fn render(out: &mut String, item: &CardView, me: &MeView) {
    let id = item.id;
    out.push_str("<li class=\"card kind-");
    escape_into(out, &item.kind);
    if item.holder.is_some() {
        out.push_str(" held");
    }
    if item.open_blockers > 0 {
        out.push_str(" is-blocked");
    }
    let _ = write!(
        out,
        "\" id=\"item-{id}\" data-id=\"{id}\" data-version=\"{}\" data-lane=\"{}\" data-kind=\"",
        item.version, item.lane_id
    );
    escape_into(out, &item.kind);
    out.push_str("\" data-labels=\"");
    escape_into(out, &item.labels_attr);
    out.push_str("\" data-holder=\"");
    escape_into(out, item.holder.as_deref().unwrap_or(""));
    out.push_str("\" data-holder-id=\"");
    if let Some(holder) = item.holder_id {
        let _ = write!(out, "{holder}");
    }
    let _ = write!(
        out,
        "\" data-ready=\"{}\" draggable=\"{}\" tabindex=\"-1\" aria-labelledby=\"item-{id}-title\">\n\
         <div class=\"card-top\"><a class=\"key\" href=\"/items/{id}\" tabindex=\"-1\">",
        item.agent_ready, me.can_write
    );
    escape_into(out, &item.key);
    let p = item.priority;
    let _ = write!(
        out,
        "</a><span class=\"prio p{p}\" title=\"Priority {p} (0 is the most urgent)\">P{p}</span>"
    );
    match item.kind.as_str() {
        "defect" => out.push_str("<span class=\"badge defect\">defect</span>"),
        "subtask" => out.push_str("<span class=\"badge\">subtask</span>"),
        _ => {}
    }
    if item.agent_ready {
        out.push_str(
            "<span class=\"badge ready\" title=\"Agents may claim it\">agent-ready</span>",
        );
    }
    if let Some(state) = &item.sync_state {
        match (&item.sync_url, state.as_str()) {
            (Some(url), "synced") => {
                out.push_str("<a class=\"badge sync\" href=\"");
                escape_into(out, url);
                out.push_str(
                    "\" target=\"_blank\" rel=\"noopener noreferrer\" title=\"Mirrored issue\">linked #",
                );
                if let Some(n) = item.sync_number {
                    let _ = write!(out, "{n}");
                }
                out.push_str(" ↗</a>");
            }
            _ => {
                out.push_str("<span class=\"badge sync sync-");
                escape_into(out, state);
                out.push_str("\" title=\"");
                match &item.sync_error {
                    Some(error) => escape_into(out, error),
                    None => {
                        out.push_str("sync ");
                        escape_into(out, state);
                    }
                }
                out.push_str("\">");
                escape_into(out, state);
                out.push_str("</span>");
            }
        }
    }
    let _ = write!(
        out,
        "</div>\n<a class=\"title\" id=\"item-{id}-title\" href=\"/items/{id}\">"
    );
    escape_into(out, &item.title);
    out.push_str("</a>\n");
    if !item.labels.is_empty() {
        out.push_str("<ul class=\"labels\" aria-label=\"Labels\">");
        for label in &item.labels {
            out.push_str("<li>");
            escape_into(out, label);
            out.push_str("</li>");
        }
        out.push_str("</ul>");
    }
    out.push('\n');
    if item.open_blockers > 0 {
        let n = item.open_blockers;
        let s = if n == 1 { "" } else { "s" };
        let _ = write!(
            out,
            "<p class=\"blocked\" title=\"Waiting for unfinished dependencies\">blocked by {n} open item{s}</p>"
        );
    }
    out.push('\n');
    if let Some(holder) = &item.holder {
        let kind = item.holder_kind.as_deref().unwrap_or("");
        out.push_str("<p class=\"holder\"><span class=\"who who-");
        escape_into(out, kind);
        out.push_str("\">");
        escape_into(out, kind);
        out.push_str("</span> ");
        escape_into(out, holder);
        out.push_str(" <time class=\"lease\" data-lease=\"");
        if let Some(ms) = item.lease_ms {
            let _ = write!(out, "{ms}");
        }
        out.push_str("\" title=\"lease ends\"></time></p>");
    }
    out.push('\n');
    if me.can_write {
        out.push_str("<div class=\"actions\">");
        match &item.holder {
            Some(_) if item.holder_id == Some(me.worker_id) => out.push_str(
                "<button type=\"button\" class=\"primary-act\" data-act=\"release\">Release</button>",
            ),
            None if item.claimable_lane => out.push_str(
                "<button type=\"button\" class=\"primary-act\" data-act=\"claim\">Claim</button>",
            ),
            Some(holder) if me.board_admin => {
                out.push_str("<button type=\"button\" data-act=\"release\" aria-label=\"Force release ");
                escape_into(out, &item.key);
                out.push_str(" (held by ");
                escape_into(out, holder);
                out.push_str(")\">Force release</button>");
            }
            _ => {}
        }
        out.push_str("<details class=\"card-menu\"><summary aria-label=\"More actions for ");
        escape_into(out, &item.key);
        out.push_str("\">More</summary><div class=\"menu\"></div></details></div>");
    }
    out.push_str("\n<p class=\"msg\" role=\"alert\" hidden></p>\n</li>\n");
}

#[cfg(test)]
mod tests {
    use super::escape_into;

    #[test]
    fn escapes_what_tera_escapes() {
        let mut out = String::new();
        escape_into(&mut out, r#"a&b<c>d"e'f/g"#);
        assert_eq!(out, "a&amp;b&lt;c&gt;d&quot;e&#x27;f&#x2F;g");
        let mut plain = String::new();
        escape_into(&mut plain, "plain text ↗");
        assert_eq!(plain, "plain text ↗");
    }
}
