//! The page shell: head, skip link, navigation, sign-out form; and the
//! small renderers every page shares (times, condition badges).

use axum::response::{Html, IntoResponse, Response};
use jiff::Timestamp;
use maud::{DOCTYPE, Markup, html};

use super::Session;

/// Which navigation entry is the current page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Fleet,
    Rotations,
    Controller,
    None,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · flotilla" }
            link rel="stylesheet" href="/ui/assets/app.css";
            script src="/ui/assets/app.js" defer {}
        }
    }
}

/// A page for a signed-in operator.
pub fn page(session: &Session, nav: Nav, title: &str, body: Markup) -> Response {
    let item = |n: Nav, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(nav == n).then_some("page")] { (label) } }
        }
    };
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body {
                    a.skip href="#main" { "Skip to content" }
                    header.top {
                        nav aria-label="Main" {
                            span.brand { "flotilla" }
                            ul {
                                (item(Nav::Fleet, "/ui/", "Fleet"))
                                (item(Nav::Rotations, "/ui/rotations", "Rotations"))
                                (item(Nav::Controller, "/ui/controller", "Controller"))
                            }
                        }
                        form.signout method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            span.who { (session.actor.label()) }
                            button type="submit" { "Sign out" }
                        }
                    }
                    main #main tabindex="-1" { (body) }
                }
            }
        }
        .into_string(),
    )
    .into_response()
}

/// A page without navigation (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body { main #main.narrow { (body) } }
            }
        }
        .into_string(),
    )
}

/// A time as `2026-01-01 12:00:00Z` with how long ago or ahead it is.
pub fn time(t: Option<Timestamp>, now: Timestamp) -> Markup {
    match t {
        None => html! { span.muted { "–" } },
        Some(t) => html! {
            time datetime=(t.to_string()) title=(t.to_string()) {
                (relative(t, now))
            }
        },
    }
}

/// `in 5m`, `3h ago`, `now`.
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let secs = t.as_second() - now.as_second();
    let a = secs.unsigned_abs();
    let span = match a {
        0..=4 => return "now".to_string(),
        5..=119 => format!("{a}s"),
        120..=7199 => format!("{}m", a / 60),
        7200..=172_799 => format!("{}h", a / 3600),
        _ => format!("{}d", a / 86_400),
    };
    if secs > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A condition status as a badge (`True`, `False`, `Unknown`, `–`).
pub fn badge(status: &str) -> Markup {
    let class = match status {
        "True" => "badge ok",
        "False" => "badge bad",
        "-" | "" => "badge none",
        _ => "badge unknown",
    };
    let text = if status == "-" || status.is_empty() {
        "–"
    } else {
        status
    };
    html! { span class=(class) { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(relative(at("2026-01-01T12:00:02Z"), now), "now");
        assert_eq!(relative(at("2026-01-01T12:00:30Z"), now), "in 30s");
        assert_eq!(relative(at("2026-01-01T11:55:00Z"), now), "5m ago");
        assert_eq!(relative(at("2026-01-01T15:00:00Z"), now), "in 3h");
        assert_eq!(relative(at("2025-12-25T12:00:00Z"), now), "7d ago");
    }
}
