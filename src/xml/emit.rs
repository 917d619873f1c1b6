//! Writing tokens directly in canonical form.
