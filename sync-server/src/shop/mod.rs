//! Spending coins: the reward catalogue, orders (a two-phase hold of coins and stock, with
//! the order workflow as plain data) and importing the catalogue from a Shopify export.

pub mod catalogue;
pub mod orders;
pub mod shopify;
