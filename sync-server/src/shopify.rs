//! Importing the reward catalogue from a Shopify product export (Admin API `products.json`).
//! (Being written.)
