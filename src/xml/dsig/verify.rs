//! Enveloped-signature verification.
