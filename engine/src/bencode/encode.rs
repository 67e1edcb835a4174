use super::value::Value;

/// Encodes a value canonically: dict keys in byte order, integers in shortest form.
pub fn encode(value: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Appends the canonical encoding of `value` to `out`.
pub fn encode_into(value: &Value<'_>, out: &mut Vec<u8>) {
    match value {
        Value::Int(i) => {
            out.push(b'i');
            out.extend_from_slice(i.to_string().as_bytes());
            out.push(b'e');
        }
        Value::Bytes(b) => bytes(b, out),
        Value::List(list) => {
            out.push(b'l');
            for item in list {
                encode_into(item, out);
            }
            out.push(b'e');
        }
        Value::Dict(dict) => {
            let mut entries: Vec<_> = dict.entries().iter().collect();
            entries.sort_unstable_by_key(|(k, _)| *k);
            out.push(b'd');
            for (key, value) in entries {
                bytes(key, out);
                encode_into(value, out);
            }
            out.push(b'e');
        }
    }
}

fn bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}
