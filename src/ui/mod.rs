//! The terminal client (an adapter): a pure model updated by messages,
//! pure view functions drawing it with ratatui, and a thin runtime that
//! feeds it terminal and node events.

pub mod input;
pub mod keymap;
pub mod model;
pub mod runtime;
pub mod safe_text;
pub mod view;
