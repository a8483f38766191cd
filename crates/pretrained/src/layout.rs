//! Where each tensor of a PyTorch file lies in its storage: shape, strides, offset.
//!
//! burn-store 0.21 reads every tensor as row-major from its offset and ignores the strides the
//! pickle records. Files converted from TensorFlow (the EfficientNet-Lite weights) store their
//! convolutions as permuted views, which then load scrambled without any error. This module
//! walks the pickle (data only: no global is imported or called) to find those strides, so
//! that `load` can put the values back in order.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::Path;

/// A tensor as a view of its storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    /// Where the view starts in its storage, in elements.
    pub offset: usize,
    pub storage: Option<Storage>,
}

/// A storage as the pickle refers to it: its record's key, element type and length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    pub key: String,
    /// PyTorch's storage class, `FloatStorage`, `HalfStorage`, ...
    pub kind: String,
    /// Elements in the storage, when the pickle says.
    pub numel: Option<usize>,
}

impl Storage {
    /// Bytes per element, for the storage classes PyTorch writes.
    pub fn element_size(&self) -> Option<usize> {
        Some(match self.kind.as_str() {
            "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => 8,
            "FloatStorage" | "IntStorage" => 4,
            "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
            "ByteStorage" | "CharStorage" | "BoolStorage" => 1,
            _ => return None,
        })
    }
}

impl Layout {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Elements of the storage the view reaches, from its offset on (0 for an empty tensor).
    pub fn span(&self) -> usize {
        if self.numel() == 0 {
            return 0;
        }
        1 + self
            .shape
            .iter()
            .zip(&self.strides)
            .map(|(&n, &s)| (n - 1).saturating_mul(s))
            .fold(0usize, usize::saturating_add)
    }

    pub fn is_row_major(&self) -> bool {
        let mut expected = 1;
        for (&size, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if size > 1 && stride != expected {
                return false;
            }
            expected *= size;
        }
        true
    }

    /// Row-major values of the view from the values of its storage. `None` when the storage is
    /// too short for it.
    pub fn gather<T: Copy>(&self, storage: &[T]) -> Option<Vec<T>> {
        let numel = self.numel();
        let storage = storage.get(self.offset..)?;
        if storage.len() < self.span() {
            return None;
        }
        let mut out = Vec::with_capacity(numel);
        let mut index = vec![0usize; self.shape.len()];
        for _ in 0..numel {
            let at: usize = index.iter().zip(&self.strides).map(|(i, s)| i * s).sum();
            out.push(storage[at]);
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < self.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Some(out)
    }
}

/// What a PyTorch file says of its tensors, and where their data lies.
#[derive(Debug)]
pub struct TorchFile {
    /// Every tensor's view, by dotted key.
    pub layouts: HashMap<String, Layout>,
    pub records: Records,
}

/// Where the storages' bytes are.
#[derive(Debug)]
pub enum Records {
    /// A zip archive: storage `key` is the entry `{prefix}data/{key}`.
    Zip { prefix: String },
    /// A legacy file: each storage's first byte in the file and its number of elements.
    Legacy(HashMap<String, (u64, usize)>),
}

/// The layout of every tensor in a zip (`*/data.pkl`) or legacy PyTorch file, and where the
/// data of each storage lies (checked to be inside the file).
pub fn read_torch_file(path: &Path) -> Result<TorchFile, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let length = file.metadata().map_err(|e| e.to_string())?.len();
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 4];
    reader.read_exact(&mut magic).map_err(|e| e.to_string())?;
    reader.rewind().map_err(|e| e.to_string())?;
    if &magic == b"PK\x03\x04" {
        let mut archive = zip::ZipArchive::new(reader)
            .map_err(|e| format!("not a readable zip archive ({e}); is the file complete?"))?;
        let name = archive
            .file_names()
            .find(|n| n.ends_with("data.pkl"))
            .map(str::to_string)
            .ok_or("zip file without data.pkl")?;
        let entry = archive.by_name(&name).map_err(|e| e.to_string())?;
        let layouts = walk(&mut BufReader::new(entry))?;
        let prefix = name.trim_end_matches("data.pkl").to_string();
        return Ok(TorchFile {
            layouts,
            records: Records::Zip { prefix },
        });
    }
    // Legacy: magic number, protocol version and system info come before the state dict, the
    // list of storage keys after it, then each storage as a length and its bytes.
    for _ in 0..3 {
        run(&mut reader).map_err(|e| format!("pickle: {e}"))?;
    }
    let layouts = walk(&mut reader)?;
    let keys = match run(&mut reader).map_err(|e| format!("storage list: {e}"))? {
        Value::List(keys) => keys,
        _ => return Err("no storage list after the pickle".into()),
    };
    // Each storage by key, with the name of a tensor it holds for messages.
    let kinds: HashMap<&str, (&Storage, &str)> = layouts
        .iter()
        .filter_map(|(name, layout)| Some((layout.storage.as_ref()?, name.as_str())))
        .map(|(storage, name)| (storage.key.as_str(), (storage, name)))
        .collect();
    let mut storages = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            return Err("a storage key that is not a string".into());
        };
        let (storage, tensor) = kinds
            .get(key.as_str())
            .ok_or_else(|| format!("storage {key} belongs to no tensor"))?;
        let size = storage
            .element_size()
            .ok_or_else(|| format!("`{tensor}` has a storage of unknown type {}", storage.kind))?;
        let numel = usize::try_from(uint(&mut reader, 8)?).map_err(|e| e.to_string())?;
        let start = reader.stream_position().map_err(|e| e.to_string())?;
        let bytes = (numel as u64).saturating_mul(size as u64);
        if bytes > length.saturating_sub(start) {
            return Err(format!(
                "the data of `{tensor}` needs {bytes} bytes, the file has {} left: it is cut short",
                length.saturating_sub(start)
            ));
        }
        reader
            .seek_relative(bytes as i64)
            .map_err(|e| e.to_string())?;
        storages.insert(key, (start, numel));
    }
    Ok(TorchFile {
        layouts,
        records: Records::Legacy(storages),
    })
}

/// What the walk keeps of a pickled value.
#[derive(Debug, Clone)]
enum Value {
    Int(i64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String),
    Tensor(Layout),
    Storage(Storage),
    Mark,
    Other,
}

fn walk<R: BufRead>(r: &mut R) -> Result<HashMap<String, Layout>, String> {
    let root = run(r).map_err(|e| format!("pickle: {e}"))?;
    let mut layouts = HashMap::new();
    collect(&root, "", &mut layouts);
    Ok(layouts)
}

fn collect(value: &Value, prefix: &str, out: &mut HashMap<String, Layout>) {
    match value {
        Value::Tensor(layout) => {
            out.insert(prefix.to_string(), layout.clone());
        }
        Value::Dict(items) => {
            for (key, value) in items {
                if let Value::Str(key) = key {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    collect(value, &path, out);
                }
            }
        }
        _ => {}
    }
}

fn ints(value: &Value) -> Option<Vec<usize>> {
    match value {
        Value::Tuple(items) | Value::List(items) => items
            .iter()
            .map(|v| match v {
                Value::Int(i) => usize::try_from(*i).ok(),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// `('storage', torch.FloatStorage, key, location, numel[, view])`, the persistent id
/// `torch.save` writes for each storage.
fn storage(id: Value) -> Value {
    let Value::Tuple(items) = id else {
        return Value::Other;
    };
    match items.as_slice() {
        [
            Value::Str(tag),
            Value::Global(kind),
            Value::Str(key),
            _,
            rest @ ..,
        ] if tag == "storage" => {
            let numel = match rest.first() {
                Some(Value::Int(n)) => usize::try_from(*n).ok(),
                _ => None,
            };
            let kind = kind.rsplit('.').next().unwrap_or(kind).to_string();
            Value::Storage(Storage {
                key: key.clone(),
                kind,
                numel,
            })
        }
        _ => Value::Other,
    }
}

/// What calling `global(args)` would build, as far as layouts go; nothing is executed.
fn reduce(global: &Value, args: Value) -> Value {
    let Value::Global(name) = global else {
        return Value::Other;
    };
    let Value::Tuple(args) = args else {
        return Value::Other;
    };
    match name.as_str() {
        "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" if args.len() >= 4 => {
            let storage = match &args[0] {
                Value::Storage(storage) => Some(storage.clone()),
                _ => None,
            };
            let offset = match args[1] {
                Value::Int(offset) => usize::try_from(offset).ok(),
                _ => None,
            };
            match (ints(&args[2]), ints(&args[3]), offset) {
                (Some(shape), Some(strides), Some(offset)) if shape.len() == strides.len() => {
                    Value::Tensor(Layout {
                        shape,
                        strides,
                        offset,
                        storage,
                    })
                }
                _ => Value::Other,
            }
        }
        // A Parameter wraps its tensor; _rebuild_from_type_v2(func, type, args, state).
        "torch._utils._rebuild_parameter" if !args.is_empty() => args[0].clone(),
        "torch._tensor._rebuild_from_type_v2" if args.len() >= 3 => {
            reduce(&args[0], args[2].clone())
        }
        "collections.OrderedDict" => Value::Dict(vec![]),
        _ => Value::Other,
    }
}

struct Machine {
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
}

impl Machine {
    fn pop(&mut self) -> Result<Value, String> {
        self.stack
            .pop()
            .ok_or_else(|| "stack underflow".to_string())
    }

    /// Everything above the topmost mark.
    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or("missing mark")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&mut self) -> Result<&mut Value, String> {
        self.stack
            .last_mut()
            .ok_or_else(|| "stack underflow".to_string())
    }
}

/// The next `n` bytes. A length field cannot make this allocate more than the file holds.
fn bytes<R: Read>(r: &mut R, n: usize) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    r.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    if buf.len() < n {
        return Err(format!("the file ends inside a {n}-byte field"));
    }
    Ok(buf)
}

fn uint<R: Read>(r: &mut R, n: usize) -> Result<u64, String> {
    let b = bytes(r, n)?;
    Ok(b.iter()
        .rev()
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

fn line<R: BufRead>(r: &mut R) -> Result<String, String> {
    let mut s = String::new();
    r.read_line(&mut s).map_err(|e| e.to_string())?;
    Ok(s.trim_end_matches('\n').to_string())
}

fn text(b: Vec<u8>) -> Result<Value, String> {
    String::from_utf8(b)
        .map(Value::Str)
        .map_err(|e| e.to_string())
}

/// The pickle machine over the opcodes `torch.save` emits (protocols 2–5).
fn run<R: BufRead>(r: &mut R) -> Result<Value, String> {
    let mut m = Machine {
        stack: Vec::new(),
        memo: HashMap::new(),
    };
    loop {
        let op = bytes(r, 1)?[0];
        match op {
            0x80 => drop(bytes(r, 1)?),                       // PROTO
            0x95 => drop(bytes(r, 8)?),                       // FRAME
            b'.' => return m.pop(),                           // STOP
            b'(' => m.stack.push(Value::Mark),                // MARK
            b'}' => m.stack.push(Value::Dict(vec![])),        // EMPTY_DICT
            b']' => m.stack.push(Value::List(vec![])),        // EMPTY_LIST
            b')' => m.stack.push(Value::Tuple(vec![])),       // EMPTY_TUPLE
            b'N' | 0x88 | 0x89 => m.stack.push(Value::Other), // NONE, NEWTRUE, NEWFALSE
            b't' => {
                let items = m.pop_mark()?;
                m.stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let at = m.stack.len().checked_sub(n).ok_or("stack underflow")?;
                let items = m.stack.split_off(at);
                m.stack.push(Value::Tuple(items));
            }
            b'X' => {
                let n = uint(r, 4)? as usize;
                m.stack.push(text(bytes(r, n)?)?);
            }
            0x8c => {
                let n = uint(r, 1)? as usize;
                m.stack.push(text(bytes(r, n)?)?);
            }
            0x8d => {
                let n = uint(r, 8)? as usize;
                m.stack.push(text(bytes(r, n)?)?);
            }
            b'U' | b'C' => {
                let n = uint(r, 1)? as usize;
                let b = bytes(r, n)?;
                m.stack.push(text(b).unwrap_or(Value::Other));
            }
            b'T' | b'B' => {
                let n = uint(r, 4)? as usize;
                let b = bytes(r, n)?;
                m.stack.push(text(b).unwrap_or(Value::Other));
            }
            b'J' => m
                .stack
                .push(Value::Int(i64::from(uint(r, 4)? as u32 as i32))),
            b'K' => m.stack.push(Value::Int(uint(r, 1)? as i64)),
            b'M' => m.stack.push(Value::Int(uint(r, 2)? as i64)),
            0x8a => {
                let n = uint(r, 1)? as usize;
                let b = bytes(r, n)?;
                let mut v: i64 = 0;
                for (i, &x) in b.iter().enumerate().take(8) {
                    v |= i64::from(x) << (8 * i);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                m.stack.push(Value::Int(v));
            }
            b'I' | b'L' => {
                let s = line(r)?;
                let v = s.trim_end_matches('L').parse().unwrap_or(0);
                m.stack.push(Value::Int(v));
            }
            b'G' => {
                drop(bytes(r, 8)?);
                m.stack.push(Value::Other);
            }
            b'c' => {
                let module = line(r)?;
                let name = line(r)?;
                m.stack.push(Value::Global(format!("{module}.{name}")));
            }
            0x93 => {
                let name = m.pop()?;
                let module = m.pop()?;
                let global = match (module, name) {
                    (Value::Str(a), Value::Str(b)) => Value::Global(format!("{a}.{b}")),
                    _ => Value::Other,
                };
                m.stack.push(global);
            }
            b'q' => {
                let k = uint(r, 1)? as u32;
                let v = m.top()?.clone();
                m.memo.insert(k, v);
            }
            b'r' => {
                let k = uint(r, 4)? as u32;
                let v = m.top()?.clone();
                m.memo.insert(k, v);
            }
            0x94 => {
                let k = m.memo.len() as u32;
                let v = m.top()?.clone();
                m.memo.insert(k, v);
            }
            b'h' | b'j' => {
                let k = uint(r, if op == b'h' { 1 } else { 4 })? as u32;
                let v = m.memo.get(&k).cloned().ok_or("unknown memo key")?;
                m.stack.push(v);
            }
            b'Q' => {
                let id = m.pop()?; // BINPERSID: a storage reference
                m.stack.push(storage(id));
            }
            b'R' => {
                let args = m.pop()?;
                let global = m.pop()?;
                m.stack.push(reduce(&global, args));
            }
            0x81 => {
                m.pop()?;
                m.pop()?;
                m.stack.push(Value::Other); // NEWOBJ
            }
            b'b' => drop(m.pop()?), // BUILD: the state does not change a layout
            b's' => {
                let value = m.pop()?;
                let key = m.pop()?;
                if let Value::Dict(items) = m.top()? {
                    items.push((key, value));
                }
            }
            b'u' => {
                let items = m.pop_mark()?;
                if let Value::Dict(dict) = m.top()? {
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        dict.push((k, v));
                    }
                }
            }
            b'a' => {
                let value = m.pop()?;
                if let Value::List(list) = m.top()? {
                    list.push(value);
                }
            }
            b'e' => {
                let items = m.pop_mark()?;
                if let Value::List(list) = m.top()? {
                    list.extend(items);
                }
            }
            b'0' => drop(m.pop()?),
            b'1' => drop(m.pop_mark()?),
            b'2' => {
                let v = m.top()?.clone();
                m.stack.push(v);
            }
            0x8f => m.stack.push(Value::Other), // EMPTY_SET
            0x90 => {
                m.pop_mark()?; // ADDITEMS
            }
            0x91 => {
                m.pop_mark()?;
                m.stack.push(Value::Other); // FROZENSET
            }
            other => return Err(format!("unsupported opcode 0x{other:02x}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(shape: &[usize], strides: &[usize], offset: usize) -> Layout {
        Layout {
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            offset,
            storage: None,
        }
    }

    #[test]
    fn permuted_views_gather_in_row_major_order() {
        // A 2×3 tensor stored column by column: storage [a00, a10, a01, a11, a02, a12].
        let layout = view(&[2, 3], &[1, 2], 0);
        assert!(!layout.is_row_major());
        assert_eq!(
            layout.gather(&[0, 10, 1, 11, 2, 12]).unwrap(),
            [0, 1, 2, 10, 11, 12]
        );
        assert!(view(&[2, 1, 3], &[3, 7, 1], 0).is_row_major());
        // A view with gaps reaches further than its number of values.
        let sliced = view(&[2], &[2], 1);
        assert_eq!(sliced.span(), 3);
        assert_eq!(sliced.gather(&[9, 1, 9, 2]), Some(vec![1, 2]));
        assert_eq!(
            sliced.gather(&[9, 1, 9]),
            None,
            "a storage too short for the view"
        );
    }
}
