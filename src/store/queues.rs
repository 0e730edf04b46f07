//! The work queues that wait for a person, and the office's actions on them: each action
//! checks the row is still in its queue, changes it and writes its audit record in one
//! transaction.

use super::Queues;

impl Queues<'_> {}
