//! Writer and bounds-checked reader for big-endian, length-prefixed fields.

use super::WireError;

/// Appends fields to a byte vector. Infallible: callers enforce limits on
/// what they encode, and the reader enforces them again on decode.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Self { buf: Vec::with_capacity(n) }
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Raw bytes with no length prefix (fixed-size fields).
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Bytes with a u16 length prefix. Longer inputs are truncated at the
    /// limit; encoders validate lengths before calling.
    pub fn bytes16(&mut self, v: &[u8]) -> &mut Self {
        let n = v.len().min(u16::MAX as usize);
        self.u16(n as u16);
        self.raw(&v[..n])
    }

    /// Bytes with a u32 length prefix.
    pub fn bytes32(&mut self, v: &[u8]) -> &mut Self {
        let n = v.len().min(u32::MAX as usize);
        self.u32(n as u32);
        self.raw(&v[..n])
    }

    /// A UTF-8 string with a u16 length prefix.
    pub fn str16(&mut self, v: &str) -> &mut Self {
        self.bytes16(v.as_bytes())
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads fields from untrusted bytes. Every method checks bounds first.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated);
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A u16-length-prefixed byte string of at most `limit` bytes.
    pub fn bytes16(&mut self, what: &'static str, limit: usize) -> Result<&'a [u8], WireError> {
        let n = self.u16()? as usize;
        if n > limit {
            return Err(WireError::LimitExceeded { what, limit });
        }
        self.take(n)
    }

    /// A u32-length-prefixed byte string of at most `limit` bytes.
    pub fn bytes32(&mut self, what: &'static str, limit: usize) -> Result<&'a [u8], WireError> {
        let n = self.u32()? as usize;
        if n > limit {
            return Err(WireError::LimitExceeded { what, limit });
        }
        self.take(n)
    }

    /// A u16-length-prefixed UTF-8 string of at most `limit` bytes.
    pub fn str16(&mut self, what: &'static str, limit: usize) -> Result<String, WireError> {
        let raw = self.bytes16(what, limit)?;
        std::str::from_utf8(raw).map(str::to_owned).map_err(|_| WireError::BadUtf8(what))
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// Succeeds only if every byte was consumed.
    pub fn finish(self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(WireError::TrailingBytes(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_fields() {
        let mut w = Writer::new();
        w.u8(7).u16(513).u32(70000).u64(1 << 40).str16("héllo").bytes32(b"xyz");
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8().ok(), Some(7));
        assert_eq!(r.u16().ok(), Some(513));
        assert_eq!(r.u32().ok(), Some(70000));
        assert_eq!(r.u64().ok(), Some(1 << 40));
        assert_eq!(r.str16("s", 100).ok().as_deref(), Some("héllo"));
        assert_eq!(r.bytes32("b", 10).ok(), Some(&b"xyz"[..]));
        assert!(r.finish().is_ok());
    }

    #[test]
    fn limits_and_truncation_are_errors() {
        let mut w = Writer::new();
        w.str16("too long");
        let bytes = w.finish();
        assert_eq!(Reader::new(&bytes).str16("name", 3), Err(WireError::LimitExceeded { what: "name", limit: 3 }));
        assert_eq!(Reader::new(&bytes[..4]).str16("name", 100), Err(WireError::Truncated));
        assert_eq!(Reader::new(&[0, 1, 0xff]).str16("n", 9), Err(WireError::BadUtf8("n")));
    }

    proptest! {
        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes);
            let _ = r.u16();
            let _ = r.str16("s", 32);
            let _ = r.bytes32("b", 1 << 20);
            let _ = r.array::<5>();
            let _ = r.u64();
        }
    }
}
