//! Decoding images and preparing them into input frames (see the crate doc).
