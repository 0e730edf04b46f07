//! The citizen's side of a request: signed status links (`link`), what a citizen may see of a
//! ticket (`view`), and the status page (`page`). All pure: the HTTP edge (`http::portal`)
//! reads the store and the clock and hands them in.

pub mod link;
pub mod page;
pub mod view;

pub use link::{ACCESS_CODE_DIGITS, Link, LinkError, LinkKeys, LinkMaker, revoked};
pub use page::{Office, Refusal};
pub use view::{CitizenView, Facts, SentMessage, citizen_view};
