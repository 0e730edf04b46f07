//! The telephone answering backup, pure: the call flow ([`flow`]) decides what a call hears
//! from its state, the digits typed and the facts the edge loaded; [`script`] is what it says,
//! independent of the provider, written as Twilio's TwiML ([`twiml`]) or Vonage's NCCO
//! ([`ncco`], its callbacks read by [`vonage`]); [`speech`] writes dates and numbers as they
//! are spoken.

pub mod flow;
pub mod ncco;
pub mod script;
pub mod speech;
pub mod twiml;
pub mod vonage;

pub use script::{CallEvent, CallState, Recording, Script, Step, Verb, speech_language};
