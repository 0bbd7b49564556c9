//! The bodies of the fuzz targets, shared with the stable test suite that
//! replays the corpus (backend-nft/tests/fuzz_corpus.rs includes this file).

use microseg_core::backend::Renderer;
use microseg_core::document::Format;
use microseg_core::ir::{compile, Target};
use microseg_core::Policy;

/// The input as policy text in the format its first byte selects.
fn split(data: &[u8]) -> Option<(Format, &str)> {
    let (first, rest) = data.split_first()?;
    let format = match first % 3 {
        0 => Format::Toml,
        1 => Format::Json,
        _ => Format::Yaml,
    };
    Some((format, std::str::from_utf8(rest).ok()?))
}

/// Parsing, validation, lint and compilation of every role and of one host
/// never panic; errors are located diagnostics.
pub fn parse_check(data: &[u8]) {
    let Some((format, text)) = split(data) else {
        return;
    };
    match Policy::from_str_as(text, format, Some("fuzz")) {
        Ok(policy) => {
            let _ = microseg_core::lint::lint(&policy);
            for role in policy.roles.keys() {
                let rs =
                    compile(&policy, &Target::Role(role.clone())).expect("every role compiles");
                let art = backend_nft::NftRenderer.render(&rs);
                if let Ok(art) = art {
                    let _ = backend_nft::to_nft_text(&art);
                }
            }
            if let Some(addr) = policy.managed.example() {
                compile(&policy, &Target::Host(addr)).expect("a managed host compiles");
            }
        }
        Err(microseg_core::Error::Invalid(diags)) => {
            assert!(
                !diags.is_empty(),
                "an invalid policy has at least one diagnostic"
            );
            for d in diags {
                assert!(!d.message.is_empty());
            }
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

/// Every rendered nft JSON document deserialises with the nftables crate's
/// schema types and serialises back to the same JSON value.
pub fn nft_roundtrip(data: &[u8]) {
    let Some((format, text)) = split(data) else {
        return;
    };
    let Ok(policy) = Policy::from_str_as(text, format, None) else {
        return;
    };
    for role in policy.roles.keys() {
        let rs = compile(&policy, &Target::Role(role.clone())).expect("every role compiles");
        let Ok(art) = backend_nft::NftRenderer.render(&rs) else {
            continue;
        };
        let json = backend_nft::to_json(&art);
        let parsed: nftables::schema::Nftables =
            serde_json::from_str(&json).expect("rendered JSON deserialises");
        let again = serde_json::to_value(&parsed).expect("serialises");
        let original: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(
            again, original,
            "JSON round trip through the nftables crate changed the document"
        );
    }
}
