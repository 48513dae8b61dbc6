//! Every template rendered with fixture data: escaping, the CSRF field,
//! and the card markup (`web::card`) the board's JS relies on.

use super::pages::{self, CardView};
use super::session::{Session, User};
use super::{CSS, JS, render_to_string};
use crate::domain::Scope;
use crate::domain::WorkerKind;
use crate::domain::board::{LaneRole, Who};
use crate::domain::error::WorkerRef;
use crate::domain::item::ItemKind;
use crate::store::model::{Board, ClaimView, Item, Lane, Timestamp};
use serde_json::json;

const XSS: &str = "<script>alert(1)</script>";

fn session(scope: Scope) -> Session {
    Session {
        user: User {
            id: 1,
            username: "ada".into(),
            worker_id: 7,
            worker_name: "ada".into(),
            scopes: vec![scope],
            board_id: None,
        },
        csrf: "csrf-token-value".into(),
    }
}

fn board() -> Board {
    Board {
        id: 1,
        name: "Core".into(),
        key: "CORE".into(),
        locked: false,
        claim_limit: 3,
        agent_lease_seconds: 1800,
        human_lease_seconds: 259_200,
        agents_need_ready: true,
        created_at: Timestamp(0),
        updated_at: Timestamp(0),
    }
}

fn lanes() -> Vec<Lane> {
    let roles = [
        ("Backlog", LaneRole::Backlog, None, Who::Any),
        ("Ready", LaneRole::Ready, None, Who::Any),
        ("In Progress", LaneRole::InProgress, Some(5), Who::Any),
        ("Review", LaneRole::Review, None, Who::Any),
        ("Blocked", LaneRole::Blocked, None, Who::Any),
        ("Done", LaneRole::Done, None, Who::Humans),
    ];
    roles
        .into_iter()
        .enumerate()
        .map(|(i, (name, role, wip_limit, who))| Lane {
            id: i as i64 + 1,
            board_id: 1,
            name: name.into(),
            role,
            position: i as i64,
            wip_limit,
            who,
        })
        .collect()
}

fn item(id: i64, title: &str) -> Item {
    Item {
        id,
        key: format!("CORE-{id}"),
        board_id: 1,
        lane_id: id % 6 + 1,
        status: LaneRole::Ready,
        kind: if id % 5 == 0 {
            ItemKind::Defect
        } else {
            ItemKind::Task
        },
        parent_id: None,
        title: title.into(),
        body: format!("body of {title}"),
        priority: id % 5,
        labels: vec!["api".into(), format!("l{}", id % 7)],
        agent_ready: id % 2 == 0,
        blocked_by: if id % 9 == 0 { vec![1] } else { vec![] },
        open_blockers: i64::from(id % 9 == 0),
        claim: (id % 3 == 0).then(|| ClaimView {
            worker: WorkerRef {
                id: 9,
                name: "bot-1".into(),
                kind: WorkerKind::Agent,
            },
            claimed_at: Timestamp(1_000),
            lease_expires_at: Timestamp(1_800_000),
            token: 1,
        }),
        sync: None,
        version: 3,
        created_at: Timestamp(0),
        updated_at: Timestamp(0),
    }
}

fn render(name: &str, context: &tera::Context) -> String {
    render_to_string(name, context).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_board_renders_titles_inert_and_carries_the_csrf_token() {
    let items = vec![
        item(1, XSS),
        item(3, "claimed by a bot"),
        item(5, "a defect"),
    ];
    let context = pages::board_context(
        &session(Scope::Admin),
        &board(),
        &lanes(),
        &items,
        false,
        42,
    );
    let html = render("board.html", &context);
    assert!(!html.contains(XSS), "raw script tag in the page");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"));
    assert!(html.contains(r#"<meta name="csrf-token" content="csrf-token-value">"#));
    assert!(html.contains(r#"data-last-event="42""#));
    assert!(html.contains("In Progress"));
    assert!(html.contains(r#"<span class="badge defect">defect</span>"#));
    assert!(html.contains(r#"<span class="who who-agent">agent</span> bot-1"#));
    assert!(html.contains(r#"data-lease="1800000""#));
    // The "More" menu is an empty shell the script fills when it opens;
    // the card carries what the menu needs to say.
    assert!(html.contains(r#"<div class="menu"></div>"#));
    assert!(html.contains(r#"data-ready="true""#) || html.contains(r#"data-ready="false""#));
    // Every lane heading shows its count, and WIP lanes their limit.
    assert!(html.contains("/ 5</span>"));
    assert!(!html.contains("<script>"), "no inline script at all");
}

#[test]
fn a_card_fragment_matches_the_board_markup() {
    let html = card_html(Scope::QueueWrite, &CardView::of(&item(6, "six")));
    assert!(html.starts_with("<li class=\"card kind-task held\" id=\"item-6\""));
    assert!(html.contains(r#"data-lane="1""#));
    assert!(html.contains(r#"data-holder="bot-1""#));
    // Held by someone else and not a board admin: no claim, no release.
    assert!(!html.contains(r#"data-act="release""#));
    assert!(!html.contains(r#"data-act="claim""#));
    assert!(html.contains(r#"data-ready="true""#));
}

#[test]
fn a_read_only_user_gets_no_action_buttons() {
    let html = card_html(Scope::QueueRead, &CardView::of(&item(1, "one")));
    assert!(!html.contains("data-act"));
    assert!(html.contains(r#"draggable="false""#));
}

/// One card (`web::card`) as a user with `scope` sees it.
fn card_html(scope: Scope, view: &CardView) -> String {
    let mut out = String::new();
    super::card::render(&mut out, view, &pages::MeView::of(&session(scope)));
    out
}

fn base_context(scope: Scope) -> tera::Context {
    // The board context carries me/assets/title, like every signed-in page.
    pages::board_context(&session(scope), &board(), &lanes(), &[], false, 0)
}

#[test]
fn the_item_page_escapes_everything_it_shows() {
    let mut context = base_context(Scope::QueueWrite);
    let it = item(3, XSS);
    context.insert("card", &CardView::of(&it));
    context.insert("item", &it);
    context.insert("lane", &"Ready");
    context.insert("body_html", &super::markdown::render(XSS));
    context.insert(
        "comments",
        &json!([{"author": "bot-1", "author_kind": "agent", "kind": "checkpoint", "body": XSS, "body_html": super::markdown::render(XSS), "at": "2026-11-21 10:00 UTC", "at_iso": "2026-11-21T10:00:00Z"},
                {"author": "ada", "author_kind": "human", "kind": "comment", "body": "plain", "body_html": "<p>plain</p>", "at": "x", "at_iso": "x"}]),
    );
    context.insert(
        "timeline",
        &json!([{"kind": "item.moved", "who": "bot-1", "who_kind": "agent", "at": "x", "at_iso": "x", "summary": XSS}]),
    );
    context.insert(
        "subtasks",
        &json!([{"id": 4, "key": "CORE-4", "title": XSS, "status": "ready"}]),
    );
    context.insert("blockers", &json!([]));
    context.insert("parent", &Option::<()>::None);
    context.insert("labels_text", &"api, l3");
    context.insert("blocked_by_text", &"");
    let html = render("item.html", &context);
    assert!(!html.contains(XSS));
    assert!(html.contains(r#"class="comment c-checkpoint""#));
    assert!(html.contains(r#"class="ev ev-item-moved""#));
    assert!(html.contains(r#"id="edit-form""#));
    assert!(html.contains(r#"data-version="3""#));
}

#[test]
fn admin_pages_render_with_escaped_fixture_data() {
    let mut context = base_context(Scope::Admin);
    context.insert("boards", &vec![board()]);
    let boards_html = render("boards.html", &context);
    assert!(boards_html.contains("New board"));

    context.insert("lanes", &lanes());
    context.insert("roles", &LaneRole::ALL.map(|r| r.as_str()));
    context.insert("lease_fields", &super::pages::lease_fields(&board()));
    let settings = render("settings.html", &context);
    assert!(settings.contains(r#"name="agent_lease_seconds" type="number" min="0" step="any" required data-type="duration" value="30""#));
    assert!(settings.contains(r#"<option value="86400" selected>days</option>"#));
    assert!(
        settings.contains(r#"data-api="PATCH &#x2F;api&#x2F;lanes&#x2F;3""#)
            || settings.contains("PATCH /api/lanes/3")
    );
    assert!(settings.contains("Delete lane In Progress?"));

    context.insert("event_types", &["item.created", "item.claimed"]);
    context.insert("health_json", &r#"{"1":{"last_error":"<script>"}}"#);
    let hooks = render("webhooks.html", &context);
    assert!(hooks.contains("item.claimed"));
    assert!(
        !hooks.contains("<script>"),
        "health data is escaped in its attribute"
    );

    context.insert(
        "tokens",
        &json!([{"id": 2, "name": XSS, "prefix": "th_abcdef", "worker": "bot-1", "worker_kind": "agent",
                 "scopes": "queue:write", "board": "all", "created": "x", "last_used": "never", "expires": "never", "revoked": false}]),
    );
    let tokens = render("tokens.html", &context);
    assert!(!tokens.contains(XSS));
    assert!(tokens.contains("Revoke"));

    context.insert(
        "users",
        &json!([{"id": 1, "username": "ada", "scopes": "admin", "board": "all", "created": "x", "sessions": 1, "claims": 0, "disabled": false, "is_me": true},
                {"id": 2, "username": XSS, "scopes": "queue:write", "board": "all", "created": "x", "sessions": 0, "claims": 2, "disabled": true, "is_me": false}]),
    );
    context.insert("error", &Some(XSS));
    context.insert("notice", &Option::<String>::None);
    let users = render("users.html", &context);
    assert!(
        users.contains(r#"action="/users/2/delete""#)
            || users.contains("&#x2F;users&#x2F;2&#x2F;delete")
    );
    assert!(
        !users.contains("/users/1/delete") && !users.contains("&#x2F;users&#x2F;1&#x2F;delete"),
        "no actions on yourself"
    );
    assert!(!users.contains(XSS));
    assert!(users.contains(r#"<input type="hidden" name="csrf" value="csrf-token-value">"#));

    context.insert(
        "health",
        &json!({"claimable": 4, "claimable_by_agents": 2, "live_claims": 1, "expired_24h": 3,
                "workers": [{"name": "bot-1", "kind": "agent", "held": 3, "limit": 3, "at_limit": true}],
                "lanes": [{"id": 1, "name": "In Progress", "role": "in_progress", "count": 5, "wip_limit": 5, "saturation": 100,
                           "mean_stay": "1 h 5 min", "median_stay": "42 s", "stays": 3},
                          {"id": 2, "name": "Backlog", "role": "backlog", "count": 1, "wip_limit": null, "saturation": null,
                           "mean_stay": null, "median_stay": null, "stays": 0}]}),
    );
    let health = render("health.html", &context);
    assert!(health.contains("Lease expiries, last 24 h"));
    assert!(health.contains("100%"));
}

#[test]
fn the_sign_in_setup_and_error_pages_render() {
    let mut context = tera::Context::new();
    context.insert("assets", &pages::AssetUrls::get());
    context.insert("form_token", &"tok");
    context.insert("error", &Some("Wrong username or password."));
    context.insert("next", &"/boards/1");
    context.insert("username", &XSS);
    let login = render("login.html", &context);
    assert!(login.contains(r#"name="form_token" value="tok""#));
    assert!(!login.contains(XSS));
    assert!(!login.contains("Sign out"), "no session, no header menu");
    let setup = render("setup.html", &context);
    assert!(setup.contains("Admin API token"));
    context.insert("status", &404);
    context.insert("message", &XSS);
    let error = render("error.html", &context);
    assert!(!error.contains(XSS));
    assert!(error.contains("Not found"));
}

#[test]
fn static_assets_stay_small_and_are_content_hashed() {
    let total = CSS.body.len() + JS.body.len();
    println!(
        "dashboard assets: app.js {} B + app.css {} B = {} B",
        JS.body.len(),
        CSS.body.len(),
        total
    );
    assert!(
        total < 60 * 1024,
        "JS + CSS must stay under 60 KB, is {total}"
    );
    assert_eq!(CSS.hash.len(), 12);
    assert!(pages::AssetUrls::get().js.contains(&JS.hash));
}

#[test]
fn form_bodies_decode_like_browsers_encode_them() {
    let pairs = super::parse_form(b"a=1&b=x+y%21&c=%E2%9C%93&d&e=%zz");
    assert_eq!(pairs[0], ("a".into(), "1".into()));
    assert_eq!(pairs[1], ("b".into(), "x y!".into()));
    assert_eq!(pairs[2], ("c".into(), "✓".into()));
    assert_eq!(pairs[3], ("d".into(), "".into()));
    assert_eq!(pairs[4], ("e".into(), "%zz".into()));
}

/// A 2,000-item board renders every card (its timing is measured by
/// `cargo bench -p tenant-server --bench dashboard`, not by a test).
#[test]
fn a_two_thousand_item_board_renders_every_card() {
    let items: Vec<Item> = (1..=2000)
        .map(|i| item(i, &format!("Item number {i} with a title")))
        .collect();
    let session = session(Scope::Admin);
    let (board, lanes) = (board(), lanes());
    let context = pages::board_context(&session, &board, &lanes, &items, false, 0);
    let html = render("board.html", &context);
    assert_eq!(html.matches("<li class=\"card ").count(), 2000);
}

#[test]
fn lease_lengths_show_in_the_largest_whole_unit() {
    use super::pages::DurationField;
    let field = |s| {
        let f = DurationField::of(s);
        (f.value, f.unit)
    };
    assert_eq!(field(259_200), ("3".into(), 86_400));
    assert_eq!(field(1_800), ("30".into(), 60));
    assert_eq!(field(7_200), ("2".into(), 3_600));
    assert_eq!(field(5_400), ("90".into(), 60));
    assert_eq!(field(90), ("1.5".into(), 60));
    assert_eq!(field(30), ("0.5".into(), 60));
}

#[test]
fn only_a_held_card_offers_a_release_and_only_a_queued_one_a_claim() {
    let mut done = item(7, "finished");
    done.status = LaneRole::Done;
    done.claim = None;
    let html = card_html(Scope::Admin, &CardView::of(&done));
    assert!(!html.contains("data-act=\"release\""), "{html}");
    assert!(!html.contains("data-act=\"claim\""), "{html}");
    assert!(html.contains("More actions for CORE-7"));
    let queued = item(4, "waiting");
    let html = card_html(Scope::Admin, &CardView::of(&queued));
    assert!(
        html.contains(r#"class="primary-act" data-act="claim""#),
        "{html}"
    );
    let held = item(3, "held by a bot");
    let html = card_html(Scope::Admin, &CardView::of(&held));
    assert!(
        html.contains("Force release CORE-3 (held by bot-1)"),
        "{html}"
    );
}
