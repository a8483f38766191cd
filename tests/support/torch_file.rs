//! Writes PyTorch zip-format checkpoints (what `torch.save` produces since 1.6) from Rust, so
//! that loader tests need neither torch nor committed weight files. The pickle is built from
//! the same opcodes torch emits: an `OrderedDict` of `_rebuild_tensor_v2` calls whose storages
//! live in `archive/data/<n>`.

use std::io::Write;

/// One float32 tensor: its values in storage order, its shape and strides.
pub struct StoredTensor {
    pub key: String,
    pub storage: Vec<f32>,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    /// The storage's length as the pickle states it, when it should lie about it.
    pub claimed_numel: Option<usize>,
}

impl StoredTensor {
    /// A row-major tensor.
    pub fn contiguous(key: &str, values: Vec<f32>, shape: Vec<usize>) -> Self {
        let mut strides = vec![1; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * shape[d + 1];
        }
        Self {
            key: key.to_string(),
            storage: values,
            shape,
            strides,
            claimed_numel: None,
        }
    }
}

/// What wraps the state dict.
pub enum Wrapping {
    Bare,
    /// `{'state_dict': ..., 'epoch': 3}`, as training scripts save.
    StateDict,
}

pub struct Pickle(Vec<u8>);

impl Pickle {
    fn new() -> Self {
        Pickle(vec![0x80, 2])
    }
    fn op(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn text(&mut self, s: &str) -> &mut Self {
        self.op(b"X")
            .op(&(s.len() as u32).to_le_bytes())
            .op(s.as_bytes())
    }
    fn int(&mut self, v: usize) -> &mut Self {
        self.op(b"J").op(&(v as i32).to_le_bytes())
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(format!("c{module}\n{name}\n").as_bytes())
    }
    fn ints(&mut self, values: &[usize]) -> &mut Self {
        self.op(b"(");
        for &v in values {
            self.int(v);
        }
        self.op(b"t")
    }
    fn ordered_dict(&mut self) -> &mut Self {
        self.global("collections", "OrderedDict").op(b")R")
    }
    fn tensor(&mut self, storage: usize, t: &StoredTensor) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").op(b"(");
        self.op(b"(")
            .text("storage")
            .global("torch", "FloatStorage")
            .text(&storage.to_string())
            .text("cpu")
            .int(t.claimed_numel.unwrap_or(t.storage.len()))
            .op(b"tQ");
        self.int(0).ints(&t.shape).ints(&t.strides).op(&[0x89]);
        self.ordered_dict().op(b"tR")
    }
}

/// The bytes of a zip-format `.pth` holding `tensors`.
pub fn zip_pth(tensors: &[StoredTensor], wrapping: Wrapping) -> Vec<u8> {
    let mut pickle = Pickle::new();
    if let Wrapping::StateDict = wrapping {
        pickle.op(b"}").text("state_dict");
    }
    pickle.ordered_dict();
    for (i, t) in tensors.iter().enumerate() {
        pickle.text(&t.key).tensor(i, t).op(b"s");
    }
    if let Wrapping::StateDict = wrapping {
        pickle.op(b"s").text("epoch").int(3).op(b"s");
    }
    pickle.op(b".");
    archive(&pickle.0, tensors)
}

/// A pickle that asks for `os.system('echo pwned')` where a state dict should be.
pub fn hostile_pth() -> Vec<u8> {
    let mut pickle = Pickle::new();
    pickle
        .global("os", "system")
        .op(b"(")
        .text("echo pwned")
        .op(b"tR.");
    archive(&pickle.0, &[])
}

fn archive(pickle: &[u8], tensors: &[StoredTensor]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(pickle).unwrap();
    for (i, t) in tensors.iter().enumerate() {
        zip.start_file(format!("archive/data/{i}"), stored).unwrap();
        let bytes: Vec<u8> = t.storage.iter().flat_map(|v| v.to_le_bytes()).collect();
        zip.write_all(&bytes).unwrap();
    }
    zip.start_file("archive/version", stored).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap().into_inner()
}
