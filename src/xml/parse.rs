//! The span-indexed XML parser.
