//! Benchmarks and load generator for segl (see bench/README.md).
