/// Reports the advance of long work (decoding a folder, a download) without this crate knowing
/// how it is shown. `()` shows nothing.
pub trait Progress: Sync {
    /// Starts a new stage of `total` units (bytes, images), if known.
    fn start(&self, _what: &str, _total: Option<u64>) {}
    /// `done` more units finished.
    fn advance(&self, _done: u64) {}
    /// The stage is over.
    fn finish(&self) {}
}

impl Progress for () {}
