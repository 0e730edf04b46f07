//! The console's reads: the ticket search (indexed, a page at a time) and everything the ticket
//! page shows.

use super::Desk;

impl Desk<'_> {}
