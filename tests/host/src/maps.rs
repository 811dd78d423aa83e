//! Header maps as Envoy keeps them, and the Proxy-Wasm pairs wire format.
//!
//! Wire format (ABI 0.2.1): `u32 count`, then `count` x (`u32 key_len`, `u32 value_len`),
//! then each key and value followed by a NUL byte. All integers little-endian.

/// An ordered multimap of lower-cased header names, pseudo-headers (`:authority`, `:path`...)
/// included, like Envoy's `HeaderMap`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    entries: Vec<(String, Vec<u8>)>,
}

impl HeaderMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map, lower-casing names as Envoy does.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.add(k.as_ref(), v.as_ref());
        }
        m
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// First value of `name` (Envoy's `get_header_map_value` also returns only the first).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.entries.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_slice())
    }

    /// First value of `name` as text (lossy).
    pub fn get_str(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        self.entries.iter().filter(|(k, _)| *k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned()).collect()
    }

    /// Appends a value (`addCopy`).
    pub fn add(&mut self, name: &str, value: &[u8]) {
        self.entries.push((name.to_ascii_lowercase(), value.to_vec()));
    }

    /// Replaces every value of `name` by one value, kept at the first position (`setCopy`).
    pub fn replace(&mut self, name: &str, value: &[u8]) {
        let name = name.to_ascii_lowercase();
        match self.entries.iter().position(|(k, _)| *k == name) {
            Some(i) => {
                self.entries[i].1 = value.to_vec();
                let mut j = 0;
                self.entries.retain(|(k, _)| {
                    j += 1;
                    j - 1 == i || *k != name
                });
            }
            None => self.entries.push((name, value.to_vec())),
        }
    }

    pub fn remove(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        self.entries.retain(|(k, _)| *k != name);
    }

    /// Envoy's `byteSize()`: the sum of key and value lengths.
    pub fn byte_size(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The pairs as text (lossy), in order.
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.entries.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect()
    }

    pub fn serialize(&self) -> Vec<u8> {
        serialize_pairs(self.entries.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())))
    }
}

/// Serializes pairs in the Proxy-Wasm wire format.
pub fn serialize_pairs<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Vec<u8> {
    let list: Vec<(&[u8], &[u8])> = pairs.into_iter().collect();
    let mut out = Vec::with_capacity(4 + list.iter().map(|(k, v)| 10 + k.len() + v.len()).sum::<usize>());
    out.extend_from_slice(&(list.len() as u32).to_le_bytes());
    for (k, v) in &list {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in &list {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Parses the wire format. An empty buffer is an empty map; a malformed one is an error.
pub fn deserialize_pairs(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let word = |at: usize| -> Result<usize, String> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| format!("pairs truncated at byte {at}"))
    };
    let count = word(0)?;
    if count > bytes.len() / 8 {
        return Err(format!("pairs count {count} larger than the buffer allows"));
    }
    let mut sizes = Vec::with_capacity(count);
    for i in 0..count {
        sizes.push((word(4 + i * 8)?, word(8 + i * 8)?));
    }
    let mut p = 4 + count * 8;
    let mut take = |n: usize| -> Result<Vec<u8>, String> {
        let s = bytes.get(p..p + n).ok_or("pairs data truncated")?.to_vec();
        if bytes.get(p + n) != Some(&0) {
            return Err(format!("pairs entry at byte {p} is not NUL-terminated"));
        }
        p += n + 1;
        Ok(s)
    };
    let mut out = Vec::with_capacity(count);
    for (ks, vs) in sizes {
        let k = take(ks)?;
        let v = take(vs)?;
        out.push((String::from_utf8(k).map_err(|_| "header name is not UTF-8".to_string())?, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = HeaderMap::from_pairs([(":Authority", "a.example"), ("X-A", "1"), ("x-a", "2"), ("empty", "")]);
        let back = deserialize_pairs(&m.serialize()).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(back[0], (":authority".to_string(), b"a.example".to_vec()));
        assert_eq!(m.get_all("X-A"), vec!["1", "2"]);
        assert!(deserialize_pairs(&[]).unwrap().is_empty());
        assert!(deserialize_pairs(&[1, 0, 0, 0]).is_err());
    }

    #[test]
    fn replace_keeps_one() {
        let mut m = HeaderMap::from_pairs([("a", "1"), ("b", "x"), ("a", "2")]);
        m.replace("A", b"3");
        assert_eq!(m.to_vec(), vec![("a".into(), "3".into()), ("b".into(), "x".into())]);
        m.remove("b");
        m.replace("c", b"");
        assert_eq!(m.len(), 2);
        assert_eq!(m.byte_size(), 3);
    }
}
