//! The stylesheet and the script of the web page: this project's own files
//! (`assets/`), compiled into the binary; no build step, no CDN, no fonts.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

pub async fn css() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], CSS)
}

pub async fn js() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], JS)
}
