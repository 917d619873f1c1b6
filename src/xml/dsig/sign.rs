//! Enveloped-signature creation over canonical bytes, signed by the HSM.
