use super::*;
use proptest::prelude::*;

fn ok(input: &[u8]) -> Value<'_> {
    decode(input, &Limits::default()).unwrap()
}

fn err(input: &[u8]) -> DecodeError {
    decode(input, &Limits::default()).unwrap_err()
}

#[test]
fn decodes_every_kind() {
    assert_eq!(ok(b"i42e"), Value::Int(42));
    assert_eq!(ok(b"i-7e"), Value::Int(-7));
    assert_eq!(ok(b"i0e"), Value::Int(0));
    assert_eq!(ok(b"4:spam"), Value::Bytes(b"spam"));
    assert_eq!(ok(b"0:"), Value::Bytes(b""));
    assert_eq!(
        ok(b"l4:spami1ee"),
        Value::List(vec![Value::Bytes(b"spam"), Value::Int(1)])
    );
    let d = ok(b"d3:cow3:moo4:spaml1:a1:bee");
    let d = d.as_dict().unwrap();
    assert_eq!(d.get(b"cow"), Some(&Value::Bytes(b"moo")));
    assert_eq!(d.raw(), Some(&b"d3:cow3:moo4:spaml1:a1:bee"[..]));
}

#[test]
fn raw_span_is_byte_exact_even_when_not_canonical() {
    // Unsorted keys: re-encoding would reorder them, the raw span must not.
    let input = b"d4:infod1:bi1e1:ai2eee";
    let top = ok(input);
    let info = top
        .as_dict()
        .unwrap()
        .get(b"info")
        .unwrap()
        .as_dict()
        .unwrap();
    assert_eq!(info.raw(), Some(&b"d1:bi1e1:ai2ee"[..]));
    assert_ne!(encode(&Value::Dict(info.clone())), info.raw().unwrap());
}

#[test]
fn rejects_non_canonical_numbers() {
    for bad in [&b"i-0e"[..], b"i03e", b"ie", b"i-e", b"i1.5e", b"i+1e"] {
        assert!(
            matches!(err(bad), DecodeError::InvalidInteger { offset: 0 }),
            "{bad:?}"
        );
    }
    assert!(matches!(
        err(b"i9223372036854775808e"),
        DecodeError::IntegerOverflow { .. }
    ));
    assert_eq!(ok(b"i-9223372036854775808e"), Value::Int(i64::MIN));
    assert!(matches!(err(b"03:abc"), DecodeError::InvalidLength { .. }));
    assert!(matches!(
        err(b"99999999999999999999999:a"),
        DecodeError::InvalidLength { .. }
    ));
}

#[test]
fn each_limit_has_its_own_error() {
    let bomb = [vec![b'l'; 100_000], vec![b'e'; 100_000]].concat();
    assert!(matches!(
        err(&bomb),
        DecodeError::DepthExceeded { max: 64, .. }
    ));

    let limits = Limits {
        string_len_max: 3,
        ..Limits::default()
    };
    assert!(matches!(
        decode(b"4:spam", &limits),
        Err(DecodeError::StringTooLong { len: 4, max: 3, .. })
    ));
    let limits = Limits {
        input_len_max: 5,
        ..Limits::default()
    };
    assert!(matches!(
        decode(b"4:spam", &limits),
        Err(DecodeError::InputTooLarge { len: 6, max: 5 })
    ));
    let limits = Limits {
        items_max: 3,
        ..Limits::default()
    };
    assert!(matches!(
        decode(b"li1ei2ei3ee", &limits),
        Err(DecodeError::TooManyItems { max: 3 })
    ));
    // A huge declared length is refused before anything is read or allocated.
    assert!(matches!(
        err(b"4000000000:x"),
        DecodeError::StringTooLong {
            len: 4_000_000_000,
            ..
        }
    ));
}

#[test]
fn rejects_structural_errors() {
    assert!(matches!(err(b""), DecodeError::UnexpectedEof { offset: 0 }));
    assert!(matches!(err(b"l"), DecodeError::UnexpectedEof { .. }));
    assert!(matches!(err(b"5:abc"), DecodeError::UnexpectedEof { .. }));
    assert!(matches!(err(b"i12"), DecodeError::UnexpectedEof { .. }));
    assert!(matches!(
        err(b"x"),
        DecodeError::UnexpectedByte { byte: b'x', .. }
    ));
    assert!(matches!(
        err(b"di1ei2ee"),
        DecodeError::KeyNotString { offset: 1 }
    ));
    assert!(matches!(
        err(b"d1:ai1e1:ai2ee"),
        DecodeError::DuplicateKey { .. }
    ));
    assert!(matches!(
        err(b"d1:bi1e1:ai2e1:bi3ee"),
        DecodeError::DuplicateKey { .. }
    ));
    assert!(matches!(
        err(b"i1ei2e"),
        DecodeError::TrailingData { offset: 3, len: 3 }
    ));
    let (v, used) = decode_prefix(b"i1eXYZ", &Limits::default()).unwrap();
    assert_eq!((v, used), (Value::Int(1), 3));
}

#[test]
fn encoder_sorts_keys() {
    let d = Dict::new()
        .with(b"zz", Value::Int(1))
        .with(b"a", Value::Bytes(b"x"))
        .with(b"m", Value::List(vec![]));
    assert_eq!(encode(&Value::Dict(d)), b"d1:a1:x1:mle2:zzi1ee");
}

fn arb_value() -> impl Strategy<Value = Value<'static>> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        proptest::collection::vec(any::<u8>(), 0..24)
            .prop_map(|v| Value::Bytes(Box::leak(v.into_boxed_slice()))),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..8),
                inner,
                0..8
            )
            .prop_map(|m| {
                let mut d = Dict::new();
                for (k, v) in m {
                    d.insert(Box::leak(k.into_boxed_slice()), v);
                }
                Value::Dict(d)
            }),
        ]
    })
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips(value in arb_value()) {
        let bytes = encode(&value);
        let decoded = decode(&bytes, &Limits::default()).unwrap();
        prop_assert_eq!(&decoded, &value);
        // Canonical input re-encodes to the same bytes, and every dict's raw span is exact.
        prop_assert_eq!(encode(&decoded), bytes.clone());
        if let Value::Dict(d) = &decoded {
            prop_assert_eq!(d.raw(), Some(&bytes[..]));
        }
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes, &Limits::default());
    }

    #[test]
    fn decoder_never_panics_on_near_bencode(
        parts in proptest::collection::vec(
            prop_oneof![
                Just(&b"i"[..]), Just(&b"e"[..]), Just(&b"l"[..]), Just(&b"d"[..]),
                Just(&b"1:"[..]), Just(&b"3:"[..]), Just(&b"-"[..]), Just(&b"0"[..]),
                Just(&b"9"[..]), Just(&b"4:spam"[..]), Just(&b"i-0e"[..]),
            ],
            0..64,
        )
    ) {
        let bytes = parts.concat();
        let limits = Limits { depth_max: 8, items_max: 32, ..Limits::default() };
        if let Ok(value) = decode(&bytes, &limits) {
            // Whatever we accept, we accept again after canonical re-encoding.
            let again = encode(&value);
            prop_assert_eq!(decode(&again, &limits).unwrap(), value);
        }
    }
}
