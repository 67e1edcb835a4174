//! The native API (`/ccbt/v1/`) seen from both ends: its JSON shapes ([`wire`]) and a
//! small blocking client ([`client`]) that `remote --url` and `top` use.

pub mod client;
pub mod wire;
