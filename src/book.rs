//! The book (`docs/src/`, built with `mdbook build docs`), included here so that
//! `cargo test --doc` compiles and runs every Rust code block of every chapter.
//!
//! Built only for doctests: `lib.rs` declares `#[cfg(doctest)] mod book;`. Each item's docs are
//! one chapter, so a failing doctest names the chapter (`src/book.rs - book::Chapter3`) and the
//! line inside it.

/// The introduction.
#[doc = include_str!("../docs/src/introduction.md")]
pub struct Introduction;

/// Chapter 1.
#[doc = include_str!("../docs/src/processes-threads-coroutines.md")]
pub struct Chapter1;

/// Chapter 2.
#[doc = include_str!("../docs/src/generators-to-async.md")]
pub struct Chapter2;

/// Chapter 3.
#[doc = include_str!("../docs/src/anatomy.md")]
pub struct Chapter3;

/// Chapter 4.
#[doc = include_str!("../docs/src/cancellation.md")]
pub struct Chapter4;

/// Chapter 5.
#[doc = include_str!("../docs/src/io-readiness.md")]
pub struct Chapter5;

/// Chapter 6.
#[doc = include_str!("../docs/src/go-m-n.md")]
pub struct Chapter6;

/// Chapter 7.
#[doc = include_str!("../docs/src/api-map.md")]
pub struct Chapter7;

/// Chapter 9.
#[doc = include_str!("../docs/src/examples.md")]
pub struct Chapter9;

/// The reference chapter on coordination, `docs/sync.md` (the others have no Rust code).
#[doc = include_str!("../docs/sync.md")]
pub struct SyncReference;
