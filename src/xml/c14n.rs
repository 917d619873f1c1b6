//! Exclusive and inclusive XML canonicalization.
