//! The few protobuf wire-format writers the exporters need (remote write's `WriteRequest`,
//! OTLP's `ExportMetricsServiceRequest`): messages of strings, numbers and nested messages,
//! written field by field, so no code generator or schema crate is needed for them.

/// A base-128 varint.
pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A field's key: its number and wire type (0 varint, 1 64-bit, 2 length-delimited).
fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from(field << 3 | wire));
}

/// A varint field (`uint64`, `bool`, an enum).
pub(crate) fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, 0);
    varint(out, v);
}

/// A length-delimited field (wire type 2): a string, bytes or a nested message.
pub(crate) fn bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(out, field, 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A `fixed64` (or `sfixed64`) field.
pub(crate) fn fixed64_field(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A `double` field.
pub(crate) fn double_field(out: &mut Vec<u8>, field: u32, v: f64) {
    key(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A packed `repeated fixed64` field.
pub(crate) fn packed_fixed64(out: &mut Vec<u8>, field: u32, values: &[u64]) {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    bytes_field(out, field, &data);
}

/// A packed `repeated double` field.
pub(crate) fn packed_double(out: &mut Vec<u8>, field: u32, values: &[f64]) {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    bytes_field(out, field, &data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_encode_as_the_wire_format_says() {
        let mut out = Vec::new();
        varint_field(&mut out, 1, 300);
        assert_eq!(out, [0x08, 0xac, 0x02]);
        out.clear();
        bytes_field(&mut out, 2, b"ld");
        assert_eq!(out, [0x12, 0x02, b'l', b'd']);
        out.clear();
        fixed64_field(&mut out, 3, 1);
        assert_eq!(out, [0x19, 1, 0, 0, 0, 0, 0, 0, 0]);
        out.clear();
        packed_double(&mut out, 7, &[1.0]);
        assert_eq!(out[..2], [0x3a, 0x08]);
        assert_eq!(out[2..], 1.0f64.to_le_bytes());
    }
}
