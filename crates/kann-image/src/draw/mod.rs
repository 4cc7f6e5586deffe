//! Drawing results on images (see the crate doc).
